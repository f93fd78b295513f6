package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	urfave "github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/daggerflow/dagger"
	"github.com/daggerflow/dagger/builtins"
	"github.com/daggerflow/dagger/datastore"
	"github.com/daggerflow/dagger/exec"
	"github.com/daggerflow/dagger/store"
)

// The executors dagger run can run tasks with.
const (
	inProcess  = "inprocess"
	subprocess = "process"
)

func runCommand(set *builtins.Set) *urfave.Command {
	return &urfave.Command{
		Name:      "run",
		Usage:     "run a flow",
		ArgsUsage: "FLOW",
		Description: "Run checks the flow file FLOW and its parameter values, then runs it from\n" +
			"start to finish, printing what its steps print and how each task ends. An\n" +
			"invalid flow or parameter value is reported before any of the flow's code\n" +
			"runs, with exit code 2; a run that fails or is interrupted exits with 1.\n" +
			"Runs are recorded in the store: --store, else $DAGGER_HOME, else .daggerflow\n" +
			"in the current directory. Their artifacts, logs and code go to the store\n" +
			"too, or to the datastore --datastore (else $DAGGER_DATASTORE) names, which\n" +
			"task runners on other machines can reach; with --executor process and no\n" +
			"datastore, to a datastore in the store's folder. An interrupt (Ctrl-C) or\n" +
			"SIGTERM cancels the running tasks and waits for them; a second Ctrl-C exits\n" +
			"at once.",
		Flags: append([]urfave.Flag{
			&urfave.StringSliceFlag{Name: "param", Aliases: []string{"p"}, KeepSpace: true, Usage: "give a parameter a value, `name=value`; repeat for each"},
			&urfave.StringFlag{Name: "store", Usage: "record the run in `DIR`"},
			&urfave.StringFlag{Name: "datastore", EnvVars: []string{"DAGGER_DATASTORE"}, Usage: "keep the run's artifacts, logs and code at `URL`: s3://bucket/prefix, gs://, azblob:// or file:///dir"},
		}, executionFlags()...),
		Action: func(c *urfave.Context) error { return runFlow(c, set) },
	}
}

// executionFlags are the flags of the commands that run a flow: how tasks
// run, and how the run is printed.
func executionFlags() []urfave.Flag {
	return []urfave.Flag{
		&urfave.IntFlag{Name: "max-workers", Usage: "run at most `N` tasks at once; 0 for one per CPU"},
		&urfave.StringFlag{Name: "executor", Value: inProcess, Usage: "run tasks `WHERE`: inprocess, or process for a subprocess each"},
		allowFlag(),
		&urfave.BoolFlag{Name: "json", Usage: "print the run's events as JSON, one object per line"},
	}
}

// execution reads the executionFlags of the command called name.
func execution(c *urfave.Context, name string) (workers int, executor exec.Executor, err error) {
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
func runFlow(c *urfave.Context, set *builtins.Set) error {
	name := c.Command.HelpName
	path, given, err := flowAndParams(c)
	if err != nil {
		return err
	}
	workers, executor, err := execution(c, name)
	if err != nil {
		return err
	}
	if err := checkDatastore(c); err != nil {
		return err
	}
	allow, err := grants(c, name)
	if err != nil {
		return err
	}
	opts := dagger.Options{Params: given, MaxWorkers: workers, Executor: executor, Datastore: c.String("datastore"), Allow: allow}
	return runFlowFile(c, set, path, opts, nil)
}

// flowAndParams reads the flow file argument and the -p flags of a
// command that runs a flow.
func flowAndParams(c *urfave.Context) (path string, given map[string]string, err error) {
	if path, err = flowArg(c); err != nil {
		return "", nil, err
	}
	given, err = paramFlags(c.Command.HelpName, c.StringSlice("param"))
	return path, given, err
}

// runFlowFile runs the flow file at path with opts in the store of the
// command's flags, once the flow and opts.Params passed every check:
// those cost no work and leave no run. newExecutor, if not nil, then
// makes the run's executor, with the context that cancels the run, and
// its close function, called when the run ends.
func runFlowFile(c *urfave.Context, set *builtins.Set, path string, opts dagger.Options,
	newExecutor func(context.Context) (exec.Executor, func() error, error)) error {
	flow, err := loadFlow(path, set)
	if err != nil {
		return err
	}
	if err := flow.CheckParams(opts.Params); err != nil {
		return invalidRequest(err)
	}
	if err := checkGrants(flow, opts.Allow); err != nil {
		return err
	}
	dir, err := storeDir(c.String("store"))
	if err != nil {
		return failed(err)
	}
	ctx, again, stop := notifySignals(c.Context)
	defer stop()
	if newExecutor != nil {
		e, closeExecutor, err := newExecutor(ctx)
		if err != nil {
			return err
		}
		defer closeExecutor()
		opts.Executor = e
	}
	st, err := store.Open(ctx, dir)
	if err != nil {
		return failed(err)
	}
	return runInStore(ctx, c, again, st, flow, func(ctx context.Context, opts dagger.Options) (store.Run, error) {
		return dagger.Run(ctx, st, flow, opts)
	}, opts)
}

// runInStore runs flow in st, which it closes, with start (dagger.Run or
// dagger.Resume), printing the run's events, until the run ends or again
// is closed, and returns what the command returns.
func runInStore(ctx context.Context, c *urfave.Context, again <-chan struct{}, st *store.Store, flow *dagger.Flow,
	start func(context.Context, dagger.Options) (store.Run, error), opts dagger.Options) error {
	var p printer
	if c.Bool("json") {
		p = newJSONPrinter(c.App.Writer)
	} else {
		p = newTextPrinter(c.App.Writer, flow.Name(), terminalWidth(c.App.Writer))
	}
	opts.OnEvent = p.event
	type outcome struct {
		run store.Run
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		r, err := start(ctx, opts)
		done <- outcome{r, err}
	}()
	var o outcome
	select {
	case o = <-done:
	case <-again:
		// The store stays open and the run recorded as running: dagger
		// exits now, and the store is safe from a process that stops at
		// any point. The lines kept are written if the output takes
		// them at once: an output that blocks must not keep dagger.
		written := make(chan struct{})
		go func() {
			p.close()
			close(written)
		}()
		select {
		case <-written:
		case <-time.After(time.Second):
		}
		return &exitError{code: exitInterrupted, err: errors.New("interrupted again: stopped without waiting for the running tasks")}
	}
	// The run's last lines are written before why it failed is.
	perr := p.close()
	if err := st.Close(); err != nil && o.err == nil {
		o.err = err
	}
	var runErr *dagger.RunError
	var invalid *dagger.InvalidError
	switch {
	case errors.As(o.err, &runErr):
		return &runFailedError{runErr}
	case errors.As(o.err, &invalid):
		return invalidRequest(o.err)
	case o.err != nil:
		return failed(fmt.Errorf("running %s: %w", flow.Path(), o.err))
	}
	if perr != nil {
		return failed(fmt.Errorf("writing the output of run %s: %w", o.run.ID, perr))
	}
	return nil
}

// checkDatastore checks the --datastore flag, if given, before any work:
// a URL that cannot name a datastore is a usage error, and leaves no store
// behind.
func checkDatastore(c *urfave.Context) error {
	if url := c.String("datastore"); url != "" {
		if err := datastore.Check(c.Context, url); err != nil {
			return &exitError{code: exitInvalid, err: err}
		}
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
// one, which is dagger.Run's default.
func newExecutor(cmd, name string) (exec.Executor, error) {
	switch name {
	case inProcess:
		return nil, nil
	case subprocess:
		// Each task runs in "dagger step" of this very binary, so that
		// the task runs the same engine, with the same builtins, as the
		// run.
		e, err := dagger.ProcessExecutor()
		if err != nil {
			return nil, failed(fmt.Errorf("--executor process: %w", err))
		}
		return e, nil
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

// terminalWidth returns the width of the terminal w is, -1 if it is one
// whose width is unknown, and 0 if w is no terminal.
func terminalWidth(w io.Writer) int {
	f, ok := w.(interface{ Fd() uintptr })
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return 0
	}
	width, _, err := term.GetSize(int(f.Fd()))
	if err != nil || width <= 0 {
		return -1
	}
	return width
}

// stopSignals returns the signals that cancel a run: an interrupt
// (Ctrl-C), SIGTERM, and SIGHUP, which a dropped SSH session sends, so
// that the run is recorded cancelled rather than left running by a killed
// process. A signal this process was started ignoring stays ignored, as
// nohup asks of SIGHUP: asking to be notified of it would undo that.
func stopSignals() []os.Signal {
	var sigs []os.Signal
	for _, sig := range []os.Signal{os.Interrupt, syscall.SIGTERM, syscall.SIGHUP} {
		if !signal.Ignored(sig) {
			sigs = append(sigs, sig)
		}
	}
	return sigs
}

// notifySignals returns a context cancelled by the first interrupt,
// SIGTERM or SIGHUP, and a channel closed when an interrupt or a SIGTERM
// comes again: the first asks the work to stop cleanly, the second not to
// wait for it. A SIGTERM after an interrupt only cancels: when Ctrl-C
// interrupts "dagger run --executor process", the terminal interrupts its
// "dagger step" subprocesses too, and the run then stops each with SIGTERM,
// which must not cost the task its result. A hang-up often comes more
// than once (a shell passes it on to its jobs), and only ever cancels.
// stop releases the signals.
func notifySignals(parent context.Context) (ctx context.Context, again <-chan struct{}, stop func()) {
	sigList := stopSignals()
	ctx, stopCtx := signal.NotifyContext(parent, sigList...)
	// Both are notified of every signal from now on, so none falls between
	// the first and the second.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, sigList...)
	twice := make(chan struct{})
	quit := make(chan struct{})
	go func() {
		seen := make(map[os.Signal]bool)
		for {
			select {
			case sig := <-sigs:
				if sig == syscall.SIGHUP {
					continue
				}
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
