package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/daggerflow/dagger/builtins"
	"github.com/daggerflow/dagger/exec"
	"github.com/daggerflow/dagger/starlark"
	"github.com/daggerflow/dagger/store"
)

// The executors dagger run can run tasks with.
const (
	inProcess  = "inprocess"
	subprocess = "process"
)

func runCommand() *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "run a flow",
		ArgsUsage: "FLOW",
		Description: "Run checks the flow file FLOW and its parameter values, then runs it from\n" +
			"start to finish, printing what its steps print and how each task ends. An\n" +
			"invalid flow or parameter value is reported before any of the flow's code\n" +
			"runs, with exit code 2; a run that fails or is interrupted exits with 1.\n" +
			"Runs are recorded in the store: --store, else $DAGGER_HOME, else .daggerflow\n" +
			"in the current directory. An interrupt (Ctrl-C) or SIGTERM cancels the\n" +
			"running tasks and waits for them; a second Ctrl-C exits at once.",
		Flags: append([]cli.Flag{
			&cli.StringSliceFlag{Name: "param", Aliases: []string{"p"}, KeepSpace: true, Usage: "give a parameter a value, `name=value`; repeat for each"},
			&cli.StringFlag{Name: "store", Usage: "record the run in `DIR`"},
		}, executionFlags()...),
		Action: runFlow,
	}
}

// executionFlags are the flags of the commands that run a flow: how tasks
// run, and how the run is printed.
func executionFlags() []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{Name: "max-workers", Usage: "run at most `N` tasks at once; 0 for one per CPU"},
		&cli.StringFlag{Name: "executor", Value: inProcess, Usage: "run tasks `WHERE`: inprocess, or process for a subprocess each"},
		&cli.BoolFlag{Name: "json", Usage: "print the run's events as JSON, one object per line"},
	}
}

// execution reads the executionFlags of the command called name.
func execution(c *cli.Context, name string) (workers int, executor exec.Executor, err error) {
	workers = c.Int("max-workers")
	if workers < 0 {
		return 0, nil, &usageError{cmd: name, msg: fmt.Sprintf("--max-workers must be 0 or more, not %d", workers)}
	}
	executor, err = newExecutor(name, c.String("executor"))
	return workers, executor, err
}

// runFlow is the action of dagger run. Everything that can be checked
// before the run starts is, so that a mistake costs no work and leaves no
// run behind: the flow, the flags and the parameter values.
func runFlow(c *cli.Context) error {
	name := c.Command.HelpName
	path, err := flowArg(c)
	if err != nil {
		return err
	}
	given, err := paramFlags(name, c.StringSlice("param"))
	if err != nil {
		return err
	}
	workers, executor, err := execution(c, name)
	if err != nil {
		return err
	}
	set := builtins.Standard()
	flow, err := loadFlow(path, set)
	if err != nil {
		return err
	}
	if _, err := exec.ParamValues(flow.Graph, given); err != nil {
		// One problem a line, each told as dagger tells errors.
		return &exitError{code: exitInvalid, err: errors.New(strings.ReplaceAll(err.Error(), "\n", "\ndagger: "))}
	}
	dir, err := storeDir(c.String("store"))
	if err != nil {
		return failed(err)
	}
	ctx, again, stop := notifySignals(c.Context)
	defer stop()
	st, err := store.Open(ctx, dir)
	if err != nil {
		return failed(err)
	}
	return runInStore(ctx, c, again, st, flow, exec.Options{
		Params:     given,
		MaxWorkers: workers,
		Executor:   executor,
		Builtins:   set,
	})
}

// runInStore runs flow in st, which it closes, printing the run's events,
// until the run ends or again is closed, and returns what the command
// returns.
func runInStore(ctx context.Context, c *cli.Context, again <-chan struct{}, st *store.Store, flow *starlark.Flow, opts exec.Options) error {
	var p printer
	if c.Bool("json") {
		p = newJSONPrinter(c.App.Writer)
	} else {
		p = newTextPrinter(c.App.Writer, flow.Graph.Name, isTerminal(c.App.Writer))
	}
	opts.OnEvent = p.event
	type outcome struct {
		run store.Run
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		r, err := exec.Run(ctx, st, flow, opts)
		done <- outcome{r, err}
	}()
	var o outcome
	select {
	case o = <-done:
	case <-again:
		// The store stays open and the run recorded as running: dagger
		// exits now, and the store is safe from a process that stops at
		// any point.
		return &exitError{code: exitInterrupted, err: errors.New("interrupted again: stopped without waiting for the running tasks")}
	}
	if err := st.Close(); err != nil && o.err == nil {
		o.err = err
	}
	var runErr *exec.RunError
	switch {
	case errors.As(o.err, &runErr):
		return &runFailedError{runErr}
	case o.err != nil:
		return failed(fmt.Errorf("running %s: %w", flow.Path(), o.err))
	}
	if err := p.err(); err != nil {
		return failed(fmt.Errorf("writing the output of run %s: %w", o.run.ID, err))
	}
	return nil
}

// paramFlags returns the values of -p flags, name=value each, by name.
func paramFlags(cmd string, flags []string) (map[string]string, error) {
	given := make(map[string]string, len(flags))
	for _, f := range flags {
		name, value, ok := strings.Cut(f, "=")
		if !ok || name == "" {
			return nil, &usageError{cmd: cmd, msg: fmt.Sprintf("-p %s: want name=value", f)}
		}
		if _, dup := given[name]; dup {
			return nil, &usageError{cmd: cmd, msg: fmt.Sprintf("param %s is given twice", name)}
		}
		given[name] = value
	}
	return given, nil
}

// newExecutor returns the executor called name: nil for the in-process
// one, which is exec.Run's default.
func newExecutor(cmd, name string) (exec.Executor, error) {
	switch name {
	case inProcess:
		return nil, nil
	case subprocess:
		// Each task runs in "dagger step" of this very binary, so that
		// the task runs the same engine as the run.
		exe, err := os.Executable()
		if err != nil {
			return nil, failed(fmt.Errorf("finding the dagger executable for --executor process: %w", err))
		}
		return &exec.Process{Command: []string{exe, "step"}}, nil
	}
	return nil, &usageError{cmd: cmd, msg: fmt.Sprintf("unknown executor %q: use %s or %s", name, inProcess, subprocess)}
}

// storeDir returns the store directory: dir if given, else that of the
// project in the current directory.
func storeDir(dir string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	cwd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding the store: %w", err)
	}
	return store.DefaultDir(cwd), nil
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}

// notifySignals returns a context cancelled by the first interrupt or
// SIGTERM, and a channel closed when a signal of a kind already received
// comes again: the first asks the work to stop cleanly, the second not to
// wait for it. A SIGTERM after an interrupt only cancels: when Ctrl-C
// interrupts "dagger run --executor process", the terminal interrupts its
// "dagger step" subprocesses too, and the run then stops each with SIGTERM,
// which must not cost the task its result. stop releases the signals.
func notifySignals(parent context.Context) (ctx context.Context, again <-chan struct{}, stop func()) {
	ctx, stopCtx := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
	// Both are notified of every signal from now on, so none falls between
	// the first and the second.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	twice := make(chan struct{})
	quit := make(chan struct{})
	go func() {
		seen := make(map[os.Signal]bool)
		for {
			select {
			case sig := <-sigs:
				if seen[sig] {
					close(twice)
					return
				}
				seen[sig] = true
			case <-quit:
				return
			}
		}
	}()
	return ctx, twice, func() {
		signal.Stop(sigs)
		close(quit)
		stopCtx()
	}
}
