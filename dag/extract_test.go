package dag

import (
	"go.starlark.net/starlark"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestExtract(t *testing.T) {
	p := func(line, col int) Pos { return Pos{File: "f.star", Line: line, Col: col} }
	tests := []struct {
		name string
		src  string
		want *Graph
	}{{
		name: "linear with docs and params",
		src: `"""Says hello."""

greeting = param("greeting", default = "Hello", help = "what to say")
count = param("count")

def start(ctx):
    """Begins."""
    next_step(finish)

def finish(ctx):
    pass
`,
		want: &Graph{
			Name: "f", File: "f.star", Doc: "Says hello.",
			Params: []*Param{
				{Name: "greeting", Pos: p(3, 12), Var: "greeting", Type: "string", Default: "Hello", HasDefault: true, Help: "what to say"},
				{Name: "count", Pos: p(4, 9), Var: "count", Type: "string", Required: true},
			},
			Steps: []*Step{
				{Name: "start", Pos: p(6, 5), Doc: "Begins.", Params: []string{"ctx"}, Options: []*Option{},
					Next: &Transition{Kind: Linear, Targets: []Target{{Step: "finish", Pos: p(8, 15), Call: p(8, 5)}}}},
				{Name: "finish", Pos: p(10, 5), Params: []string{"ctx"}, Options: []*Option{}},
			},
		},
	}, {
		name: "split, foreach, switch, join, options and loads",
		src: `load("lib/x.star", "helper", h2 = "other")

def start():
    next_step(a, b)

def a(ctx):
    next_step(body, foreach = range(3))

def body(ctx):
    if ctx.input:
        next_step(j1)
    elif ctx.index:
        next_step(j1)
    else:
        next_step(j1)

def j1(ctx, inputs):
    next_step(j2)

def b(ctx):
    next_step(j2)

def j2(ctx, inputs):
    next_step(finish)

def finish(ctx):
    pass

n = 3
step(a, retries = n, timeout = "1h", env = {"K": "v"}, cpu = +0.5)
`,
		want: &Graph{
			Name: "f", File: "f.star",
			Loads: []*Load{{Module: "lib/x.star", Pos: p(1, 1), Names: []string{"helper", "h2"}}},
			Steps: []*Step{
				{Name: "start", Pos: p(3, 5), Params: []string{}, Options: []*Option{}, JoinedBy: "j2",
					Next: &Transition{Kind: Split, Targets: []Target{
						{Step: "a", Pos: p(4, 15), Call: p(4, 5)},
						{Step: "b", Pos: p(4, 18), Call: p(4, 5)},
					}}},
				{Name: "a", Pos: p(6, 5), Params: []string{"ctx"}, JoinedBy: "j1",
					Next: &Transition{Kind: Foreach, Foreach: &Pos{File: "f.star", Line: 7, Col: 21},
						Targets: []Target{{Step: "body", Pos: p(7, 15), Call: p(7, 5)}}},
					Options: []*Option{
						{Name: "retries", Pos: p(30, 9)},
						{Name: "timeout", Pos: p(30, 22), Value: "1h", Literal: true},
						{Name: "env", Pos: p(30, 38), Value: map[string]any{"K": "v"}, Literal: true},
						{Name: "cpu", Pos: p(30, 56), Value: 0.5, Literal: true},
					}},
				{Name: "body", Pos: p(9, 5), Params: []string{"ctx"}, Options: []*Option{},
					Next: &Transition{Kind: Switch, Targets: []Target{
						{Step: "j1", Pos: p(11, 19), Call: p(11, 9)},
						{Step: "j1", Pos: p(13, 19), Call: p(13, 9)},
						{Step: "j1", Pos: p(15, 19), Call: p(15, 9)},
					}}},
				{Name: "j1", Pos: p(17, 5), Params: []string{"ctx", "inputs"}, Join: true, Options: []*Option{},
					Next: &Transition{Kind: Linear, Targets: []Target{{Step: "j2", Pos: p(18, 15), Call: p(18, 5)}}}},
				{Name: "b", Pos: p(20, 5), Params: []string{"ctx"}, Options: []*Option{},
					Next: &Transition{Kind: Linear, Targets: []Target{{Step: "j2", Pos: p(21, 15), Call: p(21, 5)}}}},
				{Name: "j2", Pos: p(23, 5), Params: []string{"ctx", "inputs"}, Join: true, Options: []*Option{},
					Next: &Transition{Kind: Linear, Targets: []Target{{Step: "finish", Pos: p(24, 15), Call: p(24, 5)}}}},
				{Name: "finish", Pos: p(26, 5), Params: []string{"ctx"}, Options: []*Option{}},
			},
		},
	}}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			f, err := Parse("f.star", test.src)
			if err != nil {
				t.Fatal(err)
			}
			g, err := Extract(f, starlark.Universe.Has)
			if err != nil {
				t.Fatalf("Extract: %v", err)
			}
			if err := Validate(g); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if diff := cmp.Diff(test.want, g, cmpopts.IgnoreUnexported(Graph{}, Step{}), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Extract mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEditDistanceHints(t *testing.T) {
	tests := []struct {
		name       string
		candidates []string
		want       string
	}{
		{"helo", []string{"start", "hello", "finish"}, "hello"},
		{"strat", []string{"start", "finish"}, "start"},
		{"x", []string{"start", "finish"}, ""},
		{"trian", []string{"train", "test"}, "train"},
	}
	for _, test := range tests {
		if got := closest(test.name, test.candidates); got != test.want {
			t.Errorf("closest(%q, %q) = %q, want %q", test.name, test.candidates, got, test.want)
		}
	}
}
