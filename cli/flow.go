package cli

import (
	"errors"
	"fmt"
	"strings"

	urfave "github.com/urfave/cli/v2"

	"github.com/daggerflow/dagger"
	"github.com/daggerflow/dagger/builtins"
	"github.com/daggerflow/dagger/dag"
)

// flowArg returns the one argument of a command that takes a flow file.
func flowArg(c *urfave.Context) (string, error) {
	switch c.NArg() {
	case 0:
		return "", &usageError{cmd: c.Command.HelpName, msg: "no flow file given"}
	case 1:
		return c.Args().First(), nil
	}
	return "", &usageError{cmd: c.Command.HelpName, msg: fmt.Sprintf("takes one flow file, not %d arguments", c.NArg())}
}

// loadFlow reads the flow file at path and returns it when it, and the
// modules it loads, pass every static check against the builtins of set.
// None of their code runs, not even their top-level statements. Errors
// name files as path does.
func loadFlow(path string, set *builtins.Set) (*dagger.Flow, error) {
	flow, err := dagger.Load(path, set)
	if err != nil {
		var errs dag.ErrorList
		if errors.As(err, &errs) {
			return nil, &invalidError{errs: errs}
		}
		return nil, &exitError{code: exitInvalid, err: err}
	}
	return flow, nil
}

// argFlow loads and checks, against the builtins of set, the flow file
// that is the command's one argument, for the commands that only read
// flows.
func argFlow(c *urfave.Context, set *builtins.Set) (path string, flow *dagger.Flow, err error) {
	if path, err = flowArg(c); err != nil {
		return "", nil, err
	}
	flow, err = loadFlow(path, set)
	return path, flow, err
}

// invalidRequest returns err, an error of the dagger package, as dagger
// reports it: an *dagger.InvalidError with exit code 2 and one problem a
// line, each told as dagger tells errors.
func invalidRequest(err error) error {
	var invalid *dagger.InvalidError
	if errors.As(err, &invalid) {
		return &exitError{code: exitInvalid, err: errors.New(strings.ReplaceAll(invalid.Error(), "\n", "\ndagger: "))}
	}
	return err
}
