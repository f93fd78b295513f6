package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/daggerflow/dagger/builtins"
	"github.com/daggerflow/dagger/history"
	"github.com/daggerflow/dagger/starlark"
	"github.com/daggerflow/dagger/store"
)

// logsFlow prints from a foreach and from each attempt of a retried step.
const logsFlow = `
def start(ctx):
    print("two\nlines")
    next_step(each, foreach = ["a", "b"])

def each(ctx):
    print("element %s" % ctx.input)
    next_step(join)

def join(ctx, inputs):
    next_step(flaky)

def flaky(ctx):
    print("attempt %d" % ctx.attempt)
    if ctx.attempt < 3:
        fail("not yet")
    next_step(finish)

step(flaky, retries = 2, retry_delay = "1ms")

def finish(ctx):
    print("done <&>")
`

// TestLogs checks what dagger logs prints of a run that ended.
func TestLogs(t *testing.T) {
	dir := t.TempDir()
	// One worker, so that the tasks of the foreach start in the order of
	// their index.
	id := recordRun(t, dir, "--max-workers", "1", writeFlow(t, "logs.star", logsFlow))
	tests := []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{args: []string{id}, stdout: "start| two\nstart| lines\neach.0| element a\neach.1| element b\n" +
			"flaky| attempt 1\nflaky| attempt 2\nflaky| attempt 3\nfinish| done <&>\n"},
		{args: []string{"latest/each"}, stdout: "each.0| element a\neach.1| element b\n"},
		{args: []string{id + "/each/1"}, stdout: "each.1| element b\n"},
		{args: []string{id + "/flaky", "--follow"}, stdout: "flaky| attempt 1\nflaky| attempt 2\nflaky| attempt 3\n"},
		{args: []string{id + "/join"}},
		{args: []string{id + "/finish", "--json"}, stdout: `{"run_id":"` + id + `","step":"finish","task_id":"finish","attempt":1,"line":"done <&>"}` + "\n"},
		{args: []string{id + "/each/5"}, code: exitInvalid, stderr: "dagger: run " + id + " has no task each.5; tasks of each: each.0, each.1\n"},
		{args: []string{id + "/nope"}, code: exitInvalid, stderr: "dagger: run " + id + " has no step nope; steps: start, each, join, flaky, finish\n"},
		{args: []string{id + "/flaky/x"}, code: exitInvalid, stderr: "dagger logs: x is an artifact: give RUN[/STEP[/TASK]]\nRun 'dagger logs --help' for usage.\n"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := runDagger(t, slices.Concat([]string{"logs", "--store", dir}, tt.args)...)
			want := result{code: tt.code, stdout: tt.stdout, stderr: tt.stderr}
			if diff := gocmp.Diff(want, r, gocmp.AllowUnexported(result{})); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestLogsJSON checks that each line of dagger logs --json is an object
// with its task and attempt.
func TestLogsJSON(t *testing.T) {
	dir := t.TempDir()
	id := recordRun(t, dir, writeFlow(t, "logs.star", logsFlow))
	r := runDagger(t, "logs", "--store", dir, "--json", id+"/flaky")
	if r.code != exitOK {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var got []history.LogLine
	for line := range strings.Lines(r.stdout) {
		var l history.LogLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		got = append(got, l)
	}
	var want []history.LogLine
	for _, n := range []int{1, 2, 3} {
		want = append(want, history.LogLine{RunID: id, Step: "flaky", TaskID: "flaky", Attempt: n, Line: fmt.Sprintf("attempt %d", n)})
	}
	if diff := gocmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// slowFlow has a step that runs for a while between its two lines.
const slowFlow = `
def start(ctx):
    print("starting")
    next_step(slow)

def slow(ctx):
    print("slow begins")
    for _ in range(5000000):
        pass
    print("slow ends")
    next_step(finish)

def finish(ctx):
    print("done")
`

// TestLogsFollowRun follows a run of dagger run, in a process of its own,
// from its first task to its end.
func TestLogsFollowRun(t *testing.T) {
	dir := t.TempDir()
	cmd := daggerCommand(t, "run", "--store", dir, writeFlow(t, "slow.star", slowFlow))
	stdout := startUntil(t, cmd, "start| starting")
	r := runDagger(t, "logs", "--store", dir, "--follow", "latest")
	if _, err := io.ReadAll(stdout); err != nil {
		t.Error(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("dagger run: %v\n%s", err, cmd.Stderr)
	}
	want := result{stdout: "start| starting\nslow| slow begins\nslow| slow ends\nfinish| done\n"}
	if diff := gocmp.Diff(want, r, gocmp.AllowUnexported(result{})); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// A recorder records a run of helloFlow in a store, task by task, as the
// engine would, to put it in states that a run of the engine passes
// through too quickly to test, or stays in only when interrupted.
type recorder struct {
	t   *testing.T
	st  *store.Store
	run store.Run
}

// newRecorder records a new run in the store in dir.
func newRecorder(t *testing.T, dir string) *recorder {
	t.Helper()
	path := writeFlow(t, "hello.star", helloFlow)
	flow, err := starlark.Load(path, builtins.Standard())
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	code, err := st.Blobs().Put(t.Context(), flow.Package.Encode())
	if err != nil {
		t.Fatal(err)
	}
	r, err := st.CreateRun(t.Context(), store.Run{Flow: "hello", FlowPath: path, CodeHash: code})
	if err != nil {
		t.Fatal(err)
	}
	return &recorder{t: t, st: st, run: r}
}

// start records that attempt n at task id, of the step of that name,
// started.
func (rec *recorder) start(id string, n int) {
	rec.t.Helper()
	err := rec.st.StartTask(context.Background(), store.Task{RunID: rec.run.ID, ID: id, Step: id, Attempt: n, Started: time.Now()})
	if err != nil {
		rec.t.Fatal(err)
	}
}

// end records that attempt n at task id ended with status, having printed
// logs.
func (rec *recorder) end(id string, n int, status store.TaskStatus, logs string) {
	rec.t.Helper()
	ctx := context.Background()
	h, err := rec.st.Blobs().Put(ctx, []byte(logs))
	if err != nil {
		rec.t.Fatal(err)
	}
	now := time.Now()
	t := store.Task{RunID: rec.run.ID, ID: id, Step: id, Status: status, Attempt: n, Started: now, Ended: now, Logs: h}
	a := store.Attempt{RunID: rec.run.ID, TaskID: id, N: n, Status: status, Started: now, Ended: now, Logs: h}
	if err := rec.st.CommitTask(ctx, t, a); err != nil {
		rec.t.Fatal(err)
	}
}

// finish records that the run ended with status.
func (rec *recorder) finish(status store.RunStatus) {
	rec.t.Helper()
	if err := rec.st.FinishRun(context.Background(), rec.run.ID, status, ""); err != nil {
		rec.t.Fatal(err)
	}
}

// followLogs runs dagger logs --follow on the run of rec in the
// background, until ctx is done or the run ends, and returns what it did
// on a channel.
func followLogs(ctx context.Context, dir string, rec *recorder) <-chan result {
	done := make(chan result, 1)
	go func() {
		var stdout, stderr bytes.Buffer
		code := Run(ctx, builtins.Standard(), []string{"dagger", "logs", "--store", dir, "--follow", rec.run.ID}, strings.NewReader(""), &stdout, &stderr)
		done <- result{code: code, stdout: stdout.String(), stderr: stderr.String()}
	}()
	return done
}

// TestLogsFollow follows a run while its tasks start, fail, are retried
// and end: each attempt's output is printed once, when it ends, and
// dagger stops when the run ends.
func TestLogsFollow(t *testing.T) {
	dir := t.TempDir()
	rec := newRecorder(t, dir)
	rec.start("start", 1)
	rec.end("start", 1, store.TaskSucceeded, "hi\n")
	rec.start("hello", 1)
	rec.end("hello", 1, store.TaskFailed, "try 1\n")
	rec.start("hello", 2)
	done := followLogs(t.Context(), dir, rec)
	time.Sleep(3 * pollInterval)
	rec.end("hello", 2, store.TaskSucceeded, "try 2\n")
	rec.start("finish", 1)
	time.Sleep(3 * pollInterval)
	rec.end("finish", 1, store.TaskSucceeded, "")
	rec.finish(store.RunSucceeded)
	select {
	case r := <-done:
		want := result{stdout: "start| hi\nhello| try 1\nhello| try 2\n"}
		if diff := gocmp.Diff(want, r, gocmp.AllowUnexported(result{})); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("dagger logs --follow did not stop when the run ended")
	}
}

// TestLogsFollowInterrupted follows a run left running, as dagger run
// leaves one it is interrupted twice in: dagger logs prints what ended,
// and stops, exiting with 0, only when interrupted.
func TestLogsFollowInterrupted(t *testing.T) {
	dir := t.TempDir()
	rec := newRecorder(t, dir)
	rec.start("start", 1)
	rec.end("start", 1, store.TaskSucceeded, "hi\n")
	rec.start("hello", 1)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := followLogs(ctx, dir, rec)
	select {
	case r := <-done:
		t.Fatalf("dagger logs --follow stopped before it was interrupted: %+v", r)
	case <-time.After(3 * pollInterval):
	}
	cancel()
	select {
	case r := <-done:
		want := result{stdout: "start| hi\n"}
		if diff := gocmp.Diff(want, r, gocmp.AllowUnexported(result{})); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("dagger logs --follow did not stop when interrupted")
	}
}

// TestLogsNoStore checks that dagger logs neither finds a run in a store
// that does not exist nor creates it.
func TestLogsNoStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nothing")
	r := runDagger(t, "logs", "--store", dir, "latest")
	want := result{code: exitInvalid, stderr: `dagger: run "latest": not found: there is no store in ` + dir + "\n"}
	if diff := gocmp.Diff(want, r, gocmp.AllowUnexported(result{})); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("dagger logs created %s", dir)
	}
}
