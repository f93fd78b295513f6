package cli

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/txtar"
	sl "go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/daggerflow/dagger/dag"
	"github.com/daggerflow/dagger/starlark"
	"github.com/daggerflow/dagger/store"
)

// recordRun runs dagger run with args, recording the run in the store in
// dir, and returns the run's ID. The run may fail.
func recordRun(t *testing.T, dir string, args ...string) string {
	t.Helper()
	r := runDagger(t, slices.Concat([]string{"run", "--store", dir}, args)...)
	m := runHeader.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("dagger run %s: exit %d and no run\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return m[1]
}

// writeFlow writes a flow file, name, with the source src, in a
// directory of its own, and returns its path.
func writeFlow(t *testing.T, name, src string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(src), 0o666); err != nil {
		t.Fatal(err)
	}
	return path
}

var (
	localTimeRE = regexp.MustCompile(`\d{4}-\d\d-\d\d \d\d:\d\d:\d\d`)
	jsonTimeRE  = regexp.MustCompile(`"\d{4}-\d\d-\d\dT[^"]+"`)
	durationRE  = regexp.MustCompile(`<1ms|\b\d+(\.\d+)?(µs|ms|s)\b|\b(\d+h)?\d+m\d+(\.\d+)?s\b`)
	// gapRE is the space between the columns of a table, not the
	// indentation of a line.
	gapRE = regexp.MustCompile(`(\S)  +`)
)

// normalizeHistory makes the output of the commands that read the store
// the same in every run: each run ID becomes <NAME>, its name in ids;
// root, the directory of the flows, ROOT; times TIME and durations DUR;
// and, since these change the width of columns, the gaps between columns
// two spaces.
func normalizeHistory(out string, ids map[string]string, root string) string {
	for name, id := range ids {
		out = strings.ReplaceAll(out, id, "<"+name+">")
	}
	out = strings.ReplaceAll(out, root, "ROOT")
	out = localTimeRE.ReplaceAllString(out, "TIME")
	out = jsonTimeRE.ReplaceAllString(out, `"TIME"`)
	out = durationRE.ReplaceAllString(out, "DUR")
	return gapRE.ReplaceAllString(out, "$1  ")
}

// expand returns args with each <NAME> replaced by ids[NAME].
func expand(args []string, ids map[string]string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		for name, id := range ids {
			a = strings.ReplaceAll(a, "<"+name+">", id)
		}
		out[i] = a
	}
	return out
}

// TestInspectViews runs dagger inspect on runs of the examples and of
// testdata/run, and compares its output, normalized by normalizeHistory,
// with testdata/inspect/views.golden.
func TestInspectViews(t *testing.T) {
	t.Chdir(repoRoot)
	root, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// One worker, so that the tasks of a foreach start in the order of
	// their index.
	ids := map[string]string{
		"foreach": recordRun(t, dir, "--max-workers", "1", "examples/foreach.star", "-p", "count=3"),
		"retries": recordRun(t, dir, "testdata/run/retries.star"),
		"fail":    recordRun(t, dir, "testdata/run/fail.star"),
		"timeout": recordRun(t, dir, "testdata/run/timeout.star"),
		"switch":  recordRun(t, dir, "examples/switch.star"),
		// A wide foreach, whose join has too many parents to list.
		"wide": recordRun(t, dir, "examples/foreach.star", "-p", "count=1000"),
	}
	commands := [][]string{
		{"<foreach>"},
		{"<foreach>", "--json"},
		{"<foreach>/square"},
		{"<foreach>/square", "--json"},
		{"<foreach>/square/1"},
		{"<foreach>/square/1", "--json"},
		{"<foreach>/add/total"},
		{"<foreach>/start/numbers", "--json"},
		{"<retries>/flaky"},
		{"<fail>"},
		{"<fail>/check"},
		{"<timeout>/slow"},
		{"<switch>"},
		{"<foreach>/sqare"},
		{"<foreach>/square/7"},
		{"<foreach>/square/square"},
		{"<foreach>/square/1/nope"},
		{"<switch>/big"},
		{"<wide>/add"},
		{"<foreach>/square/-1"},
		{"<foreach>/square/abc"},
		{"<foreach>/square/1.2.x"},
		{"<foreach>/start/0"},
	}
	var files []txtar.File
	for _, args := range commands {
		r := runDagger(t, slices.Concat([]string{"inspect", "--store", dir}, expand(args, ids))...)
		files = append(files, txtar.File{
			Name: fmt.Sprintf("dagger inspect %s (exit %d)", strings.Join(args, " "), r.code),
			Data: []byte(normalizeHistory(r.stdout+r.stderr, ids, root)),
		})
	}
	got := txtar.Format(&txtar.Archive{
		Comment: []byte("The output of dagger inspect on runs of examples/foreach.star -p count=3 and -p count=1000 (wide), and of\n" +
			"testdata/run/retries.star, fail.star and timeout.star, and examples/switch.star,\n" +
			"normalized by normalizeHistory.\n"),
		Files: files,
	})
	golden(t, "cli/testdata/inspect/views.golden", got)
}

// typesFlow sets an artifact of every type.
const typesFlow = "testdata/inspect/types.star"

// TestInspectArtifacts prints every artifact of typesFlow, with and
// without --json, and compares the output with
// testdata/inspect/types.golden.
func TestInspectArtifacts(t *testing.T) {
	dir := t.TempDir()
	recordRun(t, dir, "--allow", "files", typesFlow)
	r := runDagger(t, "inspect", "--store", dir, "--json", "latest/start")
	var task struct{ Artifacts map[string]string }
	if err := json.Unmarshal([]byte(r.stdout), &task); err != nil {
		t.Fatalf("%v: %s%s", err, r.stdout, r.stderr)
	}
	var files []txtar.File
	for _, name := range slices.Sorted(maps.Keys(task.Artifacts)) {
		for _, flags := range [][]string{nil, {"--json"}} {
			args := slices.Concat([]string{"latest/start/" + name}, flags)
			r := runDagger(t, slices.Concat([]string{"inspect", "--store", dir}, args)...)
			files = append(files, txtar.File{
				Name: fmt.Sprintf("dagger inspect %s (exit %d)", strings.Join(args, " "), r.code),
				Data: []byte(r.stdout + r.stderr),
			})
		}
	}
	got := txtar.Format(&txtar.Archive{
		Comment: []byte("What dagger inspect prints of each artifact of " + typesFlow + ".\n"),
		Files:   files,
	})
	golden(t, "testdata/inspect/types.golden", got)
}

// TestInspectOutput checks what dagger inspect -o writes.
func TestInspectOutput(t *testing.T) {
	dir := t.TempDir()
	recordRun(t, dir, "--allow", "files", typesFlow)
	tests := []struct {
		artifact string
		json     bool
		want     string // the file's content
		code     int
		stderr   string
	}{
		{artifact: "bytes", want: "\x00\xff raw"},
		{artifact: "string", want: "héllo, \"world\"\n\t<b> & ☃"},
		{artifact: "string", json: true, want: `"héllo, \"world\"\n\t<b> & ☃"` + "\n"},
		{artifact: "tuple", want: "[\n  1,\n  \"a\"\n]\n"},
		{artifact: "set", want: "set([3, 1, 2])\n"},
		{artifact: "file", want: "weights\n"},
		{artifact: "file", json: true, want: "{\n  \"type\": \"file\",\n  \"name\": \"model.pt\",\n  \"size\": 8,\n  \"hash\": \"sha256:1b465fa6b6bcbc06a3199e3d2d8aec35d37494a712f888b6d5536684dd89d0f0\"\n}\n"},
		{artifact: "bytes", json: true, code: exitFailed, stderr: "dagger: artifact bytes of task start has no JSON form: it is bytes\n"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s,json=%v", tt.artifact, tt.json), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "value")
			r := runDagger(t, "inspect", "--store", dir, "latest/start/"+tt.artifact, "-o", out, fmt.Sprintf("--json=%v", tt.json))
			if r.code != tt.code || r.stdout != "" || r.stderr != tt.stderr {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d, nothing on stdout and stderr %q", r.code, r.stdout, r.stderr, tt.code, tt.stderr)
			}
			data, err := os.ReadFile(out)
			switch {
			case tt.code != exitOK:
				if err == nil {
					t.Errorf("-o wrote %q after an error", data)
				}
			case err != nil:
				t.Error(err)
			case string(data) != tt.want:
				t.Errorf("-o wrote %q, want %q", data, tt.want)
			}
		})
	}
}

// helloFlow is a small flow, for tests that need runs but not what they
// do.
const helloFlow = `
def start(ctx):
    ctx.who = "world"
    next_step(hello)

def hello(ctx):
    print("hello, %s" % ctx.who)
    next_step(finish)

def finish(ctx):
    pass
`

// TestInspectRunRefs checks the references to runs that dagger inspect
// takes, and its errors for those that identify no run, or several.
func TestInspectRunRefs(t *testing.T) {
	dir := t.TempDir()
	flow := writeFlow(t, "hello.star", helloFlow)
	first := recordRun(t, dir, flow)
	second := recordRun(t, dir, flow)
	// Run IDs start with the time, so two runs a moment apart share a
	// prefix.
	n := 0
	for first[n] == second[n] {
		n++
	}
	if n == 0 {
		t.Fatalf("run IDs %s and %s share no prefix", first, second)
	}
	shared, unique := second[:n], second[:n+1]
	missing := filepath.Join(t.TempDir(), "nothing")
	tests := []struct {
		store  string
		ref    string
		code   int
		want   string // the start of stdout
		stderr string // a regular expression
	}{
		{ref: "latest", want: "run " + second + " of hello\n"},
		{ref: first, want: "run " + first + " of hello\n"},
		{ref: unique, want: "run " + second + " of hello\n"},
		{ref: strings.ToUpper(unique), want: "run " + second + " of hello\n"},
		{ref: unique + "/hello/who", want: "\"world\"\n"},
		{ref: shared, code: exitInvalid, stderr: `^dagger: store: run "` + shared + `": ambiguous run ID prefix: matches ` + first + ` \(hello, [^)]+\), ` + second + ` \(hello, [^)]+\)\n$`},
		{ref: "zz", code: exitInvalid, stderr: `^dagger: store: run "zz": not found\n$`},
		{ref: "zz/start", code: exitInvalid, stderr: `^dagger: store: run "zz": not found\n$`},
		{store: missing, ref: "latest", code: exitInvalid, stderr: `^dagger: run "latest": not found: there is no store in ` + regexp.QuoteMeta(missing) + `\n$`},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			st := cmp.Or(tt.store, dir)
			r := runDagger(t, "inspect", "--store", st, tt.ref)
			if r.code != tt.code || !strings.HasPrefix(r.stdout, tt.want) || !regexp.MustCompile(tt.stderr).MatchString(r.stderr) {
				t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s\nwant exit %d, stdout starting %q, stderr matching %s", r.code, r.stdout, r.stderr, tt.code, tt.want, tt.stderr)
			}
		})
	}
	if _, err := os.Stat(missing); err == nil {
		t.Errorf("dagger inspect created the store %s", missing)
	}
}

// nestedFlow fans out in a foreach inside a foreach.
const nestedFlow = `
def start(ctx):
    next_step(outer, foreach = [1, 2])

def outer(ctx):
    ctx.o = ctx.input
    next_step(inner, foreach = ["a", "b"])

def inner(ctx):
    ctx.pair = "%d%s" % (ctx.o, ctx.input)
    print(ctx.pair)
    next_step(join_inner)

def join_inner(ctx, inputs):
    next_step(join_outer)

def join_outer(ctx, inputs):
    next_step(finish)

def finish(ctx):
    pass
`

// TestInspectNested checks the paths of the tasks of nested foreach
// fan-outs: an index of one number a level, in one element or several,
// or a part of it for the tasks under it.
func TestInspectNested(t *testing.T) {
	dir := t.TempDir()
	id := recordRun(t, dir, writeFlow(t, "nested.star", nestedFlow))
	tests := []struct {
		path   string
		code   int
		stdout string // a regular expression
		stderr string
	}{
		{path: "/inner/1.0/pair", stdout: `^"2a"\n$`},
		{path: "/inner/1/0/pair", stdout: `^"2a"\n$`},
		{path: "/inner/0.1", stdout: `^task inner\.0\.1 of run ` + id + `\n`},
		{path: "/inner", stdout: `^step inner of run ` + id + `: 4 tasks, 4 succeeded\n\nTASK .*\ninner\.0\.0 .*\ninner\.0\.1 .*\ninner\.1\.0 .*\ninner\.1\.1 .*\n$`},
		{path: "/inner/1", stdout: `^tasks inner\.1\.\* of run ` + id + `: 2 tasks, 2 succeeded\n\nTASK .*\ninner\.1\.0 .*\ninner\.1\.1 .*\n$`},
		{path: "/join_inner/1", stdout: `^task join_inner\.1 of run `},
		{path: "/inner/1/pair", code: exitInvalid, stderr: "dagger: run " + id + " has 2 tasks of inner.1: name one by its foreach index, as " + id + "/inner/1.0/pair\n"},
		{path: "/inner/2", code: exitInvalid, stderr: "dagger: run " + id + " has no task inner.2; tasks of inner: inner.0.0, inner.0.1, inner.1.0, inner.1.1\n"},
		{path: "/inner/1.0.0", code: exitInvalid, stderr: "dagger: run " + id + " has no task inner.1.0.0; tasks of inner: inner.0.0, inner.0.1, inner.1.0, inner.1.1\n"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			r := runDagger(t, "inspect", "--store", dir, id+tt.path)
			if r.code != tt.code || !regexp.MustCompile(cmp.Or(tt.stdout, "^$")).MatchString(r.stdout) || r.stderr != tt.stderr {
				t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s\nwant exit %d, stdout matching %s, stderr %q", r.code, r.stdout, r.stderr, tt.code, tt.stdout, tt.stderr)
			}
		})
	}
}

// TestInspectRunning checks how a run still running, and its tasks, are
// shown.
func TestInspectRunning(t *testing.T) {
	dir := t.TempDir()
	rec := newRecorder(t, dir)
	rec.start("start", 1)
	r := runDagger(t, "inspect", "--store", dir, rec.run.ID)
	want := regexp.MustCompile(`(?m)^status +running\nstarted +` + localTimeRE.String() + `\nended +-\n\nsteps:\n  start +running\n  hello +not run\n  finish +not run\n$`)
	if r.code != exitOK || !want.MatchString(r.stdout) {
		t.Errorf("exit %d\n%s%s\nwant stdout matching %s", r.code, r.stdout, r.stderr, want)
	}
	rec.end("start", 1, store.TaskSucceeded, "")
	r = runDagger(t, "inspect", "--store", dir, rec.run.ID+"/start")
	if want := regexp.MustCompile(`(?m)^status +succeeded\n`); !want.MatchString(r.stdout) {
		t.Errorf("exit %d\n%s%s\nwant stdout matching %s", r.code, r.stdout, r.stderr, want)
	}
}

// TestByteSize checks how sizes are written for people.
func TestByteSize(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{
		{0, "0 B"},
		{1023, "1023 B"},
		{1536, "1.5 KiB"},
		{12 << 20, "12.0 MiB"},
		{3 << 60, "3.0 EiB"},
	}
	for _, tt := range tests {
		if got := byteSize(tt.n); got != tt.want {
			t.Errorf("byteSize(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

// TestTruncateRunes checks how previews are cut.
func TestTruncateRunes(t *testing.T) {
	tests := []struct {
		s    string
		n    int
		want string
	}{
		{"short", 5, "short"},
		{"longer", 5, "long…"},
		{"ééééé☃", 5, "éééé…"},
	}
	for _, tt := range tests {
		if got := truncateRunes(tt.s, tt.n); got != tt.want {
			t.Errorf("truncateRunes(%q, %d) = %q, want %q", tt.s, tt.n, got, tt.want)
		}
	}
}

// TestStatusCounts checks how the statuses of tasks are summed up, in
// which order.
func TestStatusCounts(t *testing.T) {
	task := func(status store.TaskStatus, errMsg string) store.Task {
		return store.Task{Status: status, Error: errMsg}
	}
	tests := []struct {
		tasks []store.Task
		want  string
	}{
		{nil, ""},
		{[]store.Task{task(store.TaskSucceeded, ""), task(store.TaskSucceeded, "")}, "2 succeeded"},
		{[]store.Task{
			task(store.TaskRunning, ""),
			task(store.TaskFailed, "x"),
			task("paused", ""),
			task(store.TaskSucceeded, "caught"),
			task(store.TaskSucceeded, ""),
			task(store.TaskReused, ""),
			task(store.TaskCancelled, ""),
		}, "1 succeeded, 1 caught, 1 reused, 1 failed, 1 cancelled, 1 paused, 1 running"},
	}
	for _, tt := range tests {
		if got := statusCounts(tt.tasks); got != tt.want {
			t.Errorf("statusCounts(%v) = %q, want %q", tt.tasks, got, tt.want)
		}
	}
}

// TestRawValue checks what dagger inspect -o writes, with and without
// --json: the bytes or the text of bytes and strings, else what dagger
// inspect prints.
func TestRawValue(t *testing.T) {
	tests := []struct {
		expr      string
		raw, json string // what rawValue returns; "" for an error
	}{
		{expr: `"a\nb"`, raw: "a\nb", json: "\"a\\nb\"\n"},
		{expr: `b"\x00\xff"`, raw: "\x00\xff"},
		{expr: `{"a": [1]}`, raw: "{\n  \"a\": [\n    1\n  ]\n}\n", json: "{\n  \"a\": [\n    1\n  ]\n}\n"},
		{expr: `set([2, 1])`, raw: "set([2, 1])\n"},
		{expr: `{1: "one"}`, raw: "{1: \"one\"}\n"},
	}
	for _, tt := range tests {
		v := artifact(t, tt.expr)
		for _, asJSON := range []bool{false, true} {
			want := tt.raw
			if asJSON {
				want = tt.json
			}
			got, err := rawValue(v, asJSON)
			switch {
			case want == "" && err == nil:
				t.Errorf("rawValue(%s, %v) = %q, want an error", tt.expr, asJSON, got)
			case want != "" && err != nil:
				t.Errorf("rawValue(%s, %v): %v", tt.expr, asJSON, err)
			case string(got) != want:
				t.Errorf("rawValue(%s, %v) = %q, want %q", tt.expr, asJSON, got, want)
			}
		}
	}
}

// artifact returns the value of the Starlark expression expr as an
// artifact reads back from the store: encoded, then decoded.
func artifact(t *testing.T, expr string) sl.Value {
	t.Helper()
	predeclared := sl.StringDict{"struct": sl.NewBuiltin("struct", starlarkstruct.Make)}
	v, err := sl.EvalOptions(dag.FileOptions(), &sl.Thread{}, "expr", expr, predeclared)
	if err != nil {
		t.Fatal(err)
	}
	data, err := starlark.Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	if v, err = starlark.Decode(data); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestTaskList checks how the parents of a task are listed: a step's
// tasks one by one while they are few, else by the first and the last.
func TestTaskList(t *testing.T) {
	wide := make([]string, 100000)
	for i := range wide {
		wide[i] = fmt.Sprintf("body.%d", i)
	}
	tests := []struct {
		ids  []string
		want string
	}{
		{nil, ""},
		{[]string{"start"}, "start"},
		{[]string{"a", "b"}, "a, b"},
		{[]string{"sq.0", "sq.1", "sq.2"}, "sq.0, sq.1, sq.2"},
		{wide, "body.0 … body.99999 (100000 tasks)"},
		{slices.Concat([]string{"start"}, wide[:4], []string{"b", "bodyx.0"}), "start, body.0 … body.3 (4 tasks), b, bodyx.0"},
		{[]string{"in.0.0", "in.0.1", "in.1.0", "in.1.1", "other"}, "in.0.0 … in.1.1 (4 tasks), other"},
	}
	for _, tt := range tests {
		if got := taskList(tt.ids); got != tt.want {
			t.Errorf("taskList of %d tasks = %q, want %q", len(tt.ids), got, tt.want)
		}
	}
}
