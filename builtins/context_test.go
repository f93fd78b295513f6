package builtins

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/syntax"

	"github.com/daggerflow/dagger/store"
)

// contextBlobs are the values of the tests' artifacts, by hash.
var contextBlobs = map[string]starlark.Value{
	"one":   starlark.MakeInt(1),
	"onef":  starlark.Float(1),
	"two":   starlark.MakeInt(2),
	"list":  starlark.NewList([]starlark.Value{starlark.MakeInt(1)}),
	"long":  starlark.String(strings.Repeat("x", 100)),
	"later": &Conflict{Join: "pick", Inputs: [2]ConflictInput{{Label: "branch a", TaskID: "a", Hash: "one"}, {Label: "branch b", TaskID: "b", Hash: "two"}}},
}

func contextLoad(h string) (starlark.Value, error) {
	v, ok := contextBlobs[h]
	if !ok {
		return nil, errors.New("no blob " + h)
	}
	if l, ok := v.(*starlark.List); ok {
		return starlark.NewList(slices.Collect(l.Elements())), nil // a fresh copy, as Decode makes
	}
	return v, nil
}

// contextRun runs src with ctx, a watched c, and the flow builtins'
// getattr, and returns the error.
func contextRun(c *Context, src string) error {
	thread := &starlark.Thread{Name: "test"}
	c.Watch(thread, func(v starlark.Value) error {
		if _, ok := v.(*starlark.Function); ok {
			return errors.New("value: a function cannot be saved as an artifact")
		}
		return nil
	})
	predeclared := starlark.StringDict{
		"ctx":     c,
		"getattr": Standard().values["getattr"],
		"struct":  starlark.NewBuiltin("struct", starlarkstruct.Make),
	}
	_, err := starlark.ExecFileOptions(&syntax.FileOptions{}, thread, "flow.star", src, predeclared)
	return err
}

func conflictOf(a, b string) Conflict {
	return Conflict{Inputs: [2]ConflictInput{{Label: "element 0", TaskID: "s.0", Hash: a}, {Label: "element 1", TaskID: "s.1", Hash: b}}}
}

func TestContextConflicts(t *testing.T) {
	join := TaskInfo{Step: "pick", TaskID: "pick", Index: -1}
	after := TaskInfo{Step: "end", TaskID: "end", Index: -1}
	for _, test := range []struct {
		name      string
		info      TaskInfo
		artifacts map[string]string
		conflict  Conflict
		want      string
	}{{
		name:     "values differ",
		info:     join,
		conflict: conflictOf("one", "two"),
		want:     "artifact x differs between the inputs of this join: element 0 (task s.0) has 1, element 1 (task s.1) has 2; set ctx.x before reading it, or read it from inputs",
	}, {
		name:     "one input lacks it",
		info:     join,
		conflict: conflictOf("list", ""),
		want:     "artifact x differs between the inputs of this join: element 0 (task s.0) has [1], element 1 (task s.1) does not have it; set ctx.x before reading it, or read it from inputs",
	}, {
		name:     "equal with ==",
		info:     join,
		conflict: conflictOf("one", "onef"),
		want: "artifact x differs between the inputs of this join: element 0 (task s.0) has 1, element 1 (task s.1) has 1.0; " +
			"they are equal with ==, but a join compares artifacts as saved, where an int differs from a float and a dict's or set's order counts; " +
			"set ctx.x before reading it, or read it from inputs",
	}, {
		name:     "long values and lost blobs",
		info:     join,
		conflict: conflictOf("long", "lost"),
		want: `artifact x differs between the inputs of this join: element 0 (task s.0) has "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…, ` +
			"element 1 (task s.1) has a value that cannot be read (no blob lost); set ctx.x before reading it, or read it from inputs",
	}, {
		name:      "passed on by the join",
		info:      after,
		artifacts: map[string]string{"y": "later"},
		want:      "artifact y has no value: the inputs of join pick differ on it (branch a (task a) has 1, branch b (task b) has 2), and pick did not set it; set ctx.y in pick, or here before reading it",
	}} {
		t.Run(test.name, func(t *testing.T) {
			var conflicts map[string]Conflict
			name := "y"
			if test.artifacts == nil {
				conflicts, name = map[string]Conflict{"x": test.conflict}, "x"
			}
			c := NewContext(test.info, test.artifacts, conflicts, contextLoad)
			if _, err := c.Attr(name); err == nil || err.Error() != test.want {
				t.Errorf("ctx.%s: got  %v\nwant %s", name, err, test.want)
			}
			// Not set, it is saved as the conflict it is: by the join, or,
			// after it, as the blob it was read from.
			values, unchanged := c.Touched()
			if test.artifacts != nil {
				if unchanged[name] != test.artifacts[name] {
					t.Errorf("Touched() unchanged[%s] = %q, want %q", name, unchanged[name], test.artifacts[name])
				}
			} else if cf, ok := values[name].(*Conflict); !ok || cf.Join != "pick" {
				t.Errorf("Touched()[%s] = %v, want the conflict at pick", name, values[name])
			}
			if err := c.SetField(name, starlark.None); err != nil {
				t.Fatal(err)
			}
			if v, err := c.Attr(name); err != nil || v != starlark.None {
				t.Errorf("ctx.%s, once set, = %v, %v", name, v, err)
			}
		})
	}
}

func TestGetattr(t *testing.T) {
	for _, test := range []struct{ src, want string }{
		{`x = getattr(ctx, "nope", 7)`, ""},
		{`x = getattr(ctx, "input", 7)`, ""}, // no foreach: it does not exist
		{`x = getattr(struct(a = 1), "b", 7)`, ""},
		{`x = getattr(ctx, "ok")`, ""},
		{`x = getattr(ctx, "nope")`, "ctx has no artifact nope; artifacts: bad, gone, ok"},
		{`x = getattr(ctx, "bad", 7)`, "artifact bad differs between the inputs of this join"},
		{`x = getattr(ctx, "gone", 7)`, "artifact gone: no blob lost"},
		{`x = ctx.nope`, "ctx has no artifact nope; artifacts: bad, gone, ok"},
		{`x = hasattr(ctx, "bad") and not hasattr(ctx, "nope") or fail("hasattr")`, ""},
	} {
		c := NewContext(TaskInfo{TaskID: "j", Index: -1}, map[string]string{"ok": "one", "gone": "lost"}, map[string]Conflict{"bad": conflictOf("one", "two")}, contextLoad)
		err := contextRun(c, test.src)
		if test.want == "" && err != nil || test.want != "" && (err == nil || !strings.Contains(err.Error(), test.want)) {
			t.Errorf("%s: got error %v, want %q", test.src, err, test.want)
		}
	}
}

func TestContextWatch(t *testing.T) {
	c := NewContext(TaskInfo{TaskID: "t", Index: -1}, map[string]string{"read": "list", "kept": "one"}, nil, contextLoad)
	err := contextRun(c, `
def f():
    pass

ctx.set = []
ctx.set.append(f)
ctx.read.append(f)
ctx.fn = f
`)
	const want = "flow.star:8:4: in <toplevel>\nError: artifact fn: value: a function cannot be saved as an artifact"
	if err == nil || !strings.Contains(err.(*starlark.EvalError).Backtrace(), want) {
		t.Errorf("setting a function: got %v, want %q", err, want)
	}
	for _, test := range []struct{ name, want string }{
		{"set", "set at flow.star:5:4"},
		{"read", "read at flow.star:7:4"},
		{"kept", ""},
		{"fn", ""},
	} {
		if got := c.Where(test.name); got != test.want {
			t.Errorf("Where(%q) = %q, want %q", test.name, got, test.want)
		}
	}
}

// TestTouched checks that a task saves again only the artifacts it set
// and those it read that it may have changed: a value read that cannot
// change keeps its hash, however large.
func TestTouched(t *testing.T) {
	blobs := map[string]starlark.Value{
		"bytes":              starlark.Bytes("large"),
		"string":             starlark.String("s"),
		"int":                starlark.MakeInt(1),
		"none":               starlark.None,
		"tuple":              starlark.Tuple{starlark.MakeInt(1), starlark.Tuple{starlark.String("a")}},
		"struct":             starlarkstruct.FromStringDict(starlarkstruct.Default, starlark.StringDict{"a": starlark.MakeInt(1)}),
		"file":               mustFile(t, store.Hash("sha256:"+strings.Repeat("ab", 32)), "f.txt", 3),
		"list":               starlark.NewList(nil),
		"dict":               starlark.NewDict(0),
		"tuple with a list":  starlark.Tuple{starlark.NewList(nil)},
		"struct with a dict": starlarkstruct.FromStringDict(starlarkstruct.Default, starlark.StringDict{"d": starlark.NewDict(0)}),
	}
	load := func(h string) (starlark.Value, error) { return blobs[h], nil }
	for _, tt := range []struct {
		hash    string
		mutable bool
	}{
		{"bytes", false}, {"string", false}, {"int", false}, {"none", false}, {"tuple", false}, {"struct", false}, {"file", false},
		{"list", true}, {"dict", true}, {"tuple with a list", true}, {"struct with a dict", true},
	} {
		t.Run(tt.hash, func(t *testing.T) {
			c := NewContext(TaskInfo{TaskID: "t", Index: -1}, map[string]string{"read": tt.hash, "unread": tt.hash}, nil, load)
			if _, err := c.Attr("read"); err != nil {
				t.Fatal(err)
			}
			if err := c.SetField("set", blobs[tt.hash]); err != nil {
				t.Fatal(err)
			}
			values, unchanged := c.Touched()
			wantUnchanged := map[string]string{"unread": tt.hash}
			wantSaved := []string{"set"}
			if tt.mutable {
				wantSaved = []string{"read", "set"}
			} else {
				wantUnchanged["read"] = tt.hash
			}
			if diff := cmp.Diff(wantUnchanged, unchanged); diff != "" {
				t.Errorf("Touched() unchanged (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(wantSaved, slices.Sorted(maps.Keys(values))); diff != "" {
				t.Errorf("Touched() values (-want +got):\n%s", diff)
			}
			for name, want := range map[string]string{"read": tt.hash, "unread": "", "set": ""} {
				if got := c.Loaded(name); got != want {
					t.Errorf("Loaded(%q) = %q, want %q", name, got, want)
				}
			}
		})
	}
}

func mustFile(t *testing.T, h store.Hash, name string, size int64) File {
	t.Helper()
	f, err := NewFile(h, name, size)
	if err != nil {
		t.Fatal(err)
	}
	return f
}
