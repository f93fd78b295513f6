package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

func checkCommand() *cli.Command {
	return &cli.Command{
		Name:      "check",
		Usage:     "check a flow without running it",
		ArgsUsage: "FLOW",
		Description: "Check makes every static check of the flow file FLOW: its syntax, its steps\n" +
			"and transitions, parameters and step options, and the names it uses. None of\n" +
			"the flow's code runs. A valid flow prints one line, FLOW: ok (N steps); an\n" +
			"invalid one prints every error as file:line:col: message and exits with 2.",
		Action: check,
	}
}

func check(c *cli.Context) error {
	path, flow, err := argFlow(c)
	if err != nil {
		return err
	}
	g := flow.Graph
	_, err = fmt.Fprintf(c.App.Writer, "%s: ok (%s)\n", path, plural(len(g.Steps), "step"))
	return failed(err)
}
