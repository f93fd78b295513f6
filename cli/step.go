package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	urfave "github.com/urfave/cli/v2"

	"github.com/daggerflow/dagger/builtins"
	"github.com/daggerflow/dagger/exec"
)

// stepCommand is the runner entry point of executors, hidden from the
// help: it runs one task, described by a TaskSpec on its standard input,
// prints the lines the task prints on its standard output and writes the
// TaskResult to a descriptor or a file. exec.Process runs it in a
// subprocess, and a Kubernetes pod runs it too.
func stepCommand(set *builtins.Set) *urfave.Command {
	return &urfave.Command{
		Name:      "step",
		Usage:     "run one task of a run (for executors)",
		ArgsUsage: " ",
		Description: "Step reads a task spec, as JSON, from $DAGGER_TASK_SPEC if it is set, else\n" +
			"from its standard input, runs that one task\n" +
			"against the store the spec names, prints what the task prints on its\n" +
			"standard output and writes the task's result, as JSON, to the descriptor\n" +
			"--result-fd or the file --result; or, with --result-ref, saves it in the\n" +
			"datastore and writes a reference of at most 4096 bytes, as a pod's\n" +
			"termination message keeps, to that file. It exits with 0 when it wrote a result,\n" +
			"even that of a failed task. An interrupt or SIGTERM cancels the task, which\n" +
			"then reports itself cancelled; a second one of the same kind exits at once.",
		Hidden: true,
		Flags: []urfave.Flag{
			&urfave.IntFlag{Name: "result-fd", Value: -1, Usage: "write the result to descriptor `N`, open in this process"},
			&urfave.StringFlag{Name: "result", Usage: "write the result to `FILE`"},
			&urfave.StringFlag{Name: "result-ref", Usage: "save the result in the datastore and write a short reference to it, which fits a pod's termination message, to `FILE`"},
		},
		Action: func(c *urfave.Context) error { return step(c, set) },
	}
}

func step(c *urfave.Context, set *builtins.Set) error {
	name := c.Command.HelpName
	if c.NArg() > 0 {
		return &usageError{cmd: name, msg: "takes no arguments: the task spec comes on standard input"}
	}
	fd, file, ref := c.Int("result-fd"), c.String("result"), c.String("result-ref")
	serve := exec.ServeTask
	if ref != "" {
		serve, file = exec.ServeTaskRef, ref
	}
	var result io.WriteCloser
	switch {
	case (fd >= 0) == (file != "") || c.String("result") != "" && ref != "":
		return &usageError{cmd: name, msg: "give one of --result-fd, --result and --result-ref"}
	case file != "":
		// The file is made before the task runs, so that a bad path costs
		// no work.
		f, err := os.Create(file)
		if err != nil {
			return failed(err)
		}
		result = f
	default:
		f := os.NewFile(uintptr(fd), fmt.Sprintf("--result-fd %d", fd))
		if _, err := f.Stat(); err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err // without "stat --result-fd N"
			}
			return failed(fmt.Errorf("--result-fd %d: %w", fd, err))
		}
		result = f
	}
	defer result.Close() // again after runTask closes it, to no effect

	// A runner that exec.Process started runs on its driver's machine,
	// with the roots the driver itself trusts: parsing the fallback's
	// would cost each task more than the rest of its own work.
	if !exec.IsTaskRunner() {
		useFallbackRoots()
	}
	// From now on, a signal cancels the task rather than kill the process.
	ctx, again, stop := notifySignals(c.Context)
	defer stop()
	var in io.Reader = c.App.Reader
	if text := os.Getenv(exec.SpecEnv); text != "" {
		in = strings.NewReader(text) // in a pod, which has no standard input
	}
	var spec exec.TaskSpec
	if err := json.NewDecoder(in).Decode(&spec); err != nil {
		return failed(fmt.Errorf("reading the task spec: %w", err))
	}
	done := make(chan error, 1)
	go func() { done <- runTask(ctx, serve, &spec, set, c.App.Writer, result) }()
	select {
	case err := <-done:
		return err
	case <-again:
		return &exitError{code: exitInterrupted, err: fmt.Errorf("task %s: interrupted again: stopped without a result", spec.TaskID)}
	}
}

// runTask runs the task of spec with serve and the builtins of set,
// printing its output to out, and writes its result to result.
func runTask(ctx context.Context, serve func(context.Context, *exec.TaskSpec, *builtins.Set, io.Writer, io.Writer) error,
	spec *exec.TaskSpec, set *builtins.Set, out io.Writer, result io.WriteCloser) error {
	if err := serve(ctx, spec, set, out, result); err != nil {
		return failed(err)
	}
	if err := result.Close(); err != nil {
		return failed(fmt.Errorf("task %s: writing its result: %w", spec.TaskID, err))
	}
	return nil
}

// copyRunnerCommand copies this executable to a path, hidden from the
// help: a pod whose step names an image of its own runs it in an init
// container of the runner image, which holds nothing else, no cp, to put
// dagger where the step's container finds it.
func copyRunnerCommand() *urfave.Command {
	return &urfave.Command{
		Name:        "copy-runner",
		Usage:       "copy this executable to DEST (for pods)",
		ArgsUsage:   "DEST",
		Description: "Copy-runner copies the running executable to the file DEST, executable by all.",
		Hidden:      true,
		Action:      copyRunner,
	}
}

func copyRunner(c *urfave.Context) error {
	if c.NArg() != 1 {
		return &usageError{cmd: c.Command.HelpName, msg: "takes the path to copy this executable to"}
	}
	exe, err := os.Executable()
	if err != nil {
		return failed(err)
	}
	src, err := os.Open(exe)
	if err != nil {
		return failed(err)
	}
	defer src.Close()
	dest := c.Args().First()
	// Written aside and renamed into place: a copy that fails leaves no
	// half executable, and one that runs again replaces the last.
	tmp, err := os.CreateTemp(filepath.Dir(dest), ".dagger-*")
	if err != nil {
		return failed(err)
	}
	_, err = io.Copy(tmp, src)
	err = errors.Join(err, tmp.Chmod(0o555), tmp.Close())
	if err == nil {
		err = os.Rename(tmp.Name(), dest)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return failed(fmt.Errorf("copying %s to %s: %w", exe, dest, err))
	}
	return nil
}
