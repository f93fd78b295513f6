package history_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/daggerflow/dagger/builtins"
	"github.com/daggerflow/dagger/exec"
	"github.com/daggerflow/dagger/history"
	"github.com/daggerflow/dagger/starlark"
	"github.com/daggerflow/dagger/store"
)

// nestedFlow fans out in a foreach inside a foreach, prints, retries a
// step, and has a step, big, that the switch in join_outer does not
// take.
const nestedFlow = `
size = param("size", default = 1)

def start(ctx):
    print("two\nlines")
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
    if size > 100:
        next_step(big)
    else:
        next_step(flaky)

def big(ctx):
    next_step(finish)

def flaky(ctx):
    print("attempt %d" % ctx.attempt)
    if ctx.attempt < 3:
        fail("not yet")
    next_step(finish)

step(flaky, retries = 2, retry_delay = "1ms")

def finish(ctx):
    pass
`

// record runs the flow src, named nested, into a new store, and returns
// the store and the run's ID.
func record(t *testing.T, src string) (*store.Store, string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "nested.star")
	if err := os.WriteFile(path, []byte(src), 0o666); err != nil {
		t.Fatal(err)
	}
	flow, err := starlark.Load(path, builtins.Standard())
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(t.Context(), filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r, err := exec.Run(t.Context(), st, flow, exec.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return st, r.ID
}

// load records a run of nestedFlow and loads it.
func load(t *testing.T) (*store.Store, *history.Run) {
	t.Helper()
	st, id := record(t, nestedFlow)
	r, err := history.Load(t.Context(), st, id)
	if err != nil {
		t.Fatal(err)
	}
	return st, r
}

// ids returns the IDs of tasks.
func ids(tasks []store.Task) []string {
	out := make([]string, len(tasks))
	for i, t := range tasks {
		out[i] = t.ID
	}
	return out
}

// startOrder reports whether tasks, tasks of r, are in the order they
// started, as r.Tasks lists them. With one worker, the tasks of a foreach
// still start in an order of the scheduler's choosing.
func startOrder(r *history.Run, tasks []store.Task) bool {
	i := 0
	for _, t := range r.Tasks() {
		if i < len(tasks) && t.ID == tasks[i].ID {
			i++
		}
	}
	return i == len(tasks)
}

// TestOpen checks that Open reads a store that is there, and does not
// create one that is not.
func TestOpen(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nothing")
	st, err := history.Open(t.Context(), missing)
	if !errors.Is(err, history.ErrNoStore) || !errors.Is(err, history.ErrNotFound) {
		t.Errorf("Open(missing) = %v, %v; want ErrNoStore and ErrNotFound", st, err)
	}
	if want := "there is no store in " + missing; err == nil || err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open created %s: %v", missing, err)
	}

	recorded, id := record(t, nestedFlow)
	st, err = history.Open(t.Context(), recorded.Dir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if r, err := history.Load(t.Context(), st, "latest"); err != nil || r.ID != id {
		t.Errorf("Load(latest) = %v, %v; want run %s", r, err, id)
	}
}

// TestLoad loads a run, by prefix and as the latest, and reads its steps
// and the tasks of each.
func TestLoad(t *testing.T) {
	st, r := load(t)
	for _, ref := range []string{"latest", r.ID[:len(r.ID)-1]} {
		got, err := history.Load(t.Context(), st, ref)
		if err != nil || got.ID != r.ID {
			t.Errorf("Load(%q) = %v, %v; want run %s", ref, got, err, r.ID)
		}
	}
	if got, err := history.Load(t.Context(), st, "zz"); !errors.Is(err, history.ErrNotFound) {
		t.Errorf("Load(zz) = %v, %v; want ErrNotFound", got, err)
	}
	if r.Flow != "nested" || r.Status != store.RunSucceeded {
		t.Errorf("run of %s %s, want nested succeeded", r.Flow, r.Status)
	}
	wantSteps := []string{"start", "outer", "inner", "join_inner", "join_outer", "big", "flaky", "finish"}
	if diff := cmp.Diff(wantSteps, r.Steps()); diff != "" {
		t.Errorf("Steps() (-want +got):\n%s", diff)
	}
	wantTasks := map[string][]string{
		"start":      {"start"},
		"outer":      {"outer.0", "outer.1"},
		"inner":      {"inner.0.0", "inner.0.1", "inner.1.0", "inner.1.1"},
		"join_inner": {"join_inner.0", "join_inner.1"},
		"join_outer": {"join_outer"},
		"big":        {},
		"flaky":      {"flaky"},
		"finish":     {"finish"},
	}
	for step, want := range wantTasks {
		tasks, err := r.StepTasks(step)
		if err != nil {
			t.Errorf("StepTasks(%s): %v", step, err)
			continue
		}
		if diff := cmp.Diff(want, ids(history.ByIndex(tasks))); diff != "" {
			t.Errorf("StepTasks(%s) by index (-want +got):\n%s", step, diff)
		}
		if !startOrder(r, tasks) {
			t.Errorf("StepTasks(%s) = %q, not in the order they started", step, ids(tasks))
		}
	}
	if len(r.Tasks()) != 12 {
		t.Errorf("%d tasks, want 12", len(r.Tasks()))
	}
	_, err := r.StepTasks("nope")
	if want := "run " + r.ID + " has no step nope; steps: start, outer, inner, join_inner, join_outer, big, flaky, finish"; !errors.Is(err, history.ErrNoStep) || err.Error() != want {
		t.Errorf("StepTasks(nope) = %v, want ErrNoStep: %s", err, want)
	}
}

// TestFindAndTask checks which tasks a path names, and the errors for
// those that name none, or several where one is needed.
func TestFindAndTask(t *testing.T) {
	_, r := load(t)
	const inner = "inner.0.0, inner.0.1, inner.1.0, inner.1.1"
	tests := []struct {
		path     string
		find     []string // the IDs Find returns
		findErr  error
		task     string // the ID Task returns
		taskErr  error
		message  string // of the error Task returns, RUN for the run ID
		findSame bool   // Find's error is Task's
	}{
		{path: "/start", find: []string{"start"}, task: "start"},
		{path: "/inner/1.0", find: []string{"inner.1.0"}, task: "inner.1.0"},
		{path: "/inner/1/0/pair", find: []string{"inner.1.0"}, task: "inner.1.0"},
		{path: "/inner", find: []string{"inner.0.0", "inner.0.1", "inner.1.0", "inner.1.1"}, taskErr: history.ErrAmbiguous, message: "run RUN has 4 tasks of inner: name one by its foreach index, as RUN/inner/0.0"},
		{path: "/inner/1/pair", find: []string{"inner.1.0", "inner.1.1"}, taskErr: history.ErrAmbiguous, message: "run RUN has 2 tasks of inner.1: name one by its foreach index, as RUN/inner/1.0/pair"},
		{path: "/big", find: []string{}, taskErr: history.ErrNoTask, message: "step big of run RUN has no tasks: it has not run"},
		{path: "/inner/2", findErr: history.ErrNoTask, taskErr: history.ErrNoTask, message: "run RUN has no task inner.2; tasks of inner: " + inner, findSame: true},
		{path: "/inner/1.0.0", findErr: history.ErrNoTask, taskErr: history.ErrNoTask, message: "run RUN has no task inner.1.0.0; tasks of inner: " + inner, findSame: true},
		{path: "/start/0", findErr: history.ErrNoTask, taskErr: history.ErrNoTask, message: "run RUN has no task start.0: step start is outside any foreach, and its one task is RUN/start", findSame: true},
		{path: "/nope/1", findErr: history.ErrNoStep, taskErr: history.ErrNoStep, message: "run RUN has no step nope; steps: start, outer, inner, join_inner, join_outer, big, flaky, finish", findSame: true},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			p, err := history.ParsePath(r.ID + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			found, findErr := r.Find(p)
			if !errors.Is(findErr, tt.findErr) || (tt.findErr == nil && findErr != nil) {
				t.Errorf("Find: %v, want %v", findErr, tt.findErr)
			}
			if tt.findErr == nil {
				if diff := cmp.Diff(tt.find, ids(history.ByIndex(found))); diff != "" {
					t.Errorf("Find by index (-want +got):\n%s", diff)
				}
				if !startOrder(r, found) {
					t.Errorf("Find = %q, not in the order they started", ids(found))
				}
			}
			task, err := r.Task(p)
			if tt.taskErr == nil {
				if err != nil || task.ID != tt.task {
					t.Errorf("Task = %s, %v; want %s", task.ID, err, tt.task)
				}
				return
			}
			if !errors.Is(err, tt.taskErr) {
				t.Fatalf("Task = %s, %v; want %v", task.ID, err, tt.taskErr)
			}
			want := strings.ReplaceAll(tt.message, "RUN", r.ID)
			if err.Error() != want {
				t.Errorf("Task: %q, want %q", err, want)
			}
			if tt.findSame && findErr.Error() != err.Error() {
				t.Errorf("Find: %q, want %q", findErr, err)
			}
		})
	}
	all, err := r.Find(history.Path{Run: r.ID})
	if err != nil || len(all) != len(r.Tasks()) {
		t.Errorf("Find(run) = %d tasks, %v; want all %d", len(all), err, len(r.Tasks()))
	}
}

// TestArtifact reads artifact values back, and names those a task has
// when asked for one it has not.
func TestArtifact(t *testing.T) {
	_, r := load(t)
	task, err := r.Task(history.Path{Step: "inner", Index: []int{1, 0}})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"pair": `"2a"`, "o": "2"} {
		v, err := r.Artifact(t.Context(), task, name)
		if err != nil || v.String() != want {
			t.Errorf("Artifact(%s) = %v, %v; want %s", name, v, err, want)
		}
	}
	_, err = r.Artifact(t.Context(), task, "nope")
	want := "task inner.1.0 of run " + r.ID + " has no artifact nope; artifacts: o, pair"
	if !errors.Is(err, history.ErrNoArtifact) || !errors.Is(err, history.ErrNotFound) || err.Error() != want {
		t.Errorf("Artifact(nope) = %v, want ErrNoArtifact: %s", err, want)
	}
}

// TestJSONForms checks the JSON forms of a run, of tasks and of attempts:
// every field there, lists and objects never null.
func TestJSONForms(t *testing.T) {
	st, r := load(t)
	d := history.NewRunDetailJSON(r)
	if d.ID != r.ID || d.Ended == nil || string(d.Params["size"]) != "1" {
		t.Errorf("run %s ended %v with params %s, want %s, a time and size 1", d.ID, d.Ended, d.Params, r.ID)
	}
	wantSteps := []history.StepJSON{
		{Name: "start", Tasks: 1, Statuses: map[store.TaskStatus]int{store.TaskSucceeded: 1}},
		{Name: "outer", Tasks: 2, Statuses: map[store.TaskStatus]int{store.TaskSucceeded: 2}},
		{Name: "inner", Tasks: 4, Statuses: map[store.TaskStatus]int{store.TaskSucceeded: 4}},
		{Name: "join_inner", Tasks: 2, Statuses: map[store.TaskStatus]int{store.TaskSucceeded: 2}},
		{Name: "join_outer", Tasks: 1, Statuses: map[store.TaskStatus]int{store.TaskSucceeded: 1}},
		{Name: "big", Tasks: 0, Statuses: map[store.TaskStatus]int{}},
		{Name: "flaky", Tasks: 1, Statuses: map[store.TaskStatus]int{store.TaskSucceeded: 1}},
		{Name: "finish", Tasks: 1, Statuses: map[store.TaskStatus]int{store.TaskSucceeded: 1}},
	}
	if diff := cmp.Diff(wantSteps, d.Steps); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}

	tasks, err := r.StepTasks("start")
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(history.NewStepTasksJSON(r.ID, "start", tasks))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		RunID string           `json:"run_id"`
		Step  string           `json:"step"`
		Tasks []map[string]any `json:"tasks"`
	}
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if got.RunID != r.ID || got.Step != "start" || len(got.Tasks) != 1 {
		t.Fatalf("%s", data)
	}
	start := got.Tasks[0]
	for field, want := range map[string]any{"id": "start", "index": []any{}, "parents": []any{}, "next": []any{"outer"}, "foreach": 2.0, "origin": "", "error": ""} {
		if diff := cmp.Diff(want, start[field]); diff != "" {
			t.Errorf("%s (-want +got):\n%s", field, diff)
		}
	}
	if len(start) != 15 {
		t.Errorf("%d fields, want 15: %s", len(start), data)
	}

	flaky, err := r.Task(history.Path{Step: "flaky"})
	if err != nil {
		t.Fatal(err)
	}
	attempts, err := st.Attempts(t.Context(), r.ID, flaky.ID)
	if err != nil {
		t.Fatal(err)
	}
	detail := history.NewTaskDetailJSON(flaky, attempts)
	var statuses []store.TaskStatus
	for _, a := range detail.Attempts {
		statuses = append(statuses, a.Status)
		if a.Started == nil || a.Ended == nil || a.Logs == "" {
			t.Errorf("attempt %d started %v, ended %v, logs %q: want times and logs", a.N, a.Started, a.Ended, a.Logs)
		}
	}
	if diff := cmp.Diff([]store.TaskStatus{store.TaskFailed, store.TaskFailed, store.TaskSucceeded}, statuses); diff != "" {
		t.Errorf("attempts (-want +got):\n%s", diff)
	}
}
