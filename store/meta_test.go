package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestDefaultDir(t *testing.T) {
	t.Setenv("DAGGER_HOME", "")
	if got, want := DefaultDir("/src/proj"), filepath.Join("/src/proj", ".daggerflow"); got != want {
		t.Errorf("DefaultDir without DAGGER_HOME = %q, want %q", got, want)
	}
	t.Setenv("DAGGER_HOME", "/var/dagger")
	if got, want := DefaultDir("/src/proj"), "/var/dagger"; got != want {
		t.Errorf("DefaultDir with DAGGER_HOME = %q, want %q", got, want)
	}
}

func TestOpenLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "with space", "and?query#frag")
	s := openStoreAt(t, dir)
	for _, name := range []string{"blobs", "tmp", "meta.db"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Error(err)
		}
	}
	var mode string
	if err := s.rdb.QueryRowContext(t.Context(), "PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Errorf("journal_mode = %q, want wal", mode)
	}
	if s.Dir() != dir {
		t.Errorf("Dir = %q, want %q", s.Dir(), dir)
	}
	// Opening again finds the schema in place.
	openStoreAt(t, dir)
}

func TestOpenRelative(t *testing.T) {
	wd := t.TempDir()
	t.Chdir(wd)
	s := openStoreAt(t, "store")
	if want := filepath.Join(wd, "store"); s.Dir() != want {
		t.Errorf("Dir = %q, want %q", s.Dir(), want)
	}
	h, err := s.Blobs().Put(t.Context(), []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	// The store keeps working in its directory when the process moves.
	t.Chdir(t.TempDir())
	if _, err := s.Blobs().Get(t.Context(), h); err != nil {
		t.Error(err)
	}
	if _, err := s.CreateRun(t.Context(), Run{Flow: "f"}); err != nil {
		t.Error(err)
	}
}

func TestOpenNewerSchema(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	err = s.write(t.Context(), true, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(t.Context(), "UPDATE schema_version SET version = 99")
		return err
	})
	if err := errors.Join(err, s.Close()); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(t.Context(), dir); err == nil || !strings.Contains(err.Error(), "schema version 99 is newer") {
		t.Errorf("Open of newer schema: %v", err)
		if err == nil {
			s.Close()
		}
	}
}

var (
	codeHash = sumOf([]byte("code package"))
	blobA    = sumOf([]byte("a"))
	blobB    = sumOf([]byte("b"))
	logsHash = sumOf([]byte("logs"))
)

// within reports whether t lies in [from, to].
func within(t, from, to time.Time) bool {
	return !t.Before(from) && !t.After(to)
}

func TestRunLifecycle(t *testing.T) {
	s := openTestStore(t)
	ctx := t.Context()
	in := Run{
		ID:        "ignored",
		Flow:      "train",
		FlowPath:  "/src/proj/train.star",
		CodeHash:  codeHash,
		Params:    map[string]string{"lr": "0.1", "name": `"resnet"`},
		Status:    RunFailed,
		Origin:    "0abcdefghjkm",
		Error:     "ignored",
		Datastore: "s3://bucket/runs?region=eu-west-1",
	}
	before := time.Now()
	r, err := s.CreateRun(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	want := in
	want.ID, want.Status, want.Error, want.Created, want.Driver = r.ID, RunRunning, "", r.Created, thisDriver()
	if diff := cmp.Diff(want, r); diff != "" {
		t.Errorf("CreateRun mismatch (-want +got):\n%s", diff)
	}
	if !within(r.Created, before, time.Now()) || r.Created.Location() != time.UTC {
		t.Errorf("Created = %v, want UTC time of the call", r.Created)
	}
	if len(r.ID) != idLen || !isIDPrefix(r.ID) {
		t.Errorf("ID = %q, want %d characters of %q", r.ID, idLen, idAlphabet)
	}
	got, err := s.Run(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(r, got); diff != "" {
		t.Errorf("Run after CreateRun mismatch (-want +got):\n%s", diff)
	}

	before = time.Now()
	if err := s.FinishRun(ctx, r.ID, RunFailed, "step train: boom"); err != nil {
		t.Fatal(err)
	}
	got, err = s.Run(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	want = r
	want.Status, want.Error, want.Ended = RunFailed, "step train: boom", got.Ended
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Run after FinishRun mismatch (-want +got):\n%s", diff)
	}
	if !within(got.Ended, before, time.Now()) || got.Ended.Location() != time.UTC {
		t.Errorf("Ended = %v, want UTC time of FinishRun", got.Ended)
	}
}

func TestRunErrors(t *testing.T) {
	s := openTestStore(t)
	ctx := t.Context()
	r, err := s.CreateRun(ctx, Run{Flow: "f"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		call    func() error
		wantErr string
		wantIs  error
	}{
		{"empty flow", func() error { _, err := s.CreateRun(ctx, Run{}); return err }, "empty flow name", nil},
		{"invalid code hash", func() error { _, err := s.CreateRun(ctx, Run{Flow: "f", CodeHash: "md5:x"}); return err }, "invalid hash", nil},
		{"finish running", func() error { return s.FinishRun(ctx, r.ID, RunRunning, "") }, `invalid final status "running"`, nil},
		{"finish bogus", func() error { return s.FinishRun(ctx, r.ID, "done", "") }, `invalid final status "done"`, nil},
		{"finish unknown", func() error { return s.FinishRun(ctx, "0000000000zz", RunSucceeded, "") }, "0000000000zz", ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "store: ") {
				t.Errorf("error = %v, want one containing %q", err, tt.wantErr)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error = %v, want one wrapping %v", err, tt.wantIs)
			}
		})
	}
}

func TestRunIDs(t *testing.T) {
	var g idGen
	now := time.Now()
	var ids []string
	// Many IDs in the same millisecond and a clock stepping back: IDs
	// still increase.
	for i := range 1000 {
		ids = append(ids, g.next(now.Add(-time.Duration(i)*time.Microsecond)))
	}
	for i, id := range ids {
		if len(id) != idLen || !isIDPrefix(id) {
			t.Fatalf("ID %q is not %d characters of %q", id, idLen, idAlphabet)
		}
		if i > 0 && id <= ids[i-1] {
			t.Fatalf("ID %q follows %q", id, ids[i-1])
		}
	}
	// IDs of runs created later sort later, across generators.
	var g2 idGen
	if a, b := g.next(now.Add(time.Second)), g2.next(now.Add(time.Second+2*time.Millisecond)); a >= b {
		t.Errorf("ID %q created 2ms later sorts before %q", b, a)
	}
}

func TestRunRef(t *testing.T) {
	s := openTestStore(t)
	ctx := t.Context()
	if _, err := s.Run(ctx, "latest"); !errors.Is(err, ErrNotFound) {
		t.Errorf(`Run("latest") in empty store: %v; want ErrNotFound`, err)
	}
	var runs []Run
	for i := range maxCandidates + 2 {
		r, err := s.CreateRun(ctx, Run{Flow: fmt.Sprintf("flow%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, r)
	}
	first, last := runs[0], runs[len(runs)-1]
	// IDs of runs created together share a prefix; find the shortest one
	// unique to the last run.
	common := 0
	for common < idLen && first.ID[common] == last.ID[common] {
		common++
	}
	unique := ""
	for n := 1; n <= idLen && unique == ""; n++ {
		p := last.ID[:n]
		if !slices.ContainsFunc(runs[:len(runs)-1], func(r Run) bool { return strings.HasPrefix(r.ID, p) }) {
			unique = p
		}
	}

	tests := []struct {
		ref     string
		want    string // run ID
		wantIs  error
		wantErr []string
	}{
		{ref: "latest", want: last.ID},
		{ref: first.ID, want: first.ID},
		{ref: last.ID, want: last.ID},
		{ref: unique, want: last.ID},
		{ref: strings.ToUpper(unique), want: last.ID},
		{ref: first.ID[:common], wantIs: ErrAmbiguous, wantErr: []string{first.ID, "flow0", "..."}},
		{ref: first.ID[:1], wantIs: ErrAmbiguous},
		{ref: "zzzz", wantIs: ErrNotFound, wantErr: []string{`"zzzz"`}},
		{ref: first.ID + "0", wantIs: ErrNotFound},
		{ref: "", wantIs: ErrNotFound},
		{ref: "i", wantIs: ErrNotFound},
		{ref: "Latest", wantIs: ErrNotFound},
		{ref: "%", wantIs: ErrNotFound},
	}
	for _, tt := range tests {
		r, err := s.Run(ctx, tt.ref)
		if tt.wantIs == nil {
			if err != nil || r.ID != tt.want {
				t.Errorf("Run(%q) = %q, %v; want %q", tt.ref, r.ID, err, tt.want)
			}
			continue
		}
		if !errors.Is(err, tt.wantIs) {
			t.Errorf("Run(%q) error = %v; want one wrapping %v", tt.ref, err, tt.wantIs)
			continue
		}
		for _, s := range tt.wantErr {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("Run(%q) error = %v; want it to mention %q", tt.ref, err, s)
			}
		}
	}
}

func TestRuns(t *testing.T) {
	s := openTestStore(t)
	ctx := t.Context()
	var all []Run
	for i, flow := range []string{"a", "b", "a", "a", "b"} {
		r, err := s.CreateRun(ctx, Run{Flow: flow})
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 1 {
			if err := s.FinishRun(ctx, r.ID, RunSucceeded, ""); err != nil {
				t.Fatal(err)
			}
		}
		all = append(all, r)
	}
	ids := func(idx ...int) []string {
		var out []string
		for _, i := range idx {
			out = append(out, all[i].ID)
		}
		return out
	}
	tests := []struct {
		filter RunFilter
		want   []string
	}{
		{RunFilter{}, ids(4, 3, 2, 1, 0)},
		{RunFilter{Limit: 2}, ids(4, 3)},
		{RunFilter{Flow: "a"}, ids(3, 2, 0)},
		{RunFilter{Flow: "b", Limit: 1}, ids(4)},
		{RunFilter{Status: RunSucceeded}, ids(3, 1)},
		{RunFilter{Status: RunRunning, Flow: "a"}, ids(2, 0)},
		{RunFilter{Flow: "c"}, nil},
	}
	for _, tt := range tests {
		runs, err := s.Runs(ctx, tt.filter)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range runs {
			got = append(got, r.ID)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("Runs(%+v) mismatch (-want +got):\n%s", tt.filter, diff)
		}
	}
}

// createRun creates a run for tests of tasks.
func createRun(t testing.TB, s *Store) string {
	t.Helper()
	r, err := s.CreateRun(t.Context(), Run{Flow: "flow"})
	if err != nil {
		t.Fatal(err)
	}
	return r.ID
}

// at returns a UTC time n seconds into the test's fixed day.
func at(n int) time.Time {
	return time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC).Add(time.Duration(n) * time.Second)
}

func TestTaskLifecycle(t *testing.T) {
	s := openTestStore(t)
	ctx := t.Context()
	run := createRun(t, s)

	start := Task{RunID: run, ID: "train.3.1", Step: "train", Parents: []string{"start.1"}, Index: []int{3}, Attempt: 1, Started: at(1)}
	if err := s.StartTask(ctx, start); err != nil {
		t.Fatal(err)
	}
	running := start
	running.Status = TaskRunning
	wantTask(t, s, running, []Attempt{{RunID: run, TaskID: start.ID, N: 1, Status: TaskRunning, Started: at(1)}})

	failed := running
	failed.Status, failed.Ended, failed.Error, failed.Logs = TaskFailed, at(2), "boom\n  at train.star:3", logsHash
	failed.Artifacts, failed.Foreach = map[string]Hash{"model": blobA}, blobB
	attempt1 := Attempt{RunID: run, TaskID: start.ID, N: 1, Status: TaskFailed, Started: at(1), Ended: at(2), Error: failed.Error, Logs: logsHash}
	if err := s.FinishTasks(ctx, []Task{failed}, []Attempt{attempt1}); err != nil {
		t.Fatal(err)
	}
	wantTask(t, s, failed, []Attempt{attempt1})

	// A retry resets the task to running, dropping the results of the
	// failed attempt.
	retry := start
	retry.Attempt, retry.Started = 2, at(3)
	if err := s.StartTask(ctx, retry); err != nil {
		t.Fatal(err)
	}
	running = retry
	running.Status = TaskRunning
	attempt2 := Attempt{RunID: run, TaskID: start.ID, N: 2, Status: TaskRunning, Started: at(3)}
	wantTask(t, s, running, []Attempt{attempt1, attempt2})

	done := running
	done.Status, done.Ended, done.Next, done.ForeachLen, done.Foreach = TaskSucceeded, at(4), []string{"eval"}, 10, blobB
	done.Artifacts = map[string]Hash{"model": blobB, "data": blobA}
	attempt2.Status, attempt2.Ended = TaskSucceeded, at(4)
	if err := s.FinishTasks(ctx, []Task{done}, []Attempt{attempt2}); err != nil {
		t.Fatal(err)
	}
	wantTask(t, s, done, []Attempt{attempt1, attempt2})
}

// wantTask checks that the store has task want with attempts wantAttempts.
func wantTask(t *testing.T, s *Store, want Task, wantAttempts []Attempt) {
	t.Helper()
	got, err := s.Task(t.Context(), want.RunID, want.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Task mismatch (-want +got):\n%s", diff)
	}
	as, err := s.Attempts(t.Context(), want.RunID, want.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantAttempts, as); diff != "" {
		t.Errorf("Attempts mismatch (-want +got):\n%s", diff)
	}
}

func TestTaskEmptyCollections(t *testing.T) {
	s := openTestStore(t)
	run := createRun(t, s)
	in := Task{
		RunID: run, ID: "t", Step: "s", Status: TaskSucceeded, Attempt: 1,
		Parents: []string{}, Index: []int{}, Next: []string{}, Artifacts: map[string]Hash{},
	}
	if err := s.FinishTasks(t.Context(), []Task{in}, nil); err != nil {
		t.Fatal(err)
	}
	got, err := s.Task(t.Context(), run, "t")
	if err != nil {
		t.Fatal(err)
	}
	if got.Parents != nil || got.Index != nil || got.Next != nil || got.Artifacts != nil {
		t.Errorf("empty collections read back as %#v, want nil", got)
	}
	if diff := cmp.Diff(in, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Task mismatch (-want +got):\n%s", diff)
	}
}

func TestTasksStartOrder(t *testing.T) {
	s := openTestStore(t)
	ctx := t.Context()
	run := createRun(t, s)
	other := createRun(t, s)
	started := []string{"start.1", "b.1", "a.1", "c.1", "a.2"}
	for i, id := range started {
		if err := s.StartTask(ctx, Task{RunID: run, ID: id, Step: "s", Attempt: 1, Started: at(i)}); err != nil {
			t.Fatal(err)
		}
		if err := s.StartTask(ctx, Task{RunID: other, ID: id, Step: "s", Attempt: 1}); err != nil {
			t.Fatal(err)
		}
	}
	// Finishing in another order, restarting, and recording a reused task
	// that never started keep the order of first records.
	var finished []Task
	for _, id := range slices.Backward(started) {
		finished = append(finished, Task{RunID: run, ID: id, Step: "s", Status: TaskSucceeded, Attempt: 1})
	}
	if err := s.FinishTasks(ctx, finished, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.StartTask(ctx, Task{RunID: run, ID: "b.1", Step: "s", Attempt: 2}); err != nil {
		t.Fatal(err)
	}
	reused := Task{RunID: run, ID: "0.reused", Step: "s", Status: TaskReused, Attempt: 1, Origin: other}
	if err := s.FinishTasks(ctx, []Task{reused}, nil); err != nil {
		t.Fatal(err)
	}

	ts, err := s.Tasks(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, task := range ts {
		got = append(got, task.ID)
	}
	if diff := cmp.Diff(append(started, "0.reused"), got); diff != "" {
		t.Errorf("Tasks order mismatch (-want +got):\n%s", diff)
	}
	if ts[1].Status != TaskRunning || ts[len(ts)-1].Origin != other {
		t.Errorf("Tasks returned stale records: %+v", ts)
	}
}

func TestTasksArtifacts(t *testing.T) {
	s := openTestStore(t)
	ctx := t.Context()
	run := createRun(t, s)
	want := []Task{
		{RunID: run, ID: "a", Step: "a", Status: TaskSucceeded, Attempt: 1, Artifacts: map[string]Hash{"x": blobA}},
		{RunID: run, ID: "b", Step: "b", Status: TaskSucceeded, Attempt: 1},
		{RunID: run, ID: "c", Step: "c", Status: TaskSucceeded, Attempt: 1, Artifacts: map[string]Hash{"x": blobA, "y": blobB}},
	}
	if err := s.FinishTasks(ctx, want, nil); err != nil {
		t.Fatal(err)
	}
	got, err := s.Tasks(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Tasks mismatch (-want +got):\n%s", diff)
	}
}

func TestTaskNotFound(t *testing.T) {
	s := openTestStore(t)
	ctx := t.Context()
	run := createRun(t, s)
	if ts, err := s.Tasks(ctx, run); err != nil || ts != nil {
		t.Errorf("Tasks of run without tasks = %v, %v; want none", ts, err)
	}
	if err := s.StartTask(ctx, Task{RunID: run, ID: "t", Step: "s", Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		call func() error
	}{
		{"Tasks of unknown run", func() error { _, err := s.Tasks(ctx, "nope"); return err }},
		{"Task of unknown run", func() error { _, err := s.Task(ctx, "nope", "t"); return err }},
		{"unknown Task", func() error { _, err := s.Task(ctx, run, "u"); return err }},
		{"empty Task ID", func() error { _, err := s.Task(ctx, run, ""); return err }},
		{"Attempts of unknown task", func() error { _, err := s.Attempts(ctx, run, "u"); return err }},
	}
	for _, tt := range tests {
		if err := tt.call(); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: %v; want ErrNotFound", tt.name, err)
		}
	}
}

func TestTaskValidation(t *testing.T) {
	s := openTestStore(t)
	ctx := t.Context()
	run := createRun(t, s)
	ok := Task{RunID: run, ID: "t", Step: "s", Status: TaskSucceeded, Attempt: 1}
	okAttempt := Attempt{RunID: run, TaskID: "t", N: 1, Status: TaskSucceeded}
	with := func(f func(*Task)) Task { t := ok; f(&t); return t }
	withAttempt := func(f func(*Attempt)) Attempt { a := okAttempt; f(&a); return a }
	tests := []struct {
		name    string
		task    Task
		attempt Attempt
		wantErr string
	}{
		{"no run", with(func(t *Task) { t.RunID = "" }), okAttempt, "empty run ID"},
		{"no ID", with(func(t *Task) { t.ID = "" }), okAttempt, "empty task ID"},
		{"no step", with(func(t *Task) { t.Step = "" }), okAttempt, "empty step"},
		{"running", with(func(t *Task) { t.Status = TaskRunning }), okAttempt, `invalid final status "running"`},
		{"no status", with(func(t *Task) { t.Status = "" }), okAttempt, `invalid final status ""`},
		{"negative attempt", with(func(t *Task) { t.Attempt = -1 }), okAttempt, "invalid attempt number -1"},
		{"negative foreach", with(func(t *Task) { t.ForeachLen = -1 }), okAttempt, "negative foreach length"},
		{"bad logs", with(func(t *Task) { t.Logs = "x" }), okAttempt, `logs: invalid hash "x"`},
		{"bad foreach", with(func(t *Task) { t.Foreach = "sha256:x" }), okAttempt, `foreach: invalid hash "sha256:x"`},
		{"bad artifact", with(func(t *Task) { t.Artifacts = map[string]Hash{"m": ""} }), okAttempt, `artifact m: invalid hash ""`},
		{"bad time", with(func(t *Task) { t.Ended = time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC) }), okAttempt, "out of range"},
		{"attempt 0", ok, withAttempt(func(a *Attempt) { a.N = 0 }), "invalid attempt number 0"},
		{"attempt running", ok, withAttempt(func(a *Attempt) { a.Status = TaskRunning }), `invalid final status "running"`},
		{"attempt no task", ok, withAttempt(func(a *Attempt) { a.TaskID = "" }), "empty task ID"},
		{"attempt bad logs", ok, withAttempt(func(a *Attempt) { a.Logs = "sha256:" }), "logs: invalid hash"},
		{"unknown run", with(func(t *Task) { t.RunID = "nope" }), withAttempt(func(a *Attempt) { a.RunID = "nope" }), "FOREIGN KEY"},
		{"attempt of unknown task", ok, withAttempt(func(a *Attempt) { a.TaskID = "u" }), "FOREIGN KEY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.FinishTasks(ctx, []Task{tt.task}, []Attempt{tt.attempt})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("FinishTasks error = %v; want one containing %q", err, tt.wantErr)
			}
			// CommitTask takes attempt number 0 for no attempt.
			if tt.attempt.N != 0 {
				err = s.CommitTask(ctx, tt.task, tt.attempt)
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("CommitTask error = %v; want one containing %q", err, tt.wantErr)
				}
			}
			// Nothing of a failed call is recorded.
			if ts, err := s.Tasks(ctx, run); err != nil || len(ts) != 0 {
				t.Errorf("after failed calls, Tasks = %v, %v; want none", ts, err)
			}
		})
	}

	startTests := []struct {
		name    string
		task    Task
		wantErr string
	}{
		{"attempt 0", with(func(t *Task) { t.Attempt = 0 }), "invalid attempt number 0"},
		{"no step", with(func(t *Task) { t.Step = "" }), "empty step"},
		{"unknown run", with(func(t *Task) { t.RunID = "nope" }), "FOREIGN KEY"},
	}
	for _, tt := range startTests {
		if err := s.StartTask(ctx, tt.task); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("StartTask (%s) error = %v; want one containing %q", tt.name, err, tt.wantErr)
		}
	}
}

// TestFinishTasksVisibility checks that finished tasks are visible to other
// connections and processes as soon as FinishTasks returns, and that their
// blobs have been synced.
func TestFinishTasksVisibility(t *testing.T) {
	dir := t.TempDir()
	s1 := openStoreAt(t, dir)
	s2 := openStoreAt(t, dir)
	ctx := t.Context()
	run := createRun(t, s1)
	h, err := s1.Blobs().Put(ctx, []byte("model"))
	if err != nil {
		t.Fatal(err)
	}
	task := Task{RunID: run, ID: "t", Step: "s", Status: TaskSucceeded, Attempt: 1, Artifacts: map[string]Hash{"m": h}}
	if err := s1.FinishTasks(ctx, []Task{task}, nil); err != nil {
		t.Fatal(err)
	}
	if s1.blobs.dirty {
		t.Error("blobs still pending after FinishTasks")
	}
	got, err := s2.Task(ctx, run, "t")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(task, got); diff != "" {
		t.Errorf("Task seen by another store mismatch (-want +got):\n%s", diff)
	}
	if _, err := s2.Blobs().Get(ctx, got.Artifacts["m"]); err != nil {
		t.Error(err)
	}
}

func TestContextCancelled(t *testing.T) {
	s := openTestStore(t)
	run := createRun(t, s)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	task := Task{RunID: run, ID: "t", Step: "s", Status: TaskSucceeded, Attempt: 1}
	calls := map[string]func() error{
		"CreateRun":   func() error { _, err := s.CreateRun(ctx, Run{Flow: "f"}); return err },
		"FinishRun":   func() error { return s.FinishRun(ctx, run, RunSucceeded, "") },
		"Run":         func() error { _, err := s.Run(ctx, run); return err },
		"Runs":        func() error { _, err := s.Runs(ctx, RunFilter{}); return err },
		"StartTask":   func() error { return s.StartTask(ctx, Task{RunID: run, ID: "t", Step: "s", Attempt: 1}) },
		"FinishTasks": func() error { return s.FinishTasks(ctx, []Task{task}, nil) },
		"CommitTask":  func() error { return s.CommitTask(ctx, task, Attempt{}) },
		"Tasks":       func() error { _, err := s.Tasks(ctx, run); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with cancelled context: %v; want context.Canceled", name, err)
		}
	}
	if ts, err := s.Tasks(t.Context(), run); err != nil || len(ts) != 0 {
		t.Errorf("cancelled calls recorded tasks: %v, %v", ts, err)
	}
}

// TestDatastoreInStore checks that a datastore in the store's folder is
// recorded relative to it: a store that is moved keeps its runs' blobs.
func TestDatastoreInStore(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "a b#c")
	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	inside := (&url.URL{Scheme: "file", Path: filepath.ToSlash(dir) + "/datastore"}).String()
	outside := "s3://bucket/p?endpoint=http://127.0.0.1:9000"
	var ids []string
	for _, ds := range []string{inside, outside, ""} {
		r, err := s.CreateRun(ctx, Run{Flow: "f", Datastore: ds})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	moved := filepath.Join(t.TempDir(), "moved")
	if err := os.Rename(dir, moved); err != nil {
		t.Fatal(err)
	}
	s = openStoreAt(t, moved)
	want := []string{(&url.URL{Scheme: "file", Path: filepath.ToSlash(moved) + "/datastore"}).String(), outside, ""}
	for i, id := range ids {
		r, err := s.Run(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if r.Datastore != want[i] {
			t.Errorf("run %d: datastore %q, want %q", i, r.Datastore, want[i])
		}
	}
}

// TestCreateRunFlushesCode checks that a code package large enough for a
// file of its own is on disk, flushed, once the run that needs it is
// recorded.
func TestCreateRunFlushesCode(t *testing.T) {
	s := openTestStore(t)
	code, err := s.Blobs().Put(t.Context(), randomBytes(7, s.inlineMax+1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateRun(t.Context(), Run{Flow: "f", CodeHash: code}); err != nil {
		t.Fatal(err)
	}
	s.blobs.mu.Lock()
	dirty := s.blobs.dirty
	s.blobs.mu.Unlock()
	if dirty {
		t.Error("the code's blob file is not flushed once its run is recorded")
	}
}

// TestDeadRun checks that a run recorded running shows dead once the
// process that ran it is gone, and running while it runs; a driver of
// another machine is not known to be gone.
func TestDeadRun(t *testing.T) {
	if thisDriver() == "" {
		t.Skip("no /proc here to tell which processes run")
	}
	s := openTestStore(t)
	ctx := t.Context()
	live, err := s.CreateRun(ctx, Run{Flow: "f"})
	if err != nil {
		t.Fatal(err)
	}
	// A process that ran and ended: its PID with another start time.
	f := strings.Fields(thisDriver())
	for name, d := range map[string]string{
		"dead":      strings.Join([]string{f[0], f[1], f[2], f[3], f[4] + "0"}, " "),
		"reboot":    strings.Join([]string{f[0], "another-boot", f[2], f[3], f[4]}, " "),
		"elsewhere": strings.Join([]string{"another-host", "another-boot", f[2], f[3], f[4] + "0"}, " "),
		"container": strings.Join([]string{f[0], f[1], "pid:[1]", f[3], f[4] + "0"}, " "),
	} {
		r, err := s.CreateRun(ctx, Run{Flow: name})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.wdb.ExecContext(ctx, "UPDATE runs SET driver = ? WHERE id = ?", d, r.ID); err != nil {
			t.Fatal(err)
		}
	}
	got := make(map[string]RunStatus)
	runs, err := s.Runs(ctx, RunFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range runs {
		got[r.Flow] = r.Status
	}
	want := map[string]RunStatus{"f": RunRunning, "dead": RunDead, "reboot": RunDead, "elsewhere": RunRunning, "container": RunRunning}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
	for status, n := range map[RunStatus]int{RunDead: 2, RunRunning: 3} {
		if runs, err := s.Runs(ctx, RunFilter{Status: status, Limit: 5}); err != nil || len(runs) != n {
			t.Errorf("runs %s: %d, %v; want %d", status, len(runs), err, n)
		}
	}
	if r, err := s.Run(ctx, live.ID); err != nil || r.Status != RunRunning {
		t.Errorf("the live run: %s, %v", r.Status, err)
	}
}
