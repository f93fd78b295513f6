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
)

func TestPackageRoundTrip(t *testing.T) {
	p := &Package{Flow: "f.star", Files: map[string]string{
		"f.star":       "x = 1\n",
		"lib/a.star":   "def a():\n    return '\\n3\\n'\n",
		"lib/bin.star": "\xff\x00 not utf-8\n",
		"empty.star":   "",
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
	for _, bad := range []string{"", "not a package", packageMagic, packageMagic + "f.star\nf.star\n99\nx", packageMagic + "g.star\nf.star\n1\nx"} {
		if _, err := DecodePackage([]byte(bad)); err == nil {
			t.Errorf("DecodePackage(%q) succeeded", bad)
		}
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
