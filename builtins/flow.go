package builtins

import (
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"

	"go.starlark.net/lib/json"
	"go.starlark.net/starlark"

	"github.com/daggerflow/dagger/dag"
)

const (
	setupKey = "dagger.setup"
	nextKey  = "dagger.next"
)

// A Setup is the state of a flow's top-level code: it gives param the
// run's values and collects the options step declares. Attach it to the
// thread that runs the top-level code.
type Setup struct {
	Params  map[string]starlark.Value // the values given for the run; others take their defaults
	Options map[string]map[string]any // step -> option -> value, as dag reads literals
	steps   map[string]bool
}

// NewSetup returns a Setup for the flow g with the param values given for
// the run.
func NewSetup(g *dag.Graph, params map[string]starlark.Value) *Setup {
	s := &Setup{Params: params, Options: make(map[string]map[string]any), steps: make(map[string]bool)}
	for _, st := range g.Steps {
		s.steps[st.Name] = true
	}
	return s
}

// Attach makes s the setup of thread.
func (s *Setup) Attach(thread *starlark.Thread) { thread.SetLocal(setupKey, s) }

func param(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var name string
	var def, typ starlark.Value
	var help string
	// The type was checked with the rest of the declaration: the value
	// given for the run is of it.
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name, "default?", &def, "type?", &typ, "help?", &help); err != nil {
		return nil, err
	}
	setup, ok := thread.Local(setupKey).(*Setup)
	if !ok {
		return nil, fmt.Errorf("param: called while no flow is being set up; call it at top level")
	}
	if v, ok := setup.Params[name]; ok {
		return v, nil
	}
	if def == nil {
		return nil, fmt.Errorf("param: %s is required; give it with -p %s=<value>", name, name)
	}
	return def, nil
}

func stepOptions(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	setup, ok := thread.Local(setupKey).(*Setup)
	if !ok {
		return nil, fmt.Errorf("step: called while no flow is being set up; call it at top level")
	}
	if len(args) != 1 {
		return nil, fmt.Errorf("step: want the step and then options as name = value, got %d positional arguments", len(args))
	}
	fn, ok := args[0].(*starlark.Function)
	if !ok || !setup.steps[fn.Name()] {
		return nil, fmt.Errorf("step: %s is not a step of the flow", args[0])
	}
	opts := setup.Options[fn.Name()]
	if opts == nil {
		opts = make(map[string]any)
		setup.Options[fn.Name()] = opts
	}
	for _, kv := range kwargs {
		name := string(kv[0].(starlark.String))
		if !slices.Contains(dag.OptionNames(), name) {
			return nil, fmt.Errorf("step: unknown option %s", name)
		}
		if _, dup := opts[name]; dup {
			return nil, fmt.Errorf("step: option %s of step %s is already set", name, fn.Name())
		}
		v, err := goValue(kv[1])
		if err != nil {
			return nil, fmt.Errorf("step %s: option %s: %w", fn.Name(), name, err)
		}
		if err := dag.CheckOption(name, v); err != nil {
			return nil, fmt.Errorf("step %s: %w", fn.Name(), err)
		}
		opts[name] = v
	}
	return starlark.None, nil
}

// packageDecl is package(include = [...]), which names the flow's own
// files. The loader reads the declaration before any code runs, and adds
// the files to the code package then; the call, which the flow's top-level
// code makes again in every process that runs tasks, does nothing.
func packageDecl(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var include *starlark.List
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "include", &include); err != nil {
		return nil, err
	}
	return starlark.None, nil
}

// goValue converts an option's value to the Go value dag reads literals as.
func goValue(v starlark.Value) (any, error) {
	switch v := v.(type) {
	case starlark.NoneType:
		return nil, nil
	case starlark.Bool:
		return bool(v), nil
	case starlark.Int:
		n, ok := v.Int64()
		if !ok {
			return nil, fmt.Errorf("%s is too large", v)
		}
		return n, nil
	case starlark.Float:
		return float64(v), nil
	case starlark.String:
		return string(v), nil
	case *starlark.List, starlark.Tuple:
		var list []any
		iter := starlark.Iterate(v)
		defer iter.Done()
		var x starlark.Value
		for iter.Next(&x) {
			gv, err := goValue(x)
			if err != nil {
				return nil, err
			}
			list = append(list, gv)
		}
		return list, nil
	case *starlark.Dict:
		m := make(map[string]any, v.Len())
		for _, kv := range v.Items() {
			k, ok := kv[0].(starlark.String)
			if !ok {
				return nil, fmt.Errorf("dict key %s is not a string", kv[0])
			}
			gv, err := goValue(kv[1])
			if err != nil {
				return nil, err
			}
			m[string(k)] = gv
		}
		return m, nil
	}
	return nil, fmt.Errorf("%s is not an option value", a(v.Type()))
}

// A Next is what next_step recorded while a task ran: the steps chosen,
// and the sequence to fan out over, if any. Attach one to the thread that
// runs a step.
type Next struct {
	Targets []string
	Foreach starlark.Value // nil unless next_step was given foreach
	Called  bool
}

// Attach makes n the recorder of next_step calls on thread.
func (n *Next) Attach(thread *starlark.Thread) { thread.SetLocal(nextKey, n) }

func nextStep(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	n, ok := thread.Local(nextKey).(*Next)
	if !ok {
		return nil, fmt.Errorf("next_step: called while no step runs")
	}
	if n.Called {
		return nil, fmt.Errorf("next_step: called twice in one task")
	}
	var foreach starlark.Value
	if err := starlark.UnpackArgs(b.Name(), nil, kwargs, "foreach?", &foreach); err != nil {
		return nil, err
	}
	if len(args) == 0 {
		return nil, fmt.Errorf("next_step: name the next step")
	}
	for _, a := range args {
		fn, ok := a.(*starlark.Function)
		if !ok {
			return nil, fmt.Errorf("next_step: %s is not a step", a)
		}
		n.Targets = append(n.Targets, fn.Name())
	}
	if foreach != nil {
		if _, ok := foreach.(starlark.Iterable); !ok {
			return nil, fmt.Errorf("next_step: foreach wants a sequence, not %s", a(foreach.Type()))
		}
		n.Foreach = foreach
	}
	n.Called = true
	return starlark.None, nil
}

// ParamValue converts the text given for p on the command line to a value
// of the param's type: decimal ints of any size, finite floats, the bools
// true and false (as JSON writes them), strings as they are, lists,
// tuples and dicts as JSON, and any JSON value for a param of type json
// (one whose default is None and that names no type).
func ParamValue(p *dag.Param, text string) (starlark.Value, error) {
	switch p.Type {
	case "string":
		return starlark.String(text), nil
	case "int":
		n, ok := new(big.Int).SetString(text, 10)
		if !ok {
			return nil, fmt.Errorf("param %s: %q is not an int", p.Name, text)
		}
		return starlark.MakeBigInt(n), nil
	case "float":
		f, err := strconv.ParseFloat(text, 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, fmt.Errorf("param %s: %q is not a finite float", p.Name, text)
		}
		return starlark.Float(f), nil
	case "bool":
		// One spelling everywhere: JSON's, which lists and dicts of
		// bools are given in, and which the run's record keeps.
		switch text {
		case "true":
			return starlark.True, nil
		case "false":
			return starlark.False, nil
		}
		return nil, fmt.Errorf("param %s: %q is not a bool: write true or false", p.Name, text)
	case "list", "tuple", "dict":
		v, err := fromJSON(text)
		if err != nil {
			return nil, fmt.Errorf("param %s: %w", p.Name, err)
		}
		want := map[string]string{"list": "list", "tuple": "list", "dict": "dict"}[p.Type]
		if got := v.Type(); got != want {
			return nil, fmt.Errorf("param %s: want a JSON %s, got %s", p.Name, map[string]string{"list": "array", "dict": "object"}[want], jsonKind(got))
		}
		if p.Type == "tuple" {
			list := v.(*starlark.List)
			t := make(starlark.Tuple, list.Len())
			for i := range t {
				t[i] = list.Index(i)
			}
			return t, nil
		}
		return v, nil
	case "json":
		v, err := fromJSON(text)
		if err != nil {
			return nil, fmt.Errorf("param %s: %w; a string is given quoted, as -p '%s=\"text\"', or declared with type = str", p.Name, err, p.Name)
		}
		return v, nil
	}
	return nil, fmt.Errorf("param %s has unknown type %s", p.Name, p.Type)
}

// jsonKind names the JSON kind of a value that the json module decoded,
// by its Starlark type.
func jsonKind(starlarkType string) string {
	switch starlarkType {
	case "list":
		return "an array"
	case "dict":
		return "an object"
	case "NoneType":
		return "null"
	case "bool":
		return "a bool"
	case "string":
		return "a string"
	}
	return "a number"
}

// fromJSON decodes JSON text to a Starlark value with the json module.
func fromJSON(text string) (starlark.Value, error) {
	decode := json.Module.Members["decode"]
	v, err := starlark.Call(&starlark.Thread{Name: "param"}, decode, starlark.Tuple{starlark.String(text)}, nil)
	if err != nil {
		return nil, fmt.Errorf("%q is not JSON: %w", text, err)
	}
	return v, nil
}
