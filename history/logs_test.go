package history_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/daggerflow/dagger/history"
	"github.com/daggerflow/dagger/store"
)

// TestLogReader reads the output of every task of a run that ended: the
// lines of each attempt, in order, once.
func TestLogReader(t *testing.T) {
	_, r := load(t)
	lr := history.NewLogReader(r)
	got := make(map[string][]history.LogLine)
	for _, task := range r.Tasks() {
		lines, err := lr.Read(t.Context(), task)
		if err != nil {
			t.Fatal(err)
		}
		if lines != nil {
			got[task.ID] = lines
		}
	}
	line := func(step, task string, n int, text string) history.LogLine {
		return history.LogLine{RunID: r.ID, Step: step, TaskID: task, Attempt: n, Line: text}
	}
	want := map[string][]history.LogLine{
		"start":     {line("start", "start", 1, "two"), line("start", "start", 1, "lines")},
		"inner.0.0": {line("inner", "inner.0.0", 1, "1a")},
		"inner.0.1": {line("inner", "inner.0.1", 1, "1b")},
		"inner.1.0": {line("inner", "inner.1.0", 1, "2a")},
		"inner.1.1": {line("inner", "inner.1.1", 1, "2b")},
		"flaky":     {line("flaky", "flaky", 1, "attempt 1"), line("flaky", "flaky", 2, "attempt 2"), line("flaky", "flaky", 3, "attempt 3")},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, task := range r.Tasks() {
		if lines, err := lr.Read(t.Context(), task); lines != nil || err != nil {
			t.Errorf("Read(%s) again = %v, %v; want nothing", task.ID, lines, err)
		}
	}
}

// A recorder records a run in a store task by task, as the engine would,
// to stop it in states that a run of the engine passes through too
// quickly to test.
type recorder struct {
	t   *testing.T
	st  *store.Store
	run store.Run
}

// newRecorder records a new run in a new store.
func newRecorder(t *testing.T) *recorder {
	t.Helper()
	st, err := store.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r, err := st.CreateRun(t.Context(), store.Run{Flow: "hello"})
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

// history returns the run as history reads it.
func (rec *recorder) history() *history.Run {
	rec.t.Helper()
	r, err := history.Load(context.Background(), rec.st, rec.run.ID)
	if err != nil {
		rec.t.Fatal(err)
	}
	return r
}

// task returns the record of task id as it is now.
func (rec *recorder) task(id string) store.Task {
	rec.t.Helper()
	t, err := rec.st.Task(context.Background(), rec.run.ID, id)
	if err != nil {
		rec.t.Fatal(err)
	}
	return t
}

// TestLogReaderRetried reads a task while it is retried: the output of
// each attempt once it ended, and never twice.
func TestLogReaderRetried(t *testing.T) {
	rec := newRecorder(t)
	lr := history.NewLogReader(rec.history())
	read := func() []string {
		t.Helper()
		lines, err := lr.Read(t.Context(), rec.task("hello"))
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, l := range lines {
			out = append(out, l.Line)
		}
		return out
	}
	steps := []struct {
		do   func()
		want []string
	}{
		{func() { rec.start("hello", 1) }, nil},
		{func() { rec.end("hello", 1, store.TaskFailed, "try 1\n") }, []string{"try 1"}},
		{func() {}, nil},
		{func() { rec.start("hello", 2) }, nil},
		{func() { rec.end("hello", 2, store.TaskFailed, "") }, nil},
		{func() { rec.start("hello", 3) }, nil},
		{func() { rec.end("hello", 3, store.TaskSucceeded, "try 3\nand a line\n") }, []string{"try 3", "and a line"}},
		{func() {}, nil},
	}
	for i, s := range steps {
		s.do()
		if diff := cmp.Diff(s.want, read()); diff != "" {
			t.Errorf("step %d (-want +got):\n%s", i, diff)
		}
	}

	// A reader that starts late reads every attempt that ended at once.
	lines, err := history.NewLogReader(rec.history()).Read(t.Context(), rec.task("hello"))
	if err != nil {
		t.Fatal(err)
	}
	var attempts []int
	for _, l := range lines {
		attempts = append(attempts, l.Attempt)
	}
	if diff := cmp.Diff([]int{1, 3, 3}, attempts); diff != "" {
		t.Errorf("attempts of the lines (-want +got):\n%s", diff)
	}
}

// TestFollow follows a run from while it runs to its end: fn sees the
// run running until it has ended, and once ended, and Follow returns nil.
func TestFollow(t *testing.T) {
	rec := newRecorder(t)
	rec.start("hello", 1)
	r, err := history.Load(t.Context(), rec.st, rec.run.ID)
	if err != nil {
		t.Fatal(err)
	}
	calls := make(chan bool, 1)
	done := make(chan error, 1)
	var seen []bool // what fn was told, running or not
	go func() {
		done <- history.Follow(t.Context(), r, time.Millisecond, func(running bool) error {
			seen = append(seen, running)
			select {
			case calls <- running:
			default:
			}
			return nil
		})
	}()
	<-calls
	rec.end("hello", 1, store.TaskSucceeded, "hi\n")
	if err := rec.st.FinishRun(t.Context(), rec.run.ID, store.RunSucceeded, ""); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Follow did not return when the run ended")
	}
	if seen[0] != true || seen[len(seen)-1] != false || countFalse(seen) != 1 {
		t.Errorf("fn was told running %v, want true first, then false once, last", seen)
	}
	if len(r.Tasks()) != 1 || r.Tasks()[0].Status != store.TaskSucceeded || r.Status != store.RunSucceeded {
		t.Errorf("run %s with tasks %+v, want it reloaded, succeeded", r.Status, r.Tasks())
	}
}

// countFalse returns how many of bs are false.
func countFalse(bs []bool) int {
	n := 0
	for _, b := range bs {
		if !b {
			n++
		}
	}
	return n
}

// TestFollowStops checks that Follow stops when ctx is done, and at the
// first error of fn.
func TestFollowStops(t *testing.T) {
	rec := newRecorder(t)
	r, err := history.Load(t.Context(), rec.st, rec.run.ID)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	n := 0
	err = history.Follow(ctx, r, time.Millisecond, func(bool) error {
		if n++; n == 3 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || n != 3 {
		t.Errorf("Follow = %v after %d calls, want context.Canceled after 3", err, n)
	}

	stop := errors.New("stop")
	n = 0
	err = history.Follow(t.Context(), r, time.Millisecond, func(bool) error {
		n++
		return stop
	})
	if err != stop || n != 1 {
		t.Errorf("Follow = %v after %d calls, want fn's error after 1", err, n)
	}
}

// TestLogReaderLive reads a task while it runs: each line its run's
// process wrote for followers once, then, once it ended, only the lines
// not read yet; and a retry's lines apart from its first attempt's.
func TestLogReaderLive(t *testing.T) {
	rec := newRecorder(t)
	live := rec.st.LiveLog(rec.run.ID)
	defer live.Close()
	lr := history.NewLogReader(rec.history())
	read := func() []string {
		t.Helper()
		lines, err := lr.Read(t.Context(), rec.task("hello"))
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, l := range lines {
			out = append(out, fmt.Sprint(l.Attempt, " ", l.Line))
		}
		return out
	}
	print := func(n int, lines ...string) func() {
		return func() {
			for _, l := range lines {
				live.Attempt("hello", n).Add(l)
			}
			live.Flush()
		}
	}
	steps := []struct {
		do   func()
		want []string
	}{
		{func() { rec.start("hello", 1) }, nil},
		{print(1, "one", "two"), []string{"1 one", "1 two"}},
		{func() {}, nil},
		{print(1, "three"), []string{"1 three"}},
		{func() {
			live.End("hello", 1)
			rec.end("hello", 1, store.TaskFailed, "one\ntwo\nthree\nfour\n")
		}, []string{"1 four"}},
		{func() { rec.start("hello", 2) }, nil},
		{print(2, "again"), []string{"2 again"}},
		{func() {
			live.End("hello", 2)
			rec.end("hello", 2, store.TaskSucceeded, "again\n")
		}, nil},
	}
	for i, s := range steps {
		s.do()
		if diff := cmp.Diff(s.want, read()); diff != "" {
			t.Errorf("step %d (-want +got):\n%s", i, diff)
		}
	}
}
