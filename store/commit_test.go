package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestCommitTaskConcurrent(t *testing.T) {
	s := openTestStore(t)
	ctx := t.Context()
	run := createRun(t, s)
	const n = 1000
	want := make([]Task, n)
	wantAttempts := make([]Attempt, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			id := strconv.Itoa(i)
			if err := s.StartTask(ctx, Task{RunID: run, ID: id, Step: "s", Attempt: 1, Started: at(i)}); err != nil {
				t.Error(err)
				return
			}
			h, err := s.Blobs().Put(ctx, []byte(id))
			if err != nil {
				t.Error(err)
				return
			}
			want[i] = Task{
				RunID: run, ID: id, Step: "s", Index: []int{i}, Status: TaskSucceeded, Attempt: 1,
				Started: at(i), Ended: at(i + 1), Artifacts: map[string]Hash{"out": h},
			}
			wantAttempts[i] = Attempt{RunID: run, TaskID: id, N: 1, Status: TaskSucceeded, Started: at(i), Ended: at(i + 1)}
			if err := s.CommitTask(ctx, want[i], wantAttempts[i]); err != nil {
				t.Error(err)
				return
			}
			// The task is visible, with its blob, as soon as CommitTask
			// returns.
			got, err := s.Task(ctx, run, id)
			if err != nil {
				t.Error(err)
				return
			}
			if diff := cmp.Diff(want[i], got); diff != "" {
				t.Errorf("Task after CommitTask mismatch (-want +got):\n%s", diff)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if s.blobs.dirty || !s.inline.empty() {
		t.Error("blobs still pending after all CommitTask calls returned")
	}
	ts, err := s.Tasks(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != n {
		t.Fatalf("%d tasks recorded, want %d", len(ts), n)
	}
	for _, task := range ts {
		as, err := s.Attempts(ctx, run, task.ID)
		if err != nil {
			t.Fatal(err)
		}
		i := task.Index[0]
		if diff := cmp.Diff([]Attempt{wantAttempts[i]}, as); diff != "" {
			t.Errorf("Attempts of task %s mismatch (-want +got):\n%s", task.ID, diff)
		}
	}
}

// TestCommitTaskIsolatesFailures checks that a task that cannot be recorded
// fails alone, not the others batched with it.
func TestCommitTaskIsolatesFailures(t *testing.T) {
	s := openTestStore(t)
	ctx := t.Context()
	run := createRun(t, s)
	const n = 200
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			task := Task{RunID: run, ID: strconv.Itoa(i), Step: "s", Status: TaskSucceeded, Attempt: 1}
			if i%10 == 0 {
				task.RunID = "unknown"
			}
			errs[i] = s.CommitTask(ctx, task, Attempt{})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if wantFail := i%10 == 0; wantFail != (err != nil) {
			t.Errorf("task %d: CommitTask error = %v, want failure: %t", i, err, wantFail)
		}
		if err != nil && !strings.Contains(err.Error(), "FOREIGN KEY") {
			t.Errorf("task %d: CommitTask error = %v, want foreign key violation", i, err)
		}
	}
	ts, err := s.Tasks(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != n-n/10 {
		t.Errorf("%d tasks recorded, want %d", len(ts), n-n/10)
	}
}

func TestCommitTaskCancelled(t *testing.T) {
	s := openTestStore(t)
	run := createRun(t, s)
	ctx, cancel := context.WithTimeout(t.Context(), time.Millisecond)
	defer cancel()
	// Some calls may finish before the deadline; the others return its
	// error, and whether their task was recorded is unknown.
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			task := Task{RunID: run, ID: strconv.Itoa(i), Step: "s", Status: TaskSucceeded, Attempt: 1}
			if err := s.CommitTask(ctx, task, Attempt{}); err != nil && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("CommitTask: %v", err)
			}
		})
	}
	wg.Wait()
	// The store still works.
	task := Task{RunID: run, ID: "after", Step: "s", Status: TaskSucceeded, Attempt: 1}
	if err := s.CommitTask(t.Context(), task, Attempt{}); err != nil {
		t.Fatal(err)
	}
}

func TestCommitTaskClose(t *testing.T) {
	s, err := Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	run := createRun(t, s)
	// Close waits for the calls in progress, which succeed.
	var wg sync.WaitGroup
	started := make(chan struct{}, 50)
	for i := range 50 {
		wg.Go(func() {
			task := Task{RunID: run, ID: strconv.Itoa(i), Step: "s", Status: TaskSucceeded, Attempt: 1}
			started <- struct{}{}
			err := s.CommitTask(t.Context(), task, Attempt{})
			if err != nil && !strings.Contains(err.Error(), "store is closed") {
				t.Errorf("CommitTask during Close: %v", err)
			}
		})
	}
	for range 50 {
		<-started
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	err = s.CommitTask(t.Context(), Task{RunID: run, ID: "late", Step: "s", Status: TaskSucceeded}, Attempt{})
	if err == nil || !strings.Contains(err.Error(), "store is closed") {
		t.Errorf("CommitTask after Close: %v; want store is closed", err)
	}
}

func ExampleStore_CommitTask() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "store-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	s, err := Open(ctx, dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	run, err := s.CreateRun(ctx, Run{Flow: "hello", FlowPath: "/src/hello.star"})
	if err != nil {
		fmt.Println(err)
		return
	}
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			id := fmt.Sprintf("greet.%d", i)
			start := Task{RunID: run.ID, ID: id, Step: "greet", Index: []int{i}, Attempt: 1, Started: time.Now()}
			if err := s.StartTask(ctx, start); err != nil {
				fmt.Println(err)
				return
			}
			out, err := s.Blobs().Put(ctx, fmt.Appendf(nil, "hello %d", i))
			if err != nil {
				fmt.Println(err)
				return
			}
			done := start
			done.Status, done.Ended = TaskSucceeded, time.Now()
			done.Artifacts = map[string]Hash{"greeting": out}
			attempt := Attempt{RunID: run.ID, TaskID: id, N: 1, Status: TaskSucceeded, Started: start.Started, Ended: done.Ended}
			if err := s.CommitTask(ctx, done, attempt); err != nil {
				fmt.Println(err)
			}
		})
	}
	wg.Wait()
	if err := s.FinishRun(ctx, run.ID, RunSucceeded, ""); err != nil {
		fmt.Println(err)
		return
	}
	ts, err := s.Tasks(ctx, run.ID)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(ts), "tasks")
	data, err := s.Blobs().Get(ctx, ts[0].Artifacts["greeting"])
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(strings.HasPrefix(string(data), "hello"))
	// Output:
	// 3 tasks
	// true
}

func TestQueueStartTask(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	run, err := s.CreateRun(ctx, Run{Flow: "f", FlowPath: "/f.star"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	task := Task{RunID: run.ID, ID: "start", Step: "start", Attempt: 1, Started: now}
	if err := s.QueueStartTask(ctx, task); err != nil {
		t.Fatal(err)
	}
	task.Status, task.Ended = TaskSucceeded, now
	if err := s.CommitTask(ctx, task, Attempt{RunID: run.ID, TaskID: "start", N: 1, Status: TaskSucceeded, Started: now, Ended: now}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Task(ctx, run.ID, "start")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != TaskSucceeded {
		t.Errorf("after a queued start and a commit, the task is %s", got.Status)
	}

	// A start that cannot be written fails the commit of its task.
	bad := Task{RunID: "nosuchrun000", ID: "x", Step: "x", Attempt: 1, Started: now}
	if err := s.QueueStartTask(ctx, bad); err != nil {
		t.Fatal(err)
	}
	bad.Status, bad.Ended = TaskSucceeded, now
	if err := s.CommitTask(ctx, bad, Attempt{}); err == nil {
		t.Error("the commit of a task of an unknown run succeeded")
	}
}
