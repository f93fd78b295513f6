package starlark

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"github.com/daggerflow/dagger/builtins"
	"github.com/daggerflow/dagger/dag"
)

// writeFiles writes files (path -> content) under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

const steps = "\ndef start(ctx):\n    next_step(finish)\n\ndef finish(ctx):\n    pass\n"

// TestLoadIncluded checks that the files package(include = [...]) matches
// are in the code package, and only those, whether the flow is read from
// its folder, from a file system or from its code package, and that the
// package's hash is the same each way and changes with an included file.
func TestLoadIncluded(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"flow.star": `load("lib/m.star", "x")
package(include = ["*.py", "requirements.txt", "data/*.csv", "lib/m.star", "*/a.csv"])
` + steps,
		"lib/m.star":       "x = 1\n",
		"lib/other.star":   "not loaded, not included\n",
		"train.py":         "print('train')\n",
		"util.py":          "\xff\x00 not utf-8\n",
		"requirements.txt": "numpy\n",
		"data/a.csv":       "x,y\n1,2\n",
		"data/b.csv":       "",
		"data/notes.txt":   "not included\n",
		"data/deep/c.csv":  "not included\n",
		".hidden.txt":      "not included\n",
	}
	writeFiles(t, dir, files)
	symlink(t, "train.py", filepath.Join(dir, "alias.py")) // inside the folder: included as a file
	files["alias.py"] = files["train.py"]
	flow, err := Load(filepath.Join(dir, "flow.star"), builtins.Standard())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"alias.py", "data/a.csv", "data/b.csv", "lib/m.star", "requirements.txt", "train.py", "util.py"}
	if diff := cmp.Diff(want, flow.Included()); diff != "" {
		t.Errorf("Included (-want +got):\n%s", diff)
	}
	wantFiles := map[string]string{"flow.star": files["flow.star"]}
	for _, name := range want {
		wantFiles[name] = files[name]
	}
	if diff := cmp.Diff(wantFiles, flow.Package.Files); diff != "" {
		t.Errorf("package files (-want +got):\n%s", diff)
	}

	fsFlow, err := LoadFS(os.DirFS(filepath.Dir(dir)), filepath.Base(dir)+"/flow.star", builtins.Standard())
	if err != nil {
		t.Fatal(err)
	}
	decoded, err := DecodePackage(flow.Package.Encode())
	if err != nil {
		t.Fatal(err)
	}
	pkgFlow, err := LoadPackage(decoded, "", builtins.Standard())
	if err != nil {
		t.Fatal(err)
	}
	again, err := Load(filepath.Join(dir, "flow.star"), builtins.Standard())
	if err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]*Flow{"LoadFS": fsFlow, "LoadPackage": pkgFlow, "Load again": again} {
		if got := f.Package.Hash(); got != flow.Package.Hash() {
			t.Errorf("%s: hash %s, want %s", name, got, flow.Package.Hash())
		}
		if diff := cmp.Diff(want, f.Included()); diff != "" {
			t.Errorf("%s: Included (-want +got):\n%s", name, diff)
		}
	}

	writeFiles(t, dir, map[string]string{"data/b.csv": "changed\n"})
	changed, err := Load(filepath.Join(dir, "flow.star"), builtins.Standard())
	if err != nil {
		t.Fatal(err)
	}
	if changed.Package.Hash() == flow.Package.Hash() {
		t.Error("the package's hash did not change with an included file")
	}
}

// TestLoadFSIncluded checks that LoadFS matches patterns in the flow
// file's folder of the file system.
func TestLoadFSIncluded(t *testing.T) {
	fsys := fstest.MapFS{
		"flows/f.star":   {Data: []byte(`package(include = ["*.py"])` + "\n" + steps)},
		"flows/train.py": {Data: []byte("print(1)\n")},
		"other.py":       {Data: []byte("outside the flow's folder\n")},
	}
	flow, err := LoadFS(fsys, "flows/f.star", builtins.Standard())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"train.py"}, flow.Included()); diff != "" {
		t.Errorf("Included (-want +got):\n%s", diff)
	}
	if got := flow.Package.Files["train.py"]; got != "print(1)\n" {
		t.Errorf("train.py = %q", got)
	}
}

// TestLoadIncludedErrors checks what Load reports of the files that the
// patterns of package match, each at the position of its pattern.
func TestLoadIncludedErrors(t *testing.T) {
	tests := []struct {
		name    string
		include string
		setup   func(t *testing.T, dir string) // dir holds the flow's folder, "flow"
		want    []string                       // the errors, after "flow/flow.star:"
	}{{
		name:    "no match",
		include: `"*.py", "data/*.csv"`,
		want: []string{
			`2:20: pattern "*.py" matches no file in flow`,
			`2:28: pattern "data/*.csv" matches no file in flow`,
		},
	}, {
		name:    "folder",
		include: `"data", "*"`,
		setup: func(t *testing.T, dir string) {
			writeFiles(t, dir, map[string]string{"flow/data/a.csv": ""})
		},
		want: []string{
			`2:20: pattern "data" matches the folder flow/data` + "\n\thint: include the files in it with \"data/*\"",
			`2:28: pattern "*" matches the folder flow/data` + "\n\thint: include the files in it with \"data/*\"",
		},
	}, {
		name:    "symbolic link outside",
		include: `"*.csv", "rel.csv"`,
		setup: func(t *testing.T, dir string) {
			writeFiles(t, dir, map[string]string{"outside.csv": "secret"})
			symlink(t, "../outside.csv", filepath.Join(dir, "flow/rel.csv"))
			symlink(t, filepath.Join(dir, "outside.csv"), filepath.Join(dir, "flow/abs.csv"))
		},
		want: []string{
			`2:20: flow/abs.csv is a symbolic link to ` + "DIR" + `/outside.csv, outside the flow's folder` + "\n\thint: copy the file into the flow's folder",
			`2:20: flow/rel.csv is a symbolic link to ../outside.csv, outside the flow's folder` + "\n\thint: copy the file into the flow's folder",
			`2:29: flow/rel.csv is a symbolic link to ../outside.csv, outside the flow's folder` + "\n\thint: copy the file into the flow's folder",
		},
	}, {
		name:    "symbolic link outside by way of another",
		include: `"*.csv", "a.csv"`,
		setup: func(t *testing.T, dir string) {
			writeFiles(t, dir, map[string]string{"outside.csv": "secret"})
			symlink(t, "b.link", filepath.Join(dir, "flow/a.csv"))
			symlink(t, "../outside.csv", filepath.Join(dir, "flow/b.link"))
		},
		want: []string{
			`2:20: cannot include flow/a.csv: statat a.csv: path escapes from parent`,
			`2:29: cannot include flow/a.csv: statat a.csv: path escapes from parent`,
		},
	}, {
		name:    "too big",
		include: `"big.bin"`,
		setup: func(t *testing.T, dir string) {
			f, err := os.Create(filepath.Join(dir, "flow/big.bin"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := f.Truncate(MaxIncluded + 1); err != nil { // sparse: never read
				t.Fatal(err)
			}
		},
		want: []string{`2:20: the files package includes come to more than 64 MiB with flow/big.bin` +
			"\n\thint: every task reads the code package: keep big data out of it, in file artifacts that a step makes"},
	}}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, map[string]string{"flow/flow.star": "\npackage(include = [" + test.include + "])\n" + steps})
			if test.setup != nil {
				test.setup(t, dir)
			}
			t.Chdir(dir)
			_, err := Load("flow/flow.star", builtins.Standard())
			var got []string
			for _, e := range dag.AsList(err) {
				got = append(got, strings.TrimPrefix(e.Error(), "flow/flow.star:"))
			}
			want := make([]string, len(test.want))
			for i, w := range test.want {
				want[i] = strings.ReplaceAll(w, "DIR", dir)
			}
			if err == nil {
				got = nil
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Skipf("no symbolic links here: %v", err)
	}
}
