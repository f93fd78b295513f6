package dag

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.starlark.net/starlark"
)

const validFlow = "def start(ctx):\n    next_step(finish)\n\ndef finish(ctx):\n    pass\n"

// TestParseText checks that a NUL byte or invalid UTF-8, which the
// scanner would take for the end of the file or keep in a string, is an
// error at its position, columns counted in runes.
func TestParseText(t *testing.T) {
	tests := []struct {
		name, src string
		want      string // the error, or "" for none
	}{
		{"valid", "# é\n" + validFlow, ""},
		{"NUL before steps", "def start(ctx):\n    next_step(finish)\n\x00\ndef finish(ctx):\n    pass\n", `f.star:3:1: the file holds a NUL byte`},
		{"NUL in a string", `x = "é` + "\x00" + `"` + "\n" + validFlow, `f.star:1:7: the file holds a NUL byte`},
		{"invalid UTF-8", "x = 1\ny = \"\xff\"\n" + validFlow, `f.star:2:6: the file is not valid UTF-8 here (byte 0xff)`},
		{"truncated rune", "# \xc3\n" + validFlow, `f.star:1:3: the file is not valid UTF-8 here (byte 0xc3)`},
	}
	for _, test := range tests {
		for _, src := range []any{test.src, []byte(test.src), strings.NewReader(test.src)} {
			_, err := Parse("f.star", src)
			got := ""
			if err != nil {
				got = strings.SplitN(err.Error(), "\n", 2)[0]
			}
			if got != test.want {
				t.Errorf("%s (%T): Parse error = %q, want %q", test.name, src, got, test.want)
			}
		}
	}
}

// TestFlowName checks the name of a flow, its file's without .star, and
// that a file called .star, which would give a flow no name, is refused.
func TestFlowName(t *testing.T) {
	tests := []struct {
		file, name, err string
	}{
		{"flows/train.star", "train", ""},
		{"train", "train", ""},
		{"flows/.star", "", "flows/.star:1:1: the flow file .star has no name: a flow is named for its file, without .star"},
	}
	for _, test := range tests {
		f, err := Parse(test.file, validFlow)
		if err != nil {
			t.Fatal(err)
		}
		g, err := Extract(f, starlark.Universe.Has)
		got := ""
		if err != nil {
			got = AsList(err)[0].Pos.String() + ": " + AsList(err)[0].Msg
		}
		if g.Name != test.name || got != test.err {
			t.Errorf("Extract(%s): name %q, error %q; want %q, %q", test.file, g.Name, got, test.name, test.err)
		}
	}
}

// TestCheckModule checks that a module's code is held to the rules of the
// flow's that do not concern steps.
func TestCheckModule(t *testing.T) {
	src := `load("other.star", "o")
x = _f(o)

def _f(n):
    return _f(n - 1)

def prep(ctx):
    ctx.input = 1

def start(ctx):  # not a step in a module: a plain function
    pass
`
	f, err := Parse("lib.star", src)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range AsList(CheckModule(f)) {
		got = append(got, e.Pos.String()+": "+e.Msg)
	}
	want := []string{
		"lib.star:2:5: _f is used before def _f at line 4",
		"lib.star:5:12: recursion: _f -> _f; Starlark does not allow a function to call itself, directly or through others",
		"lib.star:8:5: ctx.input is reserved; choose another name for the artifact",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("CheckModule (-want +got):\n%s", diff)
	}
}

// TestParamTypes checks the type and default each form of param gives.
func TestParamTypes(t *testing.T) {
	src := `a = param("a")
b = param("b", type = int)
c = param("c", default = (1, (2, 3)))
d = param("d", default = None)
e = param("e", default = None, type = str)
f = param("f", default = [1], type = list)
g = param("g", default = ((1)))
` + validFlow
	f, err := Parse("f.star", src)
	if err != nil {
		t.Fatal(err)
	}
	g, err := Extract(f, starlark.Universe.Has)
	if err != nil {
		t.Fatal(err)
	}
	type param struct {
		Name, Type string
		Default    any
		Required   bool
	}
	var got []param
	for _, p := range g.Params {
		got = append(got, param{p.Name, p.Type, p.Default, p.Required})
	}
	want := []param{
		{"a", "string", nil, true},
		{"b", "int", nil, true},
		{"c", "tuple", []any{int64(1), []any{int64(2), int64(3)}}, false},
		{"d", "json", nil, false},
		{"e", "string", nil, false},
		{"f", "list", []any{int64(1)}, false},
		{"g", "int", int64(1), false},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("params (-want +got):\n%s", diff)
	}
}
