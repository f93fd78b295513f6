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

// A Set is the names a flow can use besides the Starlark universe: the
// one registry that the name resolver, the shadowing rule, the checks of
// dagger check, the run and the task runner all read. A flow keeps the
// set it was loaded with; changing the set afterwards does not change the
// flow.
type Set struct {
	values     starlark.StringDict
	flowOnly   map[string]bool   // names a load()ed module cannot use
	standard   map[string]bool   // names of Standard, which no embedder may replace
	capability map[string]string // names of modules a flow has only when a step declares this kind of capability
}

// Standard returns the builtins every flow has: next_step, param and step,
// which only the flow file may call, and the modules json, math, time and
// struct. None reaches a file, the network, the environment or a source
// of randomness. The modules that do, exec, files, http and env, are
// names of a flow only when one of its steps declares the capability each
// needs (exec, files, net and env), and only a step that declares it may
// use one.
func Standard() *Set {
	s := &Set{
		values: starlark.StringDict{
			"next_step": starlark.NewBuiltin("next_step", nextStep),
			"param":     starlark.NewBuiltin("param", param),
			"step":      starlark.NewBuiltin("step", stepOptions),
			"package":   starlark.NewBuiltin("package", packageDecl),
			"json":      json.Module,
			"math":      math.Module,
			"time":      time.Module,
			"struct":    starlark.NewBuiltin("struct", starlarkstruct.Make),
			"getattr":   starlark.NewBuiltin("getattr", getattr), // Starlark's, stricter for ctx
			"exec":      execModule(),
			"files":     filesModule(),
			"http":      httpModule(),
			"env":       envModule(),
		},
		flowOnly:   map[string]bool{"next_step": true, "param": true, "step": true, "package": true},
		capability: map[string]string{"exec": dag.CapExec, "files": dag.CapFiles, "http": dag.CapNet, "env": dag.CapEnv},
	}
	s.standard = make(map[string]bool, len(s.values))
	for name := range s.values {
		s.standard[name] = true
	}
	return s
}

// Add makes v available to flows, and to the modules they load, as name:
// a function (a *starlark.Builtin), a module (a *starlarkstruct.Module) or
// any other value. Embedders call it before they load a flow, since the
// names a flow may use are checked before it runs. name must be an
// identifier, not a keyword, and must not be a name of the Starlark
// universe, of the standard set, or already added.
func (s *Set) Add(name string, v starlark.Value) error {
	if !dag.IsIdent(name) {
		return fmt.Errorf("builtin name %q is not an identifier, or is a Starlark keyword", name)
	}
	switch {
	case s.standard[name]:
		return fmt.Errorf("builtin %s would shadow dagger's standard builtin %s", name, name)
	case starlark.Universe.Has(name):
		return fmt.Errorf("builtin %s would shadow the Starlark builtin %s", name, name)
	case s.IsPredeclared(name):
		return fmt.Errorf("builtin %s is already added", name)
	}
	if v == nil {
		return fmt.Errorf("builtin %s has no value", name)
	}
	s.values[name] = v
	return nil
}

// AddFlowOnly is Add for a builtin that only the flow file may use, as
// next_step is: a module that names it fails the flow's checks, so that
// modules stay plain helpers.
func (s *Set) AddFlowOnly(name string, v starlark.Value) error {
	if err := s.Add(name, v); err != nil {
		return err
	}
	s.flowOnly[name] = true
	return nil
}

// Has reports whether name is a builtin of the set or of the Starlark
// universe: a name no top-level name of a flow may shadow. The modules of
// capabilities are not, since a flow that declares none has no such
// names.
func (s *Set) Has(name string) bool {
	_, ok := s.values[name]
	return ok && s.capability[name] == "" || starlark.Universe.Has(name)
}

// Resolvable returns the predicate that the files of a flow whose steps
// declare capabilities of kinds are resolved with: the set's names, less
// the modules of capabilities no step declares, and, for a load()ed
// module (flowFile false), less the flow-only names.
func (s *Set) Resolvable(kinds map[string]bool, flowFile bool) func(name string) bool {
	return func(name string) bool {
		_, ok := s.values[name]
		if kind := s.capability[name]; kind != "" && !kinds[kind] {
			return false
		}
		return ok && (flowFile || !s.flowOnly[name])
	}
}

// IsPredeclared reports whether name is a builtin of the set; it is the
// predicate flow files are resolved with.
func (s *Set) IsPredeclared(name string) bool {
	_, ok := s.values[name]
	return ok
}

// CapabilityOf returns the kind of capability a step declares to use
// the module name, such as "net" for http; "" for other names.
func (s *Set) CapabilityOf(name string) string { return s.capability[name] }

// FlowOnly reports whether name is a builtin that only the flow file may
// use.
func (s *Set) FlowOnly(name string) bool { return s.flowOnly[name] }

// Names returns the set's names, sorted.
func (s *Set) Names() []string { return slices.Sorted(maps.Keys(s.values)) }

// Predeclared returns the values the flow file sees, frozen.
func (s *Set) Predeclared() starlark.StringDict {
	d := maps.Clone(s.values)
	d.Freeze()
	return d
}

// ModulePredeclared returns the values a load()ed module sees, frozen:
// those of Predeclared less the flow-only ones.
func (s *Set) ModulePredeclared() starlark.StringDict {
	d := make(starlark.StringDict, len(s.values))
	for name, v := range s.values {
		if !s.flowOnly[name] {
			d[name] = v
		}
	}
	d.Freeze()
	return d
}

// Clone returns a copy of s, to which names can be added without
// changing s.
func (s *Set) Clone() *Set {
	return &Set{values: maps.Clone(s.values), flowOnly: maps.Clone(s.flowOnly), standard: s.standard, capability: s.capability}
}
