package cli

import (
	"fmt"
	"io"

	urfave "github.com/urfave/cli/v2"

	"github.com/daggerflow/dagger/builtins"

	"github.com/daggerflow/dagger/dag"
)

// graphFormats are the formats dagger graph writes, by name.
func graphFormats() map[string]func(io.Writer, *dag.Graph) error {
	return map[string]func(io.Writer, *dag.Graph) error{
		"dot":     dag.WriteDOT,
		"mermaid": dag.WriteMermaid,
	}
}

func graphCommand(set *builtins.Set) *urfave.Command {
	return &urfave.Command{
		Name:      "graph",
		Usage:     "draw a flow's step graph",
		ArgsUsage: "FLOW",
		Description: "Graph writes the step graph of the flow file FLOW in Graphviz's DOT language\n" +
			"(render it with dot -Tsvg) or as a Mermaid flowchart. The flow is checked\n" +
			"first and none of its code runs; an invalid flow prints its errors and exits\n" +
			"with 2.",
		Flags: []urfave.Flag{
			&urfave.StringFlag{Name: "format", Aliases: []string{"f"}, Value: "dot", Usage: "the output format: dot or mermaid"},
		},
		Action: func(c *urfave.Context) error { return graph(c, set) },
	}
}

func graph(c *urfave.Context, set *builtins.Set) error {
	format := c.String("format")
	write, ok := graphFormats()[format]
	if !ok {
		return &usageError{cmd: c.Command.HelpName, msg: fmt.Sprintf("unknown format %q: use dot or mermaid", format)}
	}
	_, flow, err := argFlow(c, set)
	if err != nil {
		return err
	}
	g := flow.Graph()
	if err := write(c.App.Writer, g); err != nil {
		return failed(fmt.Errorf("writing the graph of %s: %w", g.Name, err))
	}
	return nil
}
