package builtins

import (
	"fmt"
	"maps"
	"slices"

	"go.starlark.net/lib/json"
	"go.starlark.net/lib/math"
	"go.starlark.net/lib/time"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/daggerflow/dagger/dag"
)

// A Set is the names a flow can use besides the Starlark universe.
type Set struct {
	values starlark.StringDict
}

// Standard returns the builtins every flow has.
func Standard() *Set {
	return &Set{values: starlark.StringDict{
		"next_step": starlark.NewBuiltin("next_step", nextStep),
		"param":     starlark.NewBuiltin("param", param),
		"step":      starlark.NewBuiltin("step", stepOptions),
		"json":      json.Module,
		"math":      math.Module,
		"time":      time.Module,
		"struct":    starlark.NewBuiltin("struct", starlarkstruct.Make),
	}}
}

// Add makes v available to flows as name. Embedders call it before they
// load a flow, since the names a flow may use are checked before it runs.
// name must be an identifier that is not already a builtin.
func (s *Set) Add(name string, v starlark.Value) error {
	if !dag.IsIdent(name) {
		return fmt.Errorf("builtin name %q is not an identifier", name)
	}
	if s.Has(name) {
		return fmt.Errorf("builtin %s is already defined", name)
	}
	s.values[name] = v
	return nil
}

// Has reports whether name is a builtin of the set or of the Starlark
// universe.
func (s *Set) Has(name string) bool {
	_, ok := s.values[name]
	return ok || starlark.Universe.Has(name)
}

// IsPredeclared reports whether name is a builtin of the set; it is the
// predicate flows are resolved with.
func (s *Set) IsPredeclared(name string) bool {
	_, ok := s.values[name]
	return ok
}

// Names returns the set's names, sorted.
func (s *Set) Names() []string { return slices.Sorted(maps.Keys(s.values)) }

// Predeclared returns the set's values, frozen, for the flow's globals.
func (s *Set) Predeclared() starlark.StringDict {
	d := maps.Clone(s.values)
	d.Freeze()
	return d
}
