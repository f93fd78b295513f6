package starlark

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	sl "go.starlark.net/starlark"

	"github.com/daggerflow/dagger/builtins"
	"github.com/daggerflow/dagger/dag"
)

func TestPackageRoundTrip(t *testing.T) {
	p := &Package{Flow: "f.star", Files: map[string]string{
		"f.star":       "x = 1\n",
		"lib/a.star":   "def a():\n    return '\\n3\\n'\n",
		"lib/bin.star": "\xff\x00 not utf-8\n",
		"empty.star":   "",
		// Paths that the first encoding, a path per line, read wrong.
		"a\n5\nb.txt": "x",
		"\"q\".txt":   "\n",
	}}
	data := p.Encode()
	got, err := DecodePackage(data)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(p, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if got.Hash() != p.Hash() {
		t.Error("hash changed in a round trip")
	}
	bad := []string{
		"", "not a package", packageMagic,
		packageMagic + "\"f.star\"\n\"f.star\"\n99\nx",
		packageMagic + "\"g.star\"\n\"f.star\"\n1\nx",
		packageMagic + "f.star\nf.star\n1\nx", // unquoted
		packageMagicV1 + "f.star\nf.star\n99\nx",
	}
	for _, bad := range bad {
		if _, err := DecodePackage([]byte(bad)); err == nil {
			t.Errorf("DecodePackage(%q) succeeded", bad)
		}
	}
}

// TestDecodePackageV1 decodes a package as the first encoding wrote it,
// as a store keeps it for its runs.
func TestDecodePackageV1(t *testing.T) {
	data := "dagger package 1\nf.star\nf.star\n6\nx = 1\nlib/m.star\n0\n"
	got, err := DecodePackage([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	want := &Package{Flow: "f.star", Files: map[string]string{"f.star": "x = 1\n", "lib/m.star": ""}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestLoadPackageRuns(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"flow.star":      "load(\"lib/m.star\", \"greet\")\nmsg = greet()\n\ndef start(ctx):\n    next_step(finish)\n\ndef finish(ctx):\n    pass\n",
		"lib/m.star":     "load(\"../shared.star\", \"name\")\ndef greet():\n    return 'hi ' + name\n",
		"shared.star":    "name = 'there'\n",
		"unrelated.star": "this is not loaded",
	}
	for name, src := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	flow, err := Load(filepath.Join(dir, "flow.star"), builtins.Standard())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := flow.Package.Files["unrelated.star"]; ok {
		t.Error("the package holds a file the flow does not load")
	}
	again, err := LoadPackage(flow.Package, "elsewhere/", builtins.Standard())
	if err != nil {
		t.Fatal(err)
	}
	if again.Package.Hash() != flow.Package.Hash() {
		t.Error("LoadPackage changed the package")
	}
	globals, err := again.Init(context.Background(), &sl.Thread{})
	if err != nil {
		t.Fatal(err)
	}
	if got := globals["msg"]; got != sl.String("hi there") {
		t.Errorf("msg = %v", got)
	}
	if again.Path() != "elsewhere/flow.star" {
		t.Errorf("Path = %q", again.Path())
	}
}

func TestInitError(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "flow.star")
	src := "def _f():\n    return 1 // 0\nx = _f()\n\ndef start(ctx):\n    next_step(finish)\n\ndef finish(ctx):\n    pass\n"
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	flow, err := Load(p, builtins.Standard())
	if err != nil {
		t.Fatal(err)
	}
	_, err = flow.Init(context.Background(), &sl.Thread{})
	want := "Traceback (most recent call last):\n  " + p + ":3:7: in <toplevel>\n  " + p + ":2:14: in _f\nError: floored division by zero"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Init error:\n%v\nwant:\n%s", err, want)
	}
}

// TestLoadModuleErrors checks the errors of modules that only loading
// them finds: their text, their paths, and the rules of code that a
// module shares with the flow.
func TestLoadModuleErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{{
		name: "NUL byte in a module",
		files: map[string]string{
			"flow.star":  `load("lib/m.star", "x")` + steps,
			"lib/m.star": "x = 1\n\x00\ny = 2\n",
		},
		want: []string{"lib/m.star:2:1: the file holds a NUL byte"},
	}, {
		name: "control character in a module's path",
		files: map[string]string{
			"flow.star": `load("a\nb.star", "x")` + "\n" + `load("c\x7f.star", "y")` + steps,
			"a\nb.star": "x = 1\n",
		},
		want: []string{
			`flow.star:1:1: cannot load "a\nb.star": a module's path holds no control characters`,
			`flow.star:2:1: cannot load "c\x7f.star": a module's path holds no control characters`,
		},
	}, {
		name: "recursion in a module",
		files: map[string]string{
			"flow.star": `load("m.star", "f")` + steps,
			"m.star":    "def f(n):\n    return f(n)\n",
		},
		want: []string{"m.star:2:12: recursion: f -> f; Starlark does not allow a function to call itself, directly or through others"},
	}}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, test.files)
			t.Chdir(dir)
			_, err := Load("flow.star", builtins.Standard())
			var got []string
			for _, e := range dag.AsList(err) {
				got = append(got, e.Pos.String()+": "+e.Msg)
			}
			if err == nil {
				got = nil
			}
			if diff := cmp.Diff(test.want, got); diff != "" {
				t.Errorf("Load errors (-want +got):\n%s", diff)
			}
		})
	}
}
