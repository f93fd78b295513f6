package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/daggerflow/dagger/dag"
	"github.com/daggerflow/dagger/exec"
)

// The exit codes of dagger.
const (
	exitOK      = 0
	exitFailed  = 1 // a run failed, or dagger could not do what it was asked
	exitInvalid = 2 // an invalid flow, or a usage error
	// exitInterrupted is the shells' code for a process killed by SIGINT:
	// dagger exits with it when interrupted twice, without waiting for
	// its tasks.
	exitInterrupted = 130
)

// A usageError is a command line dagger cannot follow.
type usageError struct {
	cmd string // the full name of the command, such as "dagger check"
	msg string // empty when the help was already printed
}

func (e *usageError) Error() string { return e.cmd + ": " + e.msg }

// An invalidError is a flow that fails its static checks.
type invalidError struct {
	errs dag.ErrorList
}

func (e *invalidError) Error() string { return e.errs.Error() }

// A runFailedError is a run that failed or was cancelled: the flow's
// failure, not dagger's.
type runFailedError struct {
	err *exec.RunError
}

// Error returns "run ID STATUS", then ": task ID" if a task failed, then
// the error: on the same line when it is one line and no task failed,
// else on the lines below, so that a backtrace starts on a line of its
// own.
func (e *runFailedError) Error() string {
	msg := fmt.Sprintf("run %s %s", e.err.RunID, e.err.Status)
	if e.err.TaskID != "" {
		msg += ": task " + e.err.TaskID
	}
	if e.err.Err == nil {
		return msg
	}
	cause := e.err.Err.Error()
	if e.err.TaskID == "" && !strings.Contains(cause, "\n") {
		return msg + ": " + cause
	}
	return msg + "\n" + cause
}

func (e *runFailedError) Unwrap() error { return e.err }

// An exitError is any other error of a command, with its exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func (e *exitError) Unwrap() error { return e.err }

// report writes err to stderr and returns the exit code it calls for.
//
// Commands return only the error types above. Any other error comes from
// urfave/cli itself, such as help asked for an unknown command, and is a
// usage error.
func report(stderr io.Writer, err error) int {
	var (
		usage   *usageError
		invalid *invalidError
		runErr  *runFailedError
		exit    *exitError
	)
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &usage):
		if usage.msg != "" {
			fmt.Fprintf(stderr, "%s\nRun '%s --help' for usage.\n", usage, usage.cmd)
		}
		return exitInvalid
	case errors.As(err, &invalid):
		// The errors are printed as they are, one per line, so that
		// editors and tools can read their file:line:col positions.
		fmt.Fprintf(stderr, "%s\n%s\n", invalid, plural(len(invalid.errs), "error"))
		return exitInvalid
	case errors.As(err, &runErr):
		// Without "dagger:": the error is the flow's, and its backtrace
		// is the flow's positions.
		fmt.Fprintln(stderr, runErr)
		return exitFailed
	case errors.As(err, &exit):
		fmt.Fprintf(stderr, "dagger: %v\n", exit)
		return exit.code
	}
	fmt.Fprintf(stderr, "dagger: %v\nRun 'dagger --help' for usage.\n", err)
	return exitInvalid
}

// failed marks an error of a command that is neither a usage error nor an
// invalid flow, such as one writing its output.
func failed(err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: exitFailed, err: err}
}

// plural returns "1 noun" or "n nouns".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
