package exec

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"

	"github.com/daggerflow/dagger/store"
)

// resumeFlow fails in fragile until its source is fixed.
const resumeFlow = `
def start(ctx):
    ctx.items = [1, 2, 3]
    next_step(square, foreach = ctx.items)

def square(ctx):
    ctx.sq = ctx.input * ctx.input
    next_step(gather)

def gather(ctx, inputs):
    ctx.squares = [i.sq for i in inputs]
    next_step(side, fragile)

def side(ctx):
    ctx.side = "side"
    next_step(meet)

def fragile(ctx):
    fail("BROKEN")
    next_step(meet)

def meet(ctx, inputs):
    ctx.side = inputs.side.side
    next_step(finish)

def finish(ctx):
    print(ctx.squares, ctx.side)
`

// resumeRun loads the flow at path and runs it in st, resuming origin
// when it is set.
func resumeRun(t *testing.T, st *store.Store, path string, resume *Resume) (store.Run, map[string]store.Task, error) {
	t.Helper()
	flow := loadFlow(t, path)
	run, err := Run(context.Background(), st, flow, Options{Resume: resume})
	tasks, terr := st.Tasks(context.Background(), run.ID)
	if terr != nil {
		t.Fatal(terr)
	}
	byID := make(map[string]store.Task)
	for _, tk := range tasks {
		byID[tk.ID] = tk
	}
	return run, byID, err
}

func statuses(tasks map[string]store.Task) map[string]store.TaskStatus {
	out := make(map[string]store.TaskStatus, len(tasks))
	for id, tk := range tasks {
		out[id] = tk.Status
	}
	return out
}

func TestResume(t *testing.T) {
	path := writeFlow(t, map[string]string{"flow.star": resumeFlow})
	st, err := store.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	first, firstTasks, err := resumeRun(t, st, path, nil)
	if err == nil || first.Status != store.RunFailed {
		t.Fatalf("first run: %s, %v; want it to fail", first.Status, err)
	}

	fixed := strings.Replace(resumeFlow, `fail("BROKEN")`, `ctx.fixed = True`, 1)
	if err := os.WriteFile(path, []byte(fixed), 0o644); err != nil {
		t.Fatal(err)
	}
	second, tasks, err := resumeRun(t, st, path, &Resume{Origin: first})
	if err != nil {
		t.Fatalf("resumed run: %v", err)
	}
	if second.Origin != first.ID {
		t.Errorf("origin = %q, want %q", second.Origin, first.ID)
	}
	want := map[string]store.TaskStatus{
		"start": store.TaskReused, "square.0": store.TaskReused, "square.1": store.TaskReused, "square.2": store.TaskReused,
		"gather": store.TaskReused, "side": store.TaskReused,
		"fragile": store.TaskSucceeded, "meet": store.TaskSucceeded, "finish": store.TaskSucceeded,
	}
	if diff := cmp.Diff(want, statuses(tasks)); diff != "" {
		t.Errorf("resumed tasks (-want +got):\n%s", diff)
	}
	for id, tk := range tasks {
		attempts, err := st.Attempts(context.Background(), second.ID, id)
		if err != nil {
			t.Fatal(err)
		}
		if tk.Status == store.TaskReused {
			if len(attempts) != 0 {
				t.Errorf("reused task %s ran %d attempts", id, len(attempts))
			}
			if tk.Origin != first.ID {
				t.Errorf("reused task %s comes from %q, want %q", id, tk.Origin, first.ID)
			}
			if diff := cmp.Diff(firstTasks[id].Artifacts, tk.Artifacts); diff != "" {
				t.Errorf("reused task %s changed its artifacts (-origin +resumed):\n%s", id, diff)
			}
		}
	}

	// A resumed run resumed from a step runs that step and what follows,
	// and copies from where the copies came from.
	third, tasks, err := resumeRun(t, st, path, &Resume{Origin: second, From: "gather"})
	if err != nil {
		t.Fatalf("run resumed from gather: %v", err)
	}
	want = map[string]store.TaskStatus{
		"start": store.TaskReused, "square.0": store.TaskReused, "square.1": store.TaskReused, "square.2": store.TaskReused,
		"gather": store.TaskSucceeded, "side": store.TaskSucceeded,
		"fragile": store.TaskSucceeded, "meet": store.TaskSucceeded, "finish": store.TaskSucceeded,
	}
	if diff := cmp.Diff(want, statuses(tasks)); diff != "" {
		t.Errorf("tasks resumed from gather (-want +got):\n%s", diff)
	}
	if got := tasks["start"].Origin; got != first.ID {
		t.Errorf("start of run %s was copied from %q, want the run it ran in, %s", third.ID, got, first.ID)
	}
}

func TestResumeAfterTheGraphChanged(t *testing.T) {
	path := writeFlow(t, map[string]string{"flow.star": `
def start(ctx):
    next_step(a)

def a(ctx):
    fail("no")
    next_step(finish)

def finish(ctx):
    pass
`})
	st, err := store.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	first, _, _ := resumeRun(t, st, path, nil)
	changed := `
def start(ctx):
    next_step(b)

def b(ctx):
    next_step(finish)

def finish(ctx):
    pass
`
	if err := os.WriteFile(path, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	_, tasks, err := resumeRun(t, st, path, &Resume{Origin: first})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]store.TaskStatus{"start": store.TaskSucceeded, "b": store.TaskSucceeded, "finish": store.TaskSucceeded}
	if diff := cmp.Diff(want, statuses(tasks)); diff != "" {
		t.Errorf("start now goes elsewhere, so it runs again (-want +got):\n%s", diff)
	}
}

func TestParamsFromRecord(t *testing.T) {
	path := writeFlow(t, map[string]string{"flow.star": `
name = param("name")
n = param("n", default = 1)
d = param("d", default = {"b": 1, "a": 2})

def start(ctx):
    next_step(finish)

def finish(ctx):
    pass
`})
	flow := loadFlow(t, path)
	got, err := ParamsFromRecord(flow.Graph, map[string]string{"name": `"a \"b\""`, "n": "1", "d": `{"a":2,"b":1}`, "gone": "3"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"name": `a "b"`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParamsFromRecord (-want +got):\n%s", diff)
	}
}

func TestResumeCancelled(t *testing.T) {
	path := writeFlow(t, map[string]string{"flow.star": `
n = param("n", default = 200000000)

def start(ctx):
    ctx.before = 1
    next_step(spin)

def spin(ctx):
    print("spinning")
    total = 0
    for i in range(n):
        total += i
    ctx.total = total
    next_step(finish)

def finish(ctx):
    pass
`})
	st, err := store.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	flow := loadFlow(t, path)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cancelled, err := Run(ctx, st, flow, Options{OnEvent: func(e Event) {
		if e.Kind == TaskOutput && e.Line == "spinning" {
			cancel()
		}
	}})
	if err == nil || cancelled.Status != store.RunCancelled {
		t.Fatalf("run: %s, %v; want it cancelled", cancelled.Status, err)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(mustRead(t, path)), "range(n)", "range(10)", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, tasks, err := resumeRun(t, st, path, &Resume{Origin: cancelled})
	if err != nil {
		t.Fatalf("resuming the cancelled run: %v", err)
	}
	want := map[string]store.TaskStatus{"start": store.TaskReused, "spin": store.TaskSucceeded, "finish": store.TaskSucceeded}
	if diff := cmp.Diff(want, statuses(tasks)); diff != "" {
		t.Errorf("tasks (-want +got):\n%s", diff)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestManifestReader(t *testing.T) {
	for _, elements := range [][]string{nil, {"a"}, {"a", "bc", "def"}, {"", "a", ""}, {strings.Repeat("x", 100), "y"}} {
		want := strings.Join(elements, "\n")
		for _, r := range []io.Reader{&manifestReader{elements: elements}, iotest.OneByteReader(&manifestReader{elements: elements})} {
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != want {
				t.Errorf("manifest of %q is %q, want %q", elements, got, want)
			}
		}
	}
}
