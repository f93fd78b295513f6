package builtins_test

import (
	"maps"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.starlark.net/starlark"

	"github.com/daggerflow/dagger/builtins"
	"github.com/daggerflow/dagger/dag"
	"github.com/daggerflow/dagger/store"
)

// filesCap is the capability files, which a step declares to use them.
var filesCap = []dag.Capability{{Kind: dag.CapFiles}}

// newTask returns a task of step s that declares allow, whose blobs are
// those of a store of its own, and which the test closes.
func newTask(t *testing.T, allow []dag.Capability) *builtins.Task {
	t.Helper()
	task := &builtins.Task{Step: "s", Allow: allow, Blobs: openStore(t).Blobs()}
	t.Cleanup(func() {
		if err := task.Close(); err != nil {
			t.Error(err)
		}
	})
	return task
}

func openStore(t testing.TB) *store.Store {
	t.Helper()
	st, err := store.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// taskDir returns the directory of task, making it.
func taskDir(t testing.TB, task *builtins.Task) string {
	t.Helper()
	dir, err := task.Dir()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// exec runs src as the code of a step of task (nil for none), with the
// module files and vars, and returns its global v, or the error.
func exec(t testing.TB, task *builtins.Task, src string, vars ...starlark.StringDict) (starlark.Value, error) {
	t.Helper()
	thread := &starlark.Thread{Name: "test"}
	if task != nil {
		builtins.SetThreadTask(thread, task)
	}
	builtins.SetThreadContext(thread, t.Context())
	predeclared := starlark.StringDict{"files": builtins.Standard().Predeclared()["files"]}
	for _, d := range vars {
		maps.Copy(predeclared, d)
	}
	globals, err := starlark.ExecFileOptions(dag.FileOptions(), thread, "step.star", src, predeclared)
	if err != nil {
		return nil, err
	}
	return globals["v"], nil
}

// writeFiles makes the files of tree (path -> content) in dir.
func writeFiles(t *testing.T, dir string, tree map[string]string) {
	t.Helper()
	for p, content := range tree {
		p = filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o666); err != nil {
			t.Fatal(err)
		}
	}
}

// errorText returns the message of err without Starlark's backtrace.
func errorText(err error) string {
	if ee, ok := err.(*starlark.EvalError); ok {
		return ee.Msg
	}
	return err.Error()
}

// TestFilesEscape checks that no path reaches outside the task's
// directory: not "..", not an absolute path, not a symbolic link that
// leads out, while a link that stays inside works.
func TestFilesEscape(t *testing.T) {
	task := newTask(t, filesCap)
	dir := taskDir(t, task)
	outside := t.TempDir()
	writeFiles(t, outside, map[string]string{"secret": "s3cr3t"})
	writeFiles(t, dir, map[string]string{"sub/a.txt": "a"})
	for link, target := range map[string]string{
		"out":       outside,
		"up":        "..",
		"secret":    filepath.Join(outside, "secret"),
		"in":        "sub",
		"in_a":      "sub/a.txt",
		"dangling":  filepath.Join(outside, "nothing"),
		"sub/round": "../sub",
	} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		code string
		want string // the value's repr, or the error
	}{
		{`files.read("../x")`, `files.read: path "../x" is outside the task's directory`},
		{`files.read("sub/../../x")`, `files.read: path "sub/../../x" is outside the task's directory`},
		{`files.read("` + filepath.Join(outside, "secret") + `")`, `files.read: path "` + filepath.Join(outside, "secret") + `" is outside the task's directory`},
		{`files.read("/etc/passwd")`, `files.read: path "/etc/passwd" is outside the task's directory`},
		{`files.read("out/secret")`, `files.read: path "out/secret" is outside the task's directory`},
		{`files.read("secret")`, `files.read: path "secret" is outside the task's directory`},
		{`files.read_bytes("up/x")`, `files.read_bytes: path "up/x" is outside the task's directory`},
		{`files.write("out/new", "x")`, `files.write: path "out/new" is outside the task's directory`},
		{`files.write("out/deep/new", "x")`, `files.write: path "out/deep/new" is outside the task's directory`},
		{`files.exists("out/secret")`, `files.exists: path "out/secret" is outside the task's directory`},
		{`files.list("out")`, `files.list: path "out" is outside the task's directory`},
		{`files.list("..")`, `files.list: path ".." is outside the task's directory`},
		{`files.remove("out/secret")`, `files.remove: path "out/secret" is outside the task's directory`},
		{`files.artifact("secret")`, `files.artifact: path "secret" is outside the task's directory`},
		{`files.read("")`, `files.read: the path is empty: name a file in the task's directory, or "." for the directory`},
		{`files.read("in/a.txt")`, `"a"`},
		{`files.read("in_a")`, `"a"`},
		{`files.read("sub/round/a.txt")`, `"a"`},
		{`files.list("in")`, `["a.txt", "round"]`},
		{`files.exists("in/a.txt")`, `True`},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			v, err := exec(t, task, "v = "+tt.code)
			got := ""
			if err != nil {
				got = errorText(err)
			} else {
				got = v.String()
			}
			if got != tt.want {
				t.Errorf("%s = %s, want %s", tt.code, got, tt.want)
			}
		})
	}
	entries, err := os.ReadDir(outside)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("the folder outside holds %d files, want only secret", len(entries))
	}
	if data, err := os.ReadFile(filepath.Join(outside, "secret")); err != nil || string(data) != "s3cr3t" {
		t.Errorf("the file outside holds %q, %v", data, err)
	}
}

// TestFiles checks what each builtin of files does.
func TestFiles(t *testing.T) {
	tests := []struct {
		name string
		code string            // runs in a task whose directory holds a.txt and d/b.bin
		want string            // the repr of v, or the error
		tree map[string]string // what the directory holds after; nil if unchanged
	}{
		{name: "read", code: `v = files.read("a.txt")`, want: `"héllo\n"`},
		{name: "read_bytes", code: `v = files.read_bytes("d/b.bin")`, want: `b"\x00\xff"`},
		{name: "read missing", code: `v = files.read("nope")`, want: "files.read: openat nope: no such file or directory"},
		{name: "read a folder", code: `v = files.read("d")`, want: "files.read: \"d\" is not a regular file but a folder"},
		{
			name: "write string and bytes, making folders",
			code: "files.write(\"x/y/s.txt\", \"text\")\nfiles.write(\"x/y/b\", b\"\\x01\")\nv = (files.read(\"x/y/s.txt\"), files.read_bytes(\"x/y/b\"))",
			want: `("text", b"\x01")`,
			tree: map[string]string{"a.txt": "héllo\n", "d/b.bin": "\x00\xff", "x/y/s.txt": "text", "x/y/b": "\x01"},
		},
		{name: "write replaces", code: `files.write("a.txt", "new")`, want: "None", tree: map[string]string{"a.txt": "new", "d/b.bin": "\x00\xff"}},
		{name: "write by name", code: `v = files.write(data = "t", path = "n.txt")`, want: "None", tree: map[string]string{"a.txt": "héllo\n", "d/b.bin": "\x00\xff", "n.txt": "t"}},
		{name: "write other data", code: `files.write("n", 1)`, want: "files.write: data is an int, not a string or bytes"},
		{name: "exists", code: `v = [files.exists(p) for p in ["a.txt", "d", ".", "nope", "a.txt/x", "d/nope/x"]]`, want: "[True, True, True, False, False, False]"},
		{name: "list", code: `v = files.list()`, want: `["a.txt", "d"]`},
		{name: "list folder", code: `v = files.list("d")`, want: `["b.bin"]`},
		{name: "list file", code: `v = files.list("a.txt")`, want: "files.list: readdirent a.txt: not a directory"},
		{name: "remove file", code: `files.remove("a.txt")`, want: "None", tree: map[string]string{"d/b.bin": "\x00\xff"}},
		{name: "remove folder", code: `files.remove("d")`, want: "None", tree: map[string]string{"a.txt": "héllo\n"}},
		{name: "remove missing", code: `files.remove("nope")`, want: "files.remove: statat nope: no such file or directory"},
		{name: "remove the directory", code: `files.remove("d/..")`, want: "files.remove: cannot remove the task's directory itself; remove what it holds"},
		{name: "artifact of a folder", code: `files.artifact("d")`, want: `files.artifact: "d" is not a regular file but a folder`},
		{name: "artifact", code: `f = files.artifact("d/b.bin")` + "\nv = (f.name, f.size, type(f), f == files.artifact(\"d/b.bin\"), f != files.artifact(\"a.txt\"), str(f))",
			want: `("b.bin", 2, "file", True, True, "file(\"b.bin\", 2 bytes, sha256:06eb7d6a69ee19e5fbdf749018d3d2abfa04bcbd1365db312eb86dc7169389b8)")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task := newTask(t, filesCap)
			dir := taskDir(t, task)
			start := map[string]string{"a.txt": "héllo\n", "d/b.bin": "\x00\xff"}
			writeFiles(t, dir, start)
			v, err := exec(t, task, tt.code)
			got := ""
			switch {
			case err != nil:
				got = errorText(err)
			case v == nil:
				got = "None"
			default:
				got = v.String()
			}
			if got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
			want := tt.tree
			if want == nil {
				want = start
			}
			if diff := cmp.Diff(want, readTree(t, dir)); diff != "" {
				t.Errorf("the task's directory (-want +got):\n%s", diff)
			}
		})
	}
}

// readTree returns the files under dir, path -> content.
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	tree := make(map[string]string)
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		tree[filepath.ToSlash(rel)] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// TestFilesCapability checks that only a step that declared the
// capability files uses them, and says how to declare it.
func TestFilesCapability(t *testing.T) {
	tests := []struct {
		name string
		task *builtins.Task
		want string
	}{
		{"undeclared", &builtins.Task{Step: "train", Allow: []dag.Capability{{Kind: dag.CapExec}}},
			`files.read: step train did not declare the capability files: add it to the step's options, as step(train, allow = ["files"]), and grant it to the run with --allow files`},
		{"outside a step", nil, "files.read: only a step can use it, not the flow's top-level code"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := exec(t, tt.task, `files.read("a.txt")`)
			if err == nil || errorText(err) != tt.want {
				t.Errorf("got %v, want %s", err, tt.want)
			}
		})
	}
}

// TestFilesPipe checks that reading a named pipe fails at once: a read
// would block past the step's timeout, which cannot interrupt it.
func TestFilesPipe(t *testing.T) {
	for _, code := range []string{`files.read("p")`, `files.read_bytes("p")`, `files.artifact("p")`} {
		task := newTask(t, filesCap)
		dir := taskDir(t, task)
		if err := syscall.Mkfifo(filepath.Join(dir, "p"), 0o666); err != nil {
			t.Skipf("no named pipes here: %v", err)
		}
		_, err := exec(t, task, code)
		if err == nil || !strings.Contains(errorText(err), `"p" is not a regular file but a named pipe`) {
			t.Errorf("%s: %v, want it refused as a named pipe", code, err)
		}
	}
}
