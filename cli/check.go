package cli

import (
	"fmt"

	urfave "github.com/urfave/cli/v2"

	"github.com/daggerflow/dagger/builtins"
)

func checkCommand(set *builtins.Set) *urfave.Command {
	return &urfave.Command{
		Name:      "check",
		Usage:     "check a flow without running it",
		ArgsUsage: "FLOW",
		Description: "Check makes every static check of the flow file FLOW: its syntax, its steps\n" +
			"and transitions, parameters and step options, and the names it uses. None of\n" +
			"the flow's code runs. A valid flow prints one line, FLOW: ok (N steps); an\n" +
			"invalid one prints every error as file:line:col: message and exits with 2.",
		Action: func(c *urfave.Context) error { return check(c, set) },
	}
}

func check(c *urfave.Context, set *builtins.Set) error {
	path, flow, err := argFlow(c, set)
	if err != nil {
		return err
	}
	g := flow.Graph()
	_, err = fmt.Fprintf(c.App.Writer, "%s: ok (%s)\n", path, plural(len(g.Steps), "step"))
	return failed(err)
}
