package cli

import (
	"bufio"
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

// gateFlow has a step that prints a line, then waits until the file gate
// exists, then prints another.
const gateFlow = `
gate = param("gate")

def start(ctx):
    print("before the gate")
    exec.run(["sh", "-c", 'while [ ! -e "$1" ]; do sleep 0.01; done', "sh", gate])
    print("after the gate")
    next_step(finish)

step(start, allow = ["exec"], timeout = "1m")

def finish(ctx):
    print("done")
`

// TestLogsFollowRun follows a run of dagger run, in a process of its own,
// from its first task to its end, and checks that a line a task prints
// arrives while the task runs: the task waits for the test to see it
// before it ends.
func TestLogsFollowRun(t *testing.T) {
	dir := t.TempDir()
	gate := filepath.Join(t.TempDir(), "gate")
	cmd := daggerCommand(t, "run", "--store", dir, "--allow", "exec", writeFlow(t, "gate.star", gateFlow), "-p", "gate="+gate)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The run is recorded before it prints its first line, its ID.
	runOut := bufio.NewReader(stdout)
	header, err := runOut.ReadString('\n')
	m := runHeader.FindStringSubmatch(header)
	if m == nil {
		t.Fatalf("dagger run printed %q (%v), not its run; stderr:\n%s", header, err, cmd.Stderr)
	}
	logs := followLogsOf(t.Context(), dir, m[1])
	// Without the line, the task would wait for a minute.
	if err := logs.waitFor("start| before the gate", 20*time.Second); err != nil {
		t.Errorf("%v; the task had not ended", err)
	}
	if err := os.WriteFile(gate, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(runOut); err != nil {
		t.Error(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("dagger run: %v\n%s", err, cmd.Stderr)
	}
	r := logs.wait(t)
	want := result{stdout: "start| before the gate\nstart| after the gate\nfinish| done\n"}
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

// A follower is dagger logs --follow running in the background, whose
// output the test reads as it comes.
type follower struct {
	lines  chan string   // each line printed, closed at the end
	stdout []string      // the lines read from lines
	done   chan struct{} // closed when dagger logs returned
	res    result        // once done: the exit code and stderr
}

// followLogsOf runs dagger logs --follow on run, in the store in dir, in
// the background, until ctx is done or the run ends.
func followLogsOf(ctx context.Context, dir, run string) *follower {
	f := &follower{lines: make(chan string, 100), done: make(chan struct{})}
	pr, pw := io.Pipe()
	go func() {
		var stderr bytes.Buffer
		code := Run(ctx, builtins.Standard(), []string{"dagger", "logs", "--store", dir, "--follow", run}, strings.NewReader(""), pw, &stderr)
		pw.Close()
		f.res = result{code: code, stderr: stderr.String()}
		close(f.done)
	}()
	go func() {
		lines := bufio.NewScanner(pr)
		for lines.Scan() {
			f.lines <- lines.Text()
		}
		close(f.lines)
	}()
	return f
}

// followLogs is followLogsOf the run of rec.
func followLogs(ctx context.Context, dir string, rec *recorder) *follower {
	return followLogsOf(ctx, dir, rec.run.ID)
}

// waitFor reads the lines printed until want, or until timeout has
// passed or the output ended, which is an error.
func (f *follower) waitFor(want string, timeout time.Duration) error {
	deadline := time.After(timeout)
	for {
		select {
		case line, ok := <-f.lines:
			if !ok {
				return fmt.Errorf("dagger logs --follow ended without printing %q; it printed %q", want, f.stdout)
			}
			f.stdout = append(f.stdout, line)
			if line == want {
				return nil
			}
		case <-deadline:
			return fmt.Errorf("dagger logs --follow did not print %q in %v; it printed %q", want, timeout, f.stdout)
		}
	}
}

// wait waits for dagger logs to end, up to 10 seconds, and returns what
// it did.
func (f *follower) wait(t *testing.T) result {
	t.Helper()
	select {
	case <-f.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("dagger logs --follow did not stop; it printed %q", f.stdout)
	}
	for line := range f.lines {
		f.stdout = append(f.stdout, line)
	}
	r := f.res
	for _, line := range f.stdout {
		r.stdout += line + "\n"
	}
	return r
}

// stopped reports whether dagger logs has ended.
func (f *follower) stopped() bool {
	select {
	case <-f.done:
		return true
	default:
		return false
	}
}

// TestLogsFollow follows a run while its tasks start, fail, are retried
// and end: each attempt's output is printed once, when it ends, before the
// run ends, and dagger stops when the run ends.
func TestLogsFollow(t *testing.T) {
	dir := t.TempDir()
	rec := newRecorder(t, dir)
	rec.start("start", 1)
	rec.end("start", 1, store.TaskSucceeded, "hi\n")
	rec.start("hello", 1)
	rec.end("hello", 1, store.TaskFailed, "try 1\n")
	rec.start("hello", 2)
	logs := followLogs(t.Context(), dir, rec)
	for _, want := range []string{"start| hi", "hello| try 1"} {
		if err := logs.waitFor(want, 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	rec.end("hello", 2, store.TaskSucceeded, "try 2\n")
	rec.start("finish", 1)
	if err := logs.waitFor("hello| try 2", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if logs.stopped() {
		t.Fatal("dagger logs --follow stopped before the run ended")
	}
	rec.end("finish", 1, store.TaskSucceeded, "")
	rec.finish(store.RunSucceeded)
	want := result{stdout: "start| hi\nhello| try 1\nhello| try 2\n"}
	if diff := gocmp.Diff(want, logs.wait(t), gocmp.AllowUnexported(result{})); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
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
	logs := followLogs(ctx, dir, rec)
	if err := logs.waitFor("start| hi", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	// Some polls of the store later, it still follows.
	time.Sleep(3 * pollInterval)
	if logs.stopped() {
		t.Fatalf("dagger logs --follow stopped before it was interrupted: %+v", logs.wait(t))
	}
	cancel()
	want := result{stdout: "start| hi\n"}
	if diff := gocmp.Diff(want, logs.wait(t), gocmp.AllowUnexported(result{})); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
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
