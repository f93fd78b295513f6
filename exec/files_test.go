package exec

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	sl "go.starlark.net/starlark"

	"github.com/daggerflow/dagger/builtins"
	"github.com/daggerflow/dagger/starlark"
	"github.com/daggerflow/dagger/store"
)

// TestTaskDirHoldsIncluded checks that a task finds the flow's own files
// in its working directory, with their paths and mode 0644, whether the
// runner loaded the flow from its folder or from its code package, as a
// subprocess or a pod does.
func TestTaskDirHoldsIncluded(t *testing.T) {
	path := writeFlow(t, map[string]string{
		"flow.star": `package(include = ["*.py", "data/*.csv"])

def start(ctx):
    for line in task_dir():
        print(line)
    next_step(finish)

def finish(ctx):
    pass
`,
		"train.py":      "print('training')\n",
		"data/a.csv":    "x,y\n1,2\n",
		"data/b/c.csv":  "not matched\n",
		"notes.txt":     "not matched\n",
		"lib/other.py":  "not matched\n",
		"data/z.csv":    "",
		"data/skip.txt": "not matched\n",
	})
	// task_dir lists the files of the task's directory as "path mode
	// content".
	set := builtins.Standard()
	err := set.Add("task_dir", sl.NewBuiltin("task_dir", func(thread *sl.Thread, _ *sl.Builtin, _ sl.Tuple, _ []sl.Tuple) (sl.Value, error) {
		dir, err := builtins.ThreadTask(thread).Dir()
		if err != nil {
			return nil, err
		}
		var lines []sl.Value
		err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			lines = append(lines, sl.String(fmt.Sprintf("%s %v %q", filepath.ToSlash(rel), info.Mode().Perm(), data)))
			return nil
		})
		return sl.NewList(lines), err
	}))
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := starlark.Load(path, set)
	if err != nil {
		t.Fatal(err)
	}
	pkg, err := starlark.DecodePackage(loaded.Package.Encode())
	if err != nil {
		t.Fatal(err)
	}
	fromPackage, err := starlark.LoadPackage(pkg, "", set)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`data/a.csv -rw-r--r-- "x,y\n1,2\n"`,
		`data/z.csv -rw-r--r-- ""`,
		`train.py -rw-r--r-- "print('training')\n"`,
	}
	for name, flow := range map[string]*starlark.Flow{"loaded": loaded, "from package": fromPackage} {
		t.Run(name, func(t *testing.T) {
			st, err := store.Open(t.Context(), t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			runner, err := NewRunner(t.Context(), flow, nil, st.Blobs(), func(string) {})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			spec := &TaskSpec{RunID: "r", Code: flow.Package.Hash(), Step: "start", TaskID: "start"}
			res, err := runner.Execute(t.Context(), spec, func(line string) { got = append(got, line) })
			if err != nil {
				t.Fatal(err)
			}
			if !res.OK {
				t.Fatalf("task failed: %s", res.Error)
			}
			slices.Sort(got)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("the task's directory (-want +got):\n%s", diff)
			}
		})
	}
}
