package cli

import (
	"testing"

	sl "go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/daggerflow/dagger/dag"
	"github.com/daggerflow/dagger/starlark"
)

// artifact returns the value of the Starlark expression expr as an
// artifact reads back from the store: encoded, then decoded.
func artifact(t *testing.T, expr string) sl.Value {
	t.Helper()
	predeclared := sl.StringDict{"struct": sl.NewBuiltin("struct", starlarkstruct.Make)}
	v, err := sl.EvalOptions(dag.FileOptions(), &sl.Thread{}, "expr", expr, predeclared)
	if err != nil {
		t.Fatal(err)
	}
	return decoded(t, v)
}

// decoded returns v encoded, then decoded, as the store gives it back.
func decoded(t *testing.T, v sl.Value) sl.Value {
	t.Helper()
	data, err := starlark.Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	v, err = starlark.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestAppendJSON checks which artifact values have a JSON form, what it
// is, and what the error says of those that have none.
func TestAppendJSON(t *testing.T) {
	tests := []struct {
		expr string
		want string // the JSON form
		err  string // or the error
	}{
		{expr: `None`, want: `null`},
		{expr: `True`, want: `true`},
		{expr: `-7`, want: `-7`},
		{expr: `1 << 100`, want: `1267650600228229401496703205376`},
		{expr: `2.0`, want: `2.0`},
		{expr: `-0.0`, want: `-0.0`},
		{expr: `1e300 * 10`, want: `1e+301`},
		{expr: `1e-7`, want: `1e-07`},
		{expr: `"a \"b\"\\\n\t\r\x01 <&> é ☃"`, want: `"a \"b\"\\\n\t\r\u0001 <&> é ☃"`},
		{expr: `[1, [2.5, None], ()]`, want: `[1,[2.5,null],[]]`},
		{expr: `{"b": 1, "a": {"c": []}, "": {}}`, want: `{"b":1,"a":{"c":[]},"":{}}`},
		{expr: `struct(z = 1, a = struct(b = True))`, want: `{"a":{"b":true},"z":1}`},
		{expr: `float("nan")`, err: "it is the float nan"},
		{expr: `[float("-inf")]`, err: "[0] is the float -inf"},
		{expr: `b"\x00"`, err: "it is bytes"},
		{expr: `set([1])`, err: "it is a set"},
		{expr: `{"a": 1, 2: 3}`, err: ".keys()[1] is a key of type int"},
		{expr: `{"k": [1, (b"x",)]}`, err: `["k"][1][0] is bytes`},
		{expr: `struct(s = set())`, err: ".s is a set"},
	}
	for _, tt := range tests {
		got, err := appendJSON(nil, artifact(t, tt.expr), "")
		switch {
		case tt.err != "":
			if err == nil || err.Error() != tt.err {
				t.Errorf("appendJSON(%s) = %s, %v; want error %s", tt.expr, got, err, tt.err)
			}
		case err != nil:
			t.Errorf("appendJSON(%s): %v", tt.expr, err)
		case string(got) != tt.want:
			t.Errorf("appendJSON(%s) = %s, want %s", tt.expr, got, tt.want)
		}
	}
}

// TestAppendJSONNotUTF8 checks that a string JSON would mangle has no JSON
// form. Flows cannot easily make one, but the codec keeps one.
func TestAppendJSONNotUTF8(t *testing.T) {
	v := decoded(t, sl.NewList([]sl.Value{sl.String("ok"), sl.String("\xff")}))
	if _, err := appendJSON(nil, v, ""); err == nil || err.Error() != "[1] is a string that is not UTF-8" {
		t.Errorf("appendJSON = %v, want an error for [1]", err)
	}
}

// TestFormatValue checks how dagger inspect prints values, with and
// without --json, and what dagger inspect -o writes.
func TestFormatValue(t *testing.T) {
	tests := []struct {
		expr         string
		text, json   string // what formatValue returns; "" for an error
		raw, rawJSON string // what rawValue returns; "" for an error
	}{
		{expr: `"a\nb"`, text: `"a\nb"`, json: `"a\nb"`, raw: "a\nb", rawJSON: "\"a\\nb\"\n"},
		{expr: `b"\x00\xff"`, text: `b"\x00\xff"`, raw: "\x00\xff"},
		{expr: `{"a": [1]}`, text: "{\n  \"a\": [\n    1\n  ]\n}", json: "{\n  \"a\": [\n    1\n  ]\n}",
			raw: "{\n  \"a\": [\n    1\n  ]\n}\n", rawJSON: "{\n  \"a\": [\n    1\n  ]\n}\n"},
		{expr: `set([2, 1])`, text: `set([2, 1])`, raw: "set([2, 1])\n"},
		{expr: `{1: "one"}`, text: `{1: "one"}`, raw: "{1: \"one\"}\n"},
	}
	for _, tt := range tests {
		v := artifact(t, tt.expr)
		check := func(name, want string, got []byte, err error) {
			t.Helper()
			switch {
			case want == "" && err == nil:
				t.Errorf("%s(%s) = %q, want an error", name, tt.expr, got)
			case want != "" && err != nil:
				t.Errorf("%s(%s): %v", name, tt.expr, err)
			case string(got) != want:
				t.Errorf("%s(%s) = %q, want %q", name, tt.expr, got, want)
			}
		}
		got, err := formatValue(v, false)
		check("formatValue", tt.text, got, err)
		got, err = formatValue(v, true)
		check("formatValue with JSON", tt.json, got, err)
		got, err = rawValue(v, false)
		check("rawValue", tt.raw, got, err)
		got, err = rawValue(v, true)
		check("rawValue with JSON", tt.rawJSON, got, err)
	}
}
