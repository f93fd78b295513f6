package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"

	urfave "github.com/urfave/cli/v2"

	"github.com/daggerflow/dagger/builtins"
)

// Main runs the dagger command on the process's command line with the
// builtins of set, and exits with its exit code. A Go program that embeds
// dagger with builtins of its own makes its main function this call, and
// is then a complete dagger command that knows those builtins: dagger
// check accepts flows that use them, dagger run runs them, and the step
// runner that --executor process and Kubernetes pods start is the same
// executable.
func Main(set *builtins.Set) {
	// A closed standard output, as in "dagger run flow.star | head -1",
	// is then an error of the write, which the command reports, rather
	// than a SIGPIPE that kills dagger mid-run and leaves the run
	// recorded as running. A program that calls Run with os.Stdout does
	// the same for the same reason.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	os.Exit(Run(context.Background(), set, os.Args, os.Stdin, os.Stdout, os.Stderr))
}

// Run runs the command line args (args[0] is the program name) with the
// builtins of set (builtins.Standard() if nil), reading stdin and writing
// to stdout and stderr, and returns the exit code. Runs in one process
// must not overlap: urfave/cli v2 keeps state in package variables. Main
// also turns SIGPIPE into write errors; a program that calls Run with
// os.Stdout had better do so too (signal.Notify of syscall.SIGPIPE), or a
// closed pipe kills it mid-run.
func Run(ctx context.Context, set *builtins.Set, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if set == nil {
		set = builtins.Standard()
	}
	app := newApp(set, stdin, stdout, stderr)
	if len(args) > 0 {
		rest, err := flagsFirst(app.Name, args[1:], app.Flags, app.Commands)
		if err != nil {
			return report(stderr, err)
		}
		args = slices.Concat(args[:1], rest)
	}
	return report(stderr, app.RunContext(ctx, args))
}

// newApp builds the command line afresh for each run: dagger keeps no
// state between runs. (urfave/cli v2 itself updates its package-level help
// command and flags as it runs, so runs in one process must not overlap.)
func newApp(set *builtins.Set, stdin io.Reader, stdout, stderr io.Writer) *urfave.App {
	app := &urfave.App{
		Name:      "dagger",
		Usage:     "workflows written in Starlark",
		UsageText: "dagger command [options] [arguments...]",
		Version:   version(),
		Commands: []*urfave.Command{
			checkCommand(set),
			showCommand(set),
			graphCommand(set),
			runCommand(set),
			resumeCommand(set),
			kubernetesCommand(set),
			fsckCommand(),
			runsCommand(),
			inspectCommand(),
			logsCommand(),
			uiCommand(),
			stepCommand(set),
			copyRunnerCommand(),
		},
		// Parameter values, such as JSON lists, may hold commas.
		DisableSliceFlagSeparator: true,
		Reader:                    stdin,
		Writer:                    stdout,
		ErrWriter:                 stderr,
		Action:                    noCommand,
		OnUsageError:              onUsageError,
		// run reports errors and chooses the exit code; urfave/cli's
		// default handler would print them and exit the process.
		ExitErrHandler: func(*urfave.Context, error) {},
	}
	configure(app.Commands)
	return app
}

// configure gives every command dagger's usage error handling and, for
// the commands that have no subcommands, the help of a plain command
// without a help subcommand (so that "dagger check help" checks a file
// called help).
func configure(cmds []*urfave.Command) {
	for _, c := range cmds {
		c.OnUsageError = onUsageError
		if len(c.Subcommands) == 0 {
			c.HideHelpCommand = true
			c.CustomHelpTemplate = urfave.CommandHelpTemplate
		}
		configure(c.Subcommands)
	}
}

// noCommand runs when no command is named: with arguments, the first is
// an unknown command; without, dagger prints its help.
func noCommand(c *urfave.Context) error {
	if c.Args().Present() {
		return &usageError{cmd: c.App.Name, msg: fmt.Sprintf("unknown command %q", c.Args().First())}
	}
	urfave.HelpPrinter(c.App.ErrWriter, urfave.AppHelpTemplate, c.App)
	return &usageError{cmd: c.App.Name}
}

// onUsageError turns urfave/cli's flag parsing errors into usage errors,
// which report prints as one line and a pointer to the help, instead of
// urfave/cli's whole help.
func onUsageError(c *urfave.Context, err error, _ bool) error {
	return &usageError{cmd: c.Command.HelpName, msg: err.Error()}
}

// flagsFirst returns args, the arguments after the program name, with the
// flags of the command they name moved before its arguments: urfave/cli
// v2, like the flag package, stops parsing flags at the first argument,
// and dagger's commands take flags after the flow as well ("dagger show
// flow.star --json"). A flag's value stays with it, "--" still ends the
// flags, and -h or --help among a command's arguments asks for its help.
// A repeatable flag given by an alias gets its first name (see
// repeatable). name is the full name of the command whose arguments args
// are, flags and cmds its flags and subcommands.
func flagsFirst(name string, args []string, flags []urfave.Flag, cmds []*urfave.Command) ([]string, error) {
	var front, back []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			back = append(back, args[i+1:]...)
			i = len(args)
		case len(a) > 1 && a[0] == '-':
			front = append(front, repeatable(flags, a))
			if takesValue(flags, a) {
				if i+1 == len(args) {
					return nil, &usageError{cmd: name, msg: "flag needs an argument: " + a}
				}
				i++
				front = append(front, args[i])
			}
		case len(cmds) > 0:
			// The first argument of a command with subcommands names one;
			// leave an unknown one, and all after it, for the command to
			// report.
			sub := findCommand(cmds, a)
			if sub == nil {
				return slices.Concat(front, args[i:]), nil
			}
			rest, err := flagsFirst(name+" "+sub.Name, args[i+1:], sub.Flags, sub.Subcommands)
			return slices.Concat(front, []string{a}, rest), err
		default:
			back = append(back, a)
		}
	}
	switch {
	case len(cmds) == 0 && slices.ContainsFunc(front, isHelp):
		// urfave/cli would take the arguments for help topics.
		return []string{"--help"}, nil
	case len(back) == 0:
		return front, nil
	}
	return slices.Concat(front, []string{"--"}, back), nil
}

func isHelp(arg string) bool {
	switch strings.TrimLeft(arg, "-") {
	case "h", "help":
		return true
	}
	return false
}

// repeatable returns arg, a flag, under its first name if it is an alias
// of a flag that may be repeated: urfave/cli v2 refuses two names of one
// flag in a command line, as in "-p a=1 --param b=2".
func repeatable(flags []urfave.Flag, arg string) string {
	name, value, hasValue := strings.Cut(strings.TrimLeft(arg, "-"), "=")
	for _, f := range flags {
		names := f.Names()
		s, ok := f.(interface{ IsSliceFlag() bool })
		if !ok || !s.IsSliceFlag() || len(names) < 2 || !slices.Contains(names[1:], name) {
			continue
		}
		arg = "--" + names[0]
		if hasValue {
			arg += "=" + value
		}
		return arg
	}
	return arg
}

// takesValue reports whether arg is one of flags that takes its value
// from the next argument.
func takesValue(flags []urfave.Flag, arg string) bool {
	name := strings.TrimLeft(arg, "-")
	if strings.Contains(name, "=") {
		return false
	}
	for _, f := range flags {
		if slices.Contains(f.Names(), name) {
			v, ok := f.(interface{ TakesValue() bool })
			return ok && v.TakesValue()
		}
	}
	return false
}

func findCommand(cmds []*urfave.Command, name string) *urfave.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

// version returns the version of the dagger module this binary was built
// from, as the go command recorded it.
func version() string {
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" {
		return info.Main.Version
	}
	return "(devel)"
}
