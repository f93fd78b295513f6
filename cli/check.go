package cli

import (
	"fmt"
	"io"
	"strings"

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
			"the flow's code runs. A valid flow prints FLOW: ok (N steps), and a line for\n" +
			"each step that declares capabilities, with the --allow that grants them; an\n" +
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
	var b strings.Builder
	fmt.Fprintf(&b, "%s: ok (%s)\n", path, plural(len(g.Steps), "step"))
	for _, s := range g.Steps {
		if caps := s.Capabilities(); len(caps) > 0 {
			names := make([]string, len(caps))
			for i, cp := range caps {
				names[i] = cp.String()
			}
			fmt.Fprintf(&b, "  step %s needs --allow %s\n", s.Name, strings.Join(names, ","))
		}
	}
	_, err = io.WriteString(c.App.Writer, b.String())
	return failed(err)
}
