package builtins

import (
	"errors"
	"strings"
	"testing"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/daggerflow/dagger/dag"
)

func TestParamValue(t *testing.T) {
	tests := []struct {
		typ, text string
		want      string // repr, or the error's text after "param p: "
		ok        bool
	}{
		{"string", "a=b, c", `"a=b, c"`, true},
		{"int", "12345678901234567890", "12345678901234567890", true},
		{"int", "-3", "-3", true},
		{"int", "010", "10", true},
		{"int", "0x10", `"0x10" is not an int`, false},
		{"int", "1.5", `"1.5" is not an int`, false},
		{"float", "2.5e3", "2500.0", true},
		{"float", "1.5abc", `"1.5abc" is not a finite float`, false},
		{"float", "nan", `"nan" is not a finite float`, false},
		{"float", "inf", `"inf" is not a finite float`, false},
		// One spelling, JSON's, as in lists and dicts of bools.
		{"bool", "true", "True", true},
		{"bool", "false", "False", true},
		{"bool", "True", `"True" is not a bool: write true or false`, false},
		{"bool", "yes", `"yes" is not a bool: write true or false`, false},
		{"bool", "0", `"0" is not a bool: write true or false`, false},
		{"bool", "maybe", `"maybe" is not a bool: write true or false`, false},
		{"list", `[1, "a", {"k": null}]`, `[1, "a", {"k": None}]`, true},
		{"list", `{"a": 1}`, "want a JSON array, got an object", false},
		{"tuple", `[3, [4]]`, "(3, [4])", true},
		{"tuple", `[]`, "()", true},
		{"tuple", `"ab"`, "want a JSON array, got a string", false},
		{"dict", `{"b": 1, "a": [2]}`, `{"b": 1, "a": [2]}`, true},
		{"dict", `{"b": `, "is not JSON", false},
		{"dict", `[true]`, "want a JSON object, got an array", false},
		{"json", `3`, "3", true},
		{"json", `"3"`, `"3"`, true},
		{"json", `null`, "None", true},
		{"json", `{"a": [true]}`, `{"a": [True]}`, true},
		{"json", `abc`, `is not JSON: json.decode: at offset 0, unexpected character 'a'; a string is given quoted, as -p 'p="text"', or declared with type = str`, false},
	}
	for _, test := range tests {
		v, err := ParamValue(&dag.Param{Name: "p", Type: test.typ}, test.text)
		switch {
		case test.ok && err != nil:
			t.Errorf("ParamValue(%s, %q): %v", test.typ, test.text, err)
		case test.ok && v.String() != test.want:
			t.Errorf("ParamValue(%s, %q) = %s, want %s", test.typ, test.text, v, test.want)
		case !test.ok && (err == nil || !strings.Contains(err.Error(), test.want)):
			t.Errorf("ParamValue(%s, %q) error = %v, want %q", test.typ, test.text, err, test.want)
		}
	}
}

func TestContext(t *testing.T) {
	values := map[string]starlark.Value{"h1": starlark.NewList([]starlark.Value{starlark.MakeInt(1)}), "h2": starlark.String("elem")}
	load := func(h string) (starlark.Value, error) {
		v, ok := values[h]
		if !ok {
			return nil, errors.New("no blob " + h)
		}
		return v, nil
	}
	info := TaskInfo{RunID: "r", Step: "s", TaskID: "s.3", Attempt: 2, Index: 3, Input: "h2"}
	bad := Conflict{Inputs: [2]ConflictInput{{Label: "branch a", TaskID: "a", Hash: "h1"}, {Label: "branch b", TaskID: "b"}}}
	c := NewContext(info, map[string]string{"xs": "h1", "gone": "h9"}, map[string]Conflict{"bad": bad}, load)
	for _, test := range []struct{ attr, want string }{
		{"run_id", `"r"`}, {"step", `"s"`}, {"task_id", `"s.3"`}, {"attempt", "2"}, {"index", "3"}, {"input", `"elem"`}, {"xs", "[1]"},
	} {
		v, err := c.Attr(test.attr)
		if err != nil || v.String() != test.want {
			t.Errorf("ctx.%s = %v, %v; want %s", test.attr, v, err, test.want)
		}
	}
	for _, test := range []struct{ attr, want string }{
		{"nope", "ctx has no artifact nope; artifacts: bad, gone, xs"},
		{"bad", "artifact bad differs between the inputs of this join: branch a (task a) has [1], branch b (task b) does not have it; set ctx.bad before reading it, or read it from inputs"},
		{"gone", "artifact gone: no blob h9"},
	} {
		if _, err := c.Attr(test.attr); err == nil || !strings.Contains(err.Error(), test.want) {
			t.Errorf("ctx.%s error = %v, want %q", test.attr, err, test.want)
		}
	}
	if err := c.SetField("attempt", starlark.None); err == nil || !strings.Contains(err.Error(), "ctx.attempt is reserved") {
		t.Errorf("setting ctx.attempt: %v", err)
	}
	if err := c.SetField("bad", starlark.True); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Attr("bad"); err != nil || v != starlark.True {
		t.Errorf("a conflict set by the task reads %v, %v", v, err)
	}
	touched, unchanged := c.Touched()
	if len(touched) != 2 || touched["xs"] == nil || touched["bad"] == nil || unchanged["gone"] != "h9" {
		t.Errorf("Touched() = %v, %v", touched, unchanged)
	}

	in := NewContext(TaskInfo{Step: "a", TaskID: "a", Index: -1}, map[string]string{"xs": "h1"}, nil, load).ReadOnly()
	if err := in.SetField("y", starlark.None); err == nil {
		t.Error("an input of a join took a new artifact")
	}
	xs, err := in.Attr("xs")
	if err != nil {
		t.Fatal(err)
	}
	if err := xs.(*starlark.List).Append(starlark.None); err == nil {
		t.Error("a value read from an input of a join could be changed")
	}
	if _, err := in.Attr("input"); err == nil {
		t.Error("ctx.input outside a foreach did not fail")
	}
}

func TestInputs(t *testing.T) {
	load := func(string) (starlark.Value, error) { return starlark.None, nil }
	a := NewContext(TaskInfo{Step: "a", TaskID: "a", Index: -1}, nil, nil, load)
	b := NewContext(TaskInfo{Step: "b", TaskID: "b", Index: -1}, nil, nil, load)
	split := NewInputs([]*Context{a, b}, true)
	if split.Len() != 2 || split.Index(1) != b {
		t.Error("inputs are not in branch order")
	}
	if v, err := split.Attr("b"); err != nil || v != b {
		t.Errorf("inputs.b = %v, %v", v, err)
	}
	if _, err := split.Attr("c"); err == nil || !strings.Contains(err.Error(), "branches: a, b") {
		t.Errorf("inputs.c error = %v", err)
	}
	foreach := NewInputs([]*Context{a, b}, false)
	if _, err := foreach.Attr("a"); err == nil {
		t.Error("the inputs of a foreach answered to a step name")
	}
}

func TestSetAdd(t *testing.T) {
	s := Standard()
	mod := &starlarkstruct.Module{Name: "kv", Members: starlark.StringDict{"get": starlark.NewBuiltin("get", nil)}}
	if err := s.Add("kv", mod); err != nil {
		t.Fatal(err)
	}
	if err := s.AddFlowOnly("emit", starlark.NewBuiltin("emit", nil)); err != nil {
		t.Fatal(err)
	}
	if !s.IsPredeclared("kv") || !s.Has("len") || s.IsPredeclared("len") {
		t.Error("Has and IsPredeclared disagree with the set")
	}
	if s.FlowOnly("kv") || !s.FlowOnly("emit") || !s.FlowOnly("next_step") {
		t.Error("FlowOnly is wrong")
	}
	if _, ok := s.ModulePredeclared()["emit"]; ok {
		t.Error("a module sees a flow-only builtin")
	}
	if s.Predeclared()["kv"] != mod || s.ModulePredeclared()["kv"] != mod {
		t.Error("the flow or a module does not see kv")
	}
	tests := []struct{ name, want string }{
		{"kv", "builtin kv is already added"},
		{"json", "would shadow dagger's standard builtin json"},
		{"next_step", "would shadow dagger's standard builtin next_step"},
		{"len", "would shadow the Starlark builtin len"},
		{"print", "would shadow the Starlark builtin print"},
		{"def", "is not an identifier, or is a Starlark keyword"},
		{"lambda", "is a Starlark keyword"},
		{"class", "is a Starlark keyword"}, // reserved by Starlark
		{"not-a-name", "is not an identifier"},
		{"", "is not an identifier"},
	}
	for _, test := range tests {
		if err := s.Add(test.name, starlark.None); err == nil || !strings.Contains(err.Error(), test.want) {
			t.Errorf("Add(%q) = %v, want %q", test.name, err, test.want)
		}
	}
	if err := s.Add("nothing", nil); err == nil {
		t.Error("Add took a nil value")
	}
}

func TestSetClone(t *testing.T) {
	s := Standard()
	c := s.Clone()
	if err := c.Add("fetch", starlark.None); err != nil {
		t.Fatal(err)
	}
	if s.IsPredeclared("fetch") {
		t.Error("adding to a clone changed the set")
	}
	if err := s.Add("fetch", starlark.None); err != nil {
		t.Errorf("the set refuses a name its clone has: %v", err)
	}
}
