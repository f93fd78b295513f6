package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/daggerflow/dagger/builtins"
	"github.com/daggerflow/dagger/dag"
	"github.com/daggerflow/dagger/starlark"
)

// flowArg returns the one argument of a command that takes a flow file.
func flowArg(c *cli.Context) (string, error) {
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
func loadFlow(path string, set *builtins.Set) (*starlark.Flow, error) {
	flow, err := starlark.Load(path, set.IsPredeclared)
	if err != nil {
		var errs dag.ErrorList
		if errors.As(err, &errs) {
			return nil, &invalidError{errs: errs}
		}
		return nil, &exitError{code: exitInvalid, err: err}
	}
	return flow, nil
}

// argFlow loads and checks the flow file that is the command's one
// argument, for the commands that only read flows.
func argFlow(c *cli.Context) (path string, flow *starlark.Flow, err error) {
	if path, err = flowArg(c); err != nil {
		return "", nil, err
	}
	flow, err = loadFlow(path, builtins.Standard())
	return path, flow, err
}
