package dag

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
)

// WriteJSON writes g as indented JSON; the README documents the schema.
func WriteJSON(w io.Writer, g *Graph) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(g); err != nil {
		return fmt.Errorf("writing %s as JSON: %w", g.Name, err)
	}
	return nil
}

// WriteDOT writes g in Graphviz's DOT language. Start and finish are
// ellipses, joins double octagons, other steps boxes; split edges are
// solid and labelled, foreach edges bold, switch edges dashed.
func WriteDOT(w io.Writer, g *Graph) error {
	b := bufio.NewWriter(w)
	fmt.Fprintf(b, "digraph %s {\n", strconv.Quote(g.Name))
	fmt.Fprintf(b, "\tnode [shape=box, fontname=\"Helvetica\"];\n")
	for _, s := range g.Steps {
		attrs := ""
		switch {
		case s.Join:
			attrs = " [shape=doubleoctagon]"
		case s.Name == "start" || s.Name == "finish":
			attrs = " [shape=ellipse]"
		}
		fmt.Fprintf(b, "\t%s%s;\n", strconv.Quote(s.Name), attrs)
	}
	for _, s := range g.Steps {
		if s.Next == nil {
			continue
		}
		attrs := ""
		switch s.Next.Kind {
		case Split:
			attrs = ` [label="split"]`
		case Foreach:
			attrs = ` [label="foreach", style=bold]`
		case Switch:
			attrs = ` [label="switch", style=dashed]`
		}
		for _, t := range s.Next.Names() {
			fmt.Fprintf(b, "\t%s -> %s%s;\n", strconv.Quote(s.Name), strconv.Quote(t), attrs)
		}
	}
	fmt.Fprintf(b, "}\n")
	return b.Flush()
}

// WriteMermaid writes g as a Mermaid flowchart. Start and finish are
// stadiums, joins hexagons, other steps rectangles; split edges are
// labelled, foreach edges thick, switch edges dotted. Node ids are prefixed
// because step names such as end are Mermaid keywords.
func WriteMermaid(w io.Writer, g *Graph) error {
	b := bufio.NewWriter(w)
	fmt.Fprintf(b, "flowchart TD\n")
	for _, s := range g.Steps {
		open, close := "[", "]"
		switch {
		case s.Join:
			open, close = "{{", "}}"
		case s.Name == "start" || s.Name == "finish":
			open, close = "([", "])"
		}
		fmt.Fprintf(b, "    s_%s%s\"%s\"%s\n", s.Name, open, s.Name, close)
	}
	for _, s := range g.Steps {
		if s.Next == nil {
			continue
		}
		arrow := "-->"
		switch s.Next.Kind {
		case Split:
			arrow = "-->|split|"
		case Foreach:
			arrow = "==>|foreach|"
		case Switch:
			arrow = "-.->|switch|"
		}
		for _, t := range s.Next.Names() {
			fmt.Fprintf(b, "    s_%s %s s_%s\n", s.Name, arrow, t)
		}
	}
	return b.Flush()
}
