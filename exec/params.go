package exec

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	sljson "go.starlark.net/lib/json"
	sl "go.starlark.net/starlark"

	"github.com/daggerflow/dagger/builtins"
	"github.com/daggerflow/dagger/dag"
)

// ParamValues converts the param values given for a run of g, as text
// from the command line, to Starlark values of each param's type. A value
// for an unknown param, a bad value, or a required param without one is an
// error that says what to do. Params not given take their defaults when the
// flow's top-level code calls param.
func ParamValues(g *dag.Graph, given map[string]string) (map[string]sl.Value, error) {
	values := make(map[string]sl.Value, len(given))
	byName := make(map[string]*dag.Param, len(g.Params))
	for _, p := range g.Params {
		byName[p.Name] = p
	}
	var problems []string
	for _, name := range sortedKeys(given) {
		p, ok := byName[name]
		if !ok {
			problems = append(problems, fmt.Sprintf("flow %s has no param %s%s", g.Name, name, paramList(g)))
			continue
		}
		v, err := builtins.ParamValue(p, given[name])
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		values[name] = v
	}
	for _, p := range g.Params {
		if _, ok := given[p.Name]; !ok && p.Required {
			problems = append(problems, fmt.Sprintf("param %s is required: give it with -p %s=<%s>", p.Name, p.Name, p.Type))
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(problems, "\n"))
	}
	return values, nil
}

func paramList(g *dag.Graph) string {
	if len(g.Params) == 0 {
		return " (it has none)"
	}
	names := make([]string, len(g.Params))
	for i, p := range g.Params {
		names[i] = p.Name
	}
	return "; its params are " + strings.Join(names, ", ")
}

// ParamsJSON returns the value of every param of a run as JSON text, for
// the run's record: the value given, else the default.
func ParamsJSON(g *dag.Graph, values map[string]sl.Value) (map[string]string, error) {
	out := make(map[string]string, len(g.Params))
	for _, p := range g.Params {
		var text []byte
		var err error
		if v, ok := values[p.Name]; ok {
			text, err = starlarkJSON(v)
		} else {
			text, err = json.Marshal(p.Default)
		}
		if err != nil {
			return nil, fmt.Errorf("param %s: %w", p.Name, err)
		}
		out[p.Name] = string(text)
	}
	return out, nil
}

// starlarkJSON encodes a param value, made of JSON-like types, as JSON.
func starlarkJSON(v sl.Value) ([]byte, error) {
	s, err := sl.Call(&sl.Thread{Name: "params"}, sljson.Module.Members["encode"], sl.Tuple{v}, nil)
	if err != nil {
		return nil, err
	}
	return []byte(s.(sl.String)), nil
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// ParamsFromRecord returns the param values of a recorded run (JSON text
// by name, as ParamsJSON made them) as command-line text for a new run of
// g: the values a resumed run runs with. A value equal to the param's
// default in g is left out, so the default applies as the flow writes it;
// params g no longer has are dropped.
func ParamsFromRecord(g *dag.Graph, recorded map[string]string) (map[string]string, error) {
	given := make(map[string]string)
	for _, p := range g.Params {
		text, ok := recorded[p.Name]
		if !ok {
			continue
		}
		if def, err := json.Marshal(p.Default); err == nil && p.HasDefault && string(def) == text {
			continue
		}
		if p.Type == "string" {
			var s string
			if err := json.Unmarshal([]byte(text), &s); err != nil {
				return nil, fmt.Errorf("param %s: recorded value %s is not a string", p.Name, text)
			}
			text = s
		}
		given[p.Name] = text
	}
	return given, nil
}
