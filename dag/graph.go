package dag

import (
	"fmt"
	"slices"
)

// A Pos is a position in a flow's source file. Lines and columns are 1-based.
type Pos struct {
	File string `json:"-"`
	Line int    `json:"line"`
	Col  int    `json:"col"`
}

func (p Pos) String() string {
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// before reports whether p comes before q in the same file.
func (p Pos) before(q Pos) bool {
	if p.Line != q.Line {
		return p.Line < q.Line
	}
	return p.Col < q.Col
}

// A Graph is the structure of one flow.
type Graph struct {
	Name   string   `json:"flow"` // the file name without ".star"
	File   string   `json:"file"` // the file name as given to the parser
	Doc    string   `json:"doc,omitempty"`
	Params []*Param `json:"params"`
	Steps  []*Step  `json:"steps"` // in source order
	Loads  []*Load  `json:"loads"`
	// Package is the flow's package(include = [...]) declaration, or nil.
	Package *PackageDecl `json:"package,omitempty"`

	steps map[string]*Step
}

// Step returns the step called name, or nil.
func (g *Graph) Step(name string) *Step { return g.steps[name] }

// A Step is a top-level function of the flow whose name does not start with
// an underscore.
type Step struct {
	Name string `json:"name"`
	Pos
	Doc    string      `json:"doc,omitempty"`
	Params []string    `json:"params"` // "ctx" and, for a join, "inputs"
	Join   bool        `json:"join"`   // declared with an inputs parameter
	Next   *Transition `json:"next"`   // nil for finish, or where next_step is misused
	// JoinedBy is the join that closes this step's split or foreach, once
	// Validate has found it.
	JoinedBy string    `json:"joined_by,omitempty"`
	Options  []*Option `json:"options"` // from step() calls, in source order
	// Allow are the capabilities the step declares with its allow option,
	// as Capabilities returns them.
	Allow []Capability `json:"allow,omitempty"`

	index int // in Graph.Steps
}

// Option returns the option called name, or nil.
func (s *Step) Option(name string) *Option {
	for _, o := range s.Options {
		if o.Name == name {
			return o
		}
	}
	return nil
}

// A Kind is the shape of a transition.
type Kind int

// The kinds of transition; see FLOWS.md.
const (
	Linear  Kind = iota // next_step(b)
	Split               // next_step(b, c, ...)
	Foreach             // next_step(b, foreach = seq)
	Switch              // next_step(a) and next_step(b) on different paths of a final if
)

var kindNames = [...]string{Linear: "linear", Split: "split", Foreach: "foreach", Switch: "switch"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// MarshalText makes kinds readable in JSON.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// A Transition is where a step goes when it ends.
type Transition struct {
	Kind    Kind     `json:"kind"`
	Targets []Target `json:"targets"` // one per alternative for a switch
	Foreach *Pos     `json:"foreach,omitempty"`
}

// Names returns the distinct target step names in order.
func (t *Transition) Names() []string {
	names := make([]string, 0, len(t.Targets))
	for _, tg := range t.Targets {
		if !slices.Contains(names, tg.Step) {
			names = append(names, tg.Step)
		}
	}
	return names
}

// A Target is a step named in a next_step call.
type Target struct {
	Step string `json:"step"`
	Pos         // of the name
	Call Pos    `json:"call"` // of the next_step call
}

// A Param is a parameter of the flow, declared with param() at top level.
type Param struct {
	Name string `json:"name"`
	Pos
	Var string `json:"var,omitempty"` // the global it is assigned to
	// Type is "string", "int", "float", "bool", "list", "tuple" or
	// "dict", as its type = argument or its default says, or "json" for
	// a param whose default is None and whose value is any JSON value.
	Type       string `json:"type"`
	Default    any    `json:"default"` // a Go value of Type, or nil: required, or a default of None
	HasDefault bool   `json:"-"`
	Required   bool   `json:"required"`
	Help       string `json:"help,omitempty"`
}

// An Option is a step option given to step() at top level.
type Option struct {
	Name string `json:"name"`
	Pos
	// Value is the option's value when it is a literal (string, int64,
	// float64, bool, []any or map[string]any); other values are known only
	// when the flow's top-level code runs, and checked then.
	Value   any  `json:"value"`
	Literal bool `json:"literal"`
}

// A Load is a load statement.
type Load struct {
	Module string `json:"module"`
	Pos
	Names []string `json:"names"` // the names it binds in the flow
}

// A PackageDecl is a flow's package(include = [...]) declaration: the
// files of the flow's folder, besides its code, that its code package
// holds and that every task finds in its working directory.
type PackageDecl struct {
	Pos                // of the call
	Include []*Pattern `json:"include"`
}

// A Pattern is a glob pattern of package(include = [...]): a path
// relative to the flow's folder, matched as fs.Glob does, one segment at
// a time.
type Pattern struct {
	Pattern string `json:"pattern"`
	Pos
}
