package cli

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"

	urfave "github.com/urfave/cli/v2"

	"github.com/daggerflow/dagger/builtins"

	"github.com/daggerflow/dagger/dag"
)

func showCommand(set *builtins.Set) *urfave.Command {
	return &urfave.Command{
		Name:      "show",
		Usage:     "print a flow's parameters and steps",
		ArgsUsage: "FLOW",
		Description: "Show prints the flow file FLOW as people read it: its name and description,\n" +
			"its parameters, the modules it loads, the files it includes in its package,\n" +
			"and its steps in source order with\n" +
			"their descriptions, where each goes next and their options. With --json it\n" +
			"prints the flow's structure as JSON for tools. The flow is checked first and\n" +
			"none of its code runs; an invalid flow prints its errors and exits with 2.",
		Flags: []urfave.Flag{
			&urfave.BoolFlag{Name: "json", Usage: "print the flow's structure as JSON"},
		},
		Action: func(c *urfave.Context) error { return show(c, set) },
	}
}

func show(c *urfave.Context, set *builtins.Set) error {
	_, flow, err := argFlow(c, set)
	if err != nil {
		return err
	}
	g := flow.Graph()
	if c.Bool("json") {
		return failed(dag.WriteJSON(c.App.Writer, g))
	}
	if err := writeText(c.App.Writer, g); err != nil {
		return failed(fmt.Errorf("writing %s: %w", g.Name, err))
	}
	return nil
}

// writeText writes g for people to read:
//
//	flow params
//	  Shows every kind of parameter and a few step options.
//
//	params:
//	  name   string  required  who to greet (required)
//	  times  int     2         how many greetings
//
//	steps:
//	  start -> report
//	  report -> finish
//	      Prints what the parameters made.
//	      options: retries=2, timeout="1m"
//	  finish
//
// Sections without entries are left out, except steps. Values are written
// as Starlark literals.
func writeText(w io.Writer, g *dag.Graph) error {
	var b strings.Builder
	fmt.Fprintf(&b, "flow %s\n", g.Name)
	writeDoc(&b, "  ", g.Doc)
	if len(g.Params) > 0 {
		b.WriteString("\nparams:\n")
		rows := make([][]string, len(g.Params))
		for i, p := range g.Params {
			def := "required"
			if !p.Required {
				def = literal(p.Default)
			}
			rows[i] = []string{p.Name, p.Type, def, p.Help}
		}
		writeTable(&b, "  ", rows)
	}
	if len(g.Loads) > 0 {
		b.WriteString("\nloads:\n")
		for _, l := range g.Loads {
			fmt.Fprintf(&b, "  %s: %s\n", strconv.Quote(l.Module), strings.Join(l.Names, ", "))
		}
	}
	if g.Package != nil {
		b.WriteString("\npackage:\n")
		for _, p := range g.Package.Include {
			fmt.Fprintf(&b, "  %s\n", strconv.Quote(p.Pattern))
		}
	}
	b.WriteString("\nsteps:\n")
	for _, s := range g.Steps {
		b.WriteString("  " + s.Name)
		if s.Join {
			b.WriteString(" (join)")
		}
		if s.Next != nil {
			b.WriteString(" -> " + transition(s))
		}
		b.WriteByte('\n')
		writeDoc(&b, "      ", s.Doc)
		if len(s.Options) > 0 {
			opts := make([]string, len(s.Options))
			for i, o := range s.Options {
				v := "(computed)" // known only when the flow's top-level code runs
				if o.Literal {
					v = literal(o.Value)
				}
				opts[i] = o.Name + "=" + v
			}
			fmt.Fprintf(&b, "      options: %s\n", strings.Join(opts, ", "))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// transition describes where step s goes: "b", "b, c (split, joined by
// j)", "b (foreach, joined by j)" or "b | c (switch)".
func transition(s *dag.Step) string {
	names := s.Next.Names()
	switch s.Next.Kind {
	case dag.Split, dag.Foreach:
		return fmt.Sprintf("%s (%s, joined by %s)", strings.Join(names, ", "), s.Next.Kind, s.JoinedBy)
	case dag.Switch:
		return fmt.Sprintf("%s (%s)", strings.Join(names, " | "), s.Next.Kind)
	}
	return strings.Join(names, ", ")
}

// writeDoc writes a docstring, each line indented.
func writeDoc(b *strings.Builder, indent, doc string) {
	if doc == "" {
		return
	}
	for line := range strings.SplitSeq(dedent(doc), "\n") {
		if line != "" {
			b.WriteString(indent + line)
		}
		b.WriteByte('\n')
	}
}

// dedent removes the indentation that the lines of a docstring after the
// first share: that of the code around it, not of the text.
func dedent(doc string) string {
	lines := strings.Split(doc, "\n")
	indent := -1
	for i, l := range lines[1:] {
		if strings.TrimSpace(l) == "" {
			lines[i+1] = ""
			continue
		}
		n := len(l) - len(strings.TrimLeft(l, " \t"))
		if indent < 0 || n < indent {
			indent = n
		}
	}
	for i, l := range lines[1:] {
		if l != "" {
			lines[i+1] = l[indent:]
		}
	}
	return strings.Join(lines, "\n")
}

// writeTable writes rows with their columns aligned, each line indented.
func writeTable(b *strings.Builder, indent string, rows [][]string) {
	var widths []int
	for _, row := range rows {
		for i, cell := range row {
			if i == len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], len(cell))
		}
	}
	for _, row := range rows {
		var line strings.Builder
		line.WriteString(indent)
		for i, cell := range row {
			if i < len(row)-1 {
				fmt.Fprintf(&line, "%-*s  ", widths[i], cell)
			} else {
				line.WriteString(cell)
			}
		}
		b.WriteString(strings.TrimRight(line.String(), " "))
		b.WriteByte('\n')
	}
}

// literal writes v, a value as dag reads literals (nil, bool, string,
// int64, float64, []any or map[string]any), as a Starlark literal.
func literal(v any) string {
	switch v := v.(type) {
	case nil:
		return "None"
	case bool:
		if v {
			return "True"
		}
		return "False"
	case string:
		return strconv.Quote(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		s := strconv.FormatFloat(v, 'g', -1, 64)
		if !strings.ContainsAny(s, ".eIN") {
			s += ".0" // a float, not an int
		}
		return s
	case []any:
		elems := make([]string, len(v))
		for i, e := range v {
			elems[i] = literal(e)
		}
		return "[" + strings.Join(elems, ", ") + "]"
	case map[string]any:
		entries := make([]string, 0, len(v))
		for _, k := range slices.Sorted(maps.Keys(v)) {
			entries = append(entries, strconv.Quote(k)+": "+literal(v[k]))
		}
		return "{" + strings.Join(entries, ", ") + "}"
	}
	return fmt.Sprint(v)
}
