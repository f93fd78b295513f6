package history_test

import (
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	sl "go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/daggerflow/dagger/builtins"
	"github.com/daggerflow/dagger/dag"
	"github.com/daggerflow/dagger/history"
	"github.com/daggerflow/dagger/starlark"
	"github.com/daggerflow/dagger/store"
)

// artifact returns the value of the Starlark expression expr as an
// artifact reads back from the store: encoded, then decoded.
func artifact(t *testing.T, expr string) sl.Value {
	t.Helper()
	predeclared := sl.StringDict{
		"struct": sl.NewBuiltin("struct", starlarkstruct.Make),
		"file":   sl.NewBuiltin("file", file),
	}
	v, err := sl.EvalOptions(dag.FileOptions(), &sl.Thread{}, "expr", expr, predeclared)
	if err != nil {
		t.Fatal(err)
	}
	return decoded(t, v)
}

// file is file(content, name), the builtins.File of content named name.
func file(_ *sl.Thread, b *sl.Builtin, args sl.Tuple, kwargs []sl.Tuple) (sl.Value, error) {
	var content, name string
	if err := sl.UnpackPositionalArgs(b.Name(), args, kwargs, 2, &content, &name); err != nil {
		return nil, err
	}
	return builtins.NewFile(store.HashOf(sha256.Sum256([]byte(content))), name, int64(len(content)))
}

// hashABC is the hash of the content "abc".
const hashABC = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

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

// TestJSON checks which artifact values have a JSON form, what it is, and
// which part of those that have none the error points at.
func TestJSON(t *testing.T) {
	tests := []struct {
		expr string
		want string                // the JSON form
		err  *history.NotJSONError // or the error
		msg  string                // and its message
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
		{expr: `float("nan")`, err: &history.NotJSONError{What: "the float nan"}, msg: "it is the float nan"},
		{expr: `[float("-inf")]`, err: &history.NotJSONError{Path: "[0]", What: "the float -inf"}, msg: "[0] is the float -inf"},
		{expr: `b"\x00"`, err: &history.NotJSONError{What: "bytes"}, msg: "it is bytes"},
		{expr: `set([1])`, err: &history.NotJSONError{What: "a set"}, msg: "it is a set"},
		{expr: `{"a": 1, 2: 3}`, err: &history.NotJSONError{Path: ".keys()[1]", What: "a key of type int"}, msg: ".keys()[1] is a key of type int"},
		{expr: `{"k": [1, (b"x",)]}`, err: &history.NotJSONError{Path: `["k"][1][0]`, What: "bytes"}, msg: `["k"][1][0] is bytes`},
		{expr: `struct(s = set())`, err: &history.NotJSONError{Path: ".s", What: "a set"}, msg: ".s is a set"},
		{expr: `file("abc", "m.pt")`, want: `{"type":"file","name":"m.pt","size":3,"hash":"` + hashABC + `"}`},
		{expr: `{"best": [file("abc", "é \"1\"")]}`, want: `{"best":[{"type":"file","name":"é \"1\"","size":3,"hash":"` + hashABC + `"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			got, err := history.JSON(artifact(t, tt.expr))
			if tt.err == nil {
				if err != nil || string(got) != tt.want {
					t.Errorf("JSON = %s, %v; want %s", got, err, tt.want)
				}
				return
			}
			var notJSON *history.NotJSONError
			if !errors.As(err, &notJSON) {
				t.Fatalf("JSON = %s, %v; want a *NotJSONError", got, err)
			}
			if diff := cmp.Diff(tt.err, notJSON); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if err.Error() != tt.msg {
				t.Errorf("error %q, want %q", err, tt.msg)
			}
		})
	}
}

// TestJSONNotUTF8 checks that a string JSON would mangle has no JSON
// form. Flows cannot easily make one, but the codec keeps one.
func TestJSONNotUTF8(t *testing.T) {
	v := decoded(t, sl.NewList([]sl.Value{sl.String("ok"), sl.String("\xff")}))
	if _, err := history.JSON(v); err == nil || err.Error() != "[1] is a string that is not UTF-8" {
		t.Errorf("JSON = %v, want an error for [1]", err)
	}
	f, err := builtins.NewFile(hashABC, "\xff", 3)
	if err != nil {
		t.Fatal(err)
	}
	v = decoded(t, sl.NewList([]sl.Value{f}))
	if _, err := history.JSON(v); err == nil || err.Error() != "[0].name is a file name that is not UTF-8" {
		t.Errorf("JSON = %v, want an error for [0].name", err)
	}
}

// TestFormatValue checks how values are shown to people, with and
// without asJSON.
func TestFormatValue(t *testing.T) {
	tests := []struct {
		expr       string
		text, json string // what FormatValue returns; "" for an error
	}{
		{expr: `"a\nb"`, text: `"a\nb"`, json: `"a\nb"`},
		{expr: `b"\x00\xff"`, text: `b"\x00\xff"`},
		{expr: `{"a": [1]}`, text: "{\n  \"a\": [\n    1\n  ]\n}", json: "{\n  \"a\": [\n    1\n  ]\n}"},
		{expr: `set([2, 1])`, text: `set([2, 1])`},
		{expr: `{1: "one"}`, text: `{1: "one"}`},
		{expr: `struct(b = 2.0, a = [])`, text: "{\n  \"a\": [],\n  \"b\": 2.0\n}", json: "{\n  \"a\": [],\n  \"b\": 2.0\n}"},
		{
			expr: `file("abc", "m.pt")`,
			text: `file("m.pt", 3 bytes, ` + hashABC + `)`,
			json: "{\n  \"type\": \"file\",\n  \"name\": \"m.pt\",\n  \"size\": 3,\n  \"hash\": \"" + hashABC + "\"\n}",
		},
	}
	for _, tt := range tests {
		v := artifact(t, tt.expr)
		for _, asJSON := range []bool{false, true} {
			want := tt.text
			if asJSON {
				want = tt.json
			}
			got, err := history.FormatValue(v, asJSON)
			var notJSON *history.NotJSONError
			switch {
			case want == "" && !errors.As(err, &notJSON):
				t.Errorf("FormatValue(%s, %v) = %q, %v; want a *NotJSONError", tt.expr, asJSON, got, err)
			case want != "" && err != nil:
				t.Errorf("FormatValue(%s, %v): %v", tt.expr, asJSON, err)
			case string(got) != want:
				t.Errorf("FormatValue(%s, %v) = %q, want %q", tt.expr, asJSON, got, want)
			}
		}
	}
}
