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
	"github.com/google/go-cmp/cmp/cmpopts"
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

func TestCoalesce(t *testing.T) {
	start := func(id string, n int) *commitRequest {
		// As StartTask makes them.
		return &commitRequest{rec: &taskRecord{task: Task{RunID: "r", ID: id, Status: TaskRunning, Attempt: n}, attempt: Attempt{N: n, Status: TaskRunning}, first: n == 1}}
	}
	end := func(id string, n int) *commitRequest {
		return &commitRequest{durable: true, rec: &taskRecord{task: Task{RunID: "r", ID: id, Status: TaskFailed, Attempt: n}, attempt: Attempt{N: n, Status: TaskFailed}}}
	}
	reused := &commitRequest{durable: true, rec: &taskRecord{task: Task{RunID: "r", ID: "a", Status: TaskReused, Attempt: 1}}}
	flush := &commitRequest{durable: true}
	tests := []struct {
		name  string
		batch []*commitRequest
		want  []int  // indices in batch of the records written, in order
		first []bool // whether each is the first record of its task
	}{
		{"an end takes the place of its start", []*commitRequest{start("a", 1), start("b", 1), end("b", 1), end("a", 1)}, []int{3, 2}, []bool{true, true}},
		{"an end without its start", []*commitRequest{end("a", 1), start("b", 1)}, []int{0, 1}, []bool{false, true}},
		{"a start without its end", []*commitRequest{start("a", 1), flush}, []int{0}, []bool{true}},
		{"the end of another attempt", []*commitRequest{start("a", 2), end("a", 1)}, []int{0, 1}, []bool{false, false}},
		{"a record of no attempt", []*commitRequest{start("a", 1), reused}, []int{0, 1}, []bool{true, false}},
		{"a retry in the same batch", []*commitRequest{start("a", 1), end("a", 1), start("a", 2), end("a", 2)}, []int{1, 3}, []bool{true, false}},
		{"an end after the start of the next attempt", []*commitRequest{start("a", 1), start("a", 2), end("a", 1)}, []int{0, 1, 2}, []bool{true, false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want []taskRecord
			for j, i := range tt.want {
				rec := *tt.batch[i].rec
				rec.first = tt.first[j]
				want = append(want, rec)
			}
			var got []taskRecord
			for _, rec := range coalesce(tt.batch) {
				got = append(got, *rec)
			}
			if diff := cmp.Diff(want, got, cmp.AllowUnexported(taskRecord{})); diff != "" {
				t.Errorf("coalesce (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCommitCoalesced checks that the starts and ends of tasks written in
// one batch leave the records that writing them one by one does, tasks in
// the order they started.
func TestCommitCoalesced(t *testing.T) {
	s := openTestStore(t)
	ctx := t.Context()
	run := createRun(t, s)
	// Hold the writer back, so that every record below is in one batch.
	c := &s.commits
	c.mu.Lock()
	c.writing = true
	c.mu.Unlock()
	var reqs []*commitRequest
	queue := func(rec *taskRecord, durable bool) {
		req, err := s.queue(ctx, commitRequest{rec: rec, durable: durable})
		if err != nil {
			t.Fatal(err)
		}
		reqs = append(reqs, req)
	}
	starts := make(map[string]Task)
	for i, id := range []string{"a", "b", "c"} {
		task := Task{RunID: run, ID: id, Step: "s", Status: TaskRunning, Attempt: 1, Started: at(i)}
		starts[id] = task
		queue(&taskRecord{task: task, attempt: Attempt{RunID: run, TaskID: id, N: 1, Status: TaskRunning, Started: at(i)}}, false)
	}
	h, err := s.Blobs().Put(ctx, []byte("b's output"))
	if err != nil {
		t.Fatal(err)
	}
	var want []Task
	wantAttempts := make(map[string][]Attempt)
	for i, id := range []string{"b", "a"} {
		task := starts[id]
		task.Status, task.Ended, task.Artifacts = TaskSucceeded, at(10+i), map[string]Hash{"out": h}
		a := Attempt{RunID: run, TaskID: id, N: 1, Status: TaskSucceeded, Started: task.Started, Ended: task.Ended}
		queue(&taskRecord{task: task, attempt: a}, true)
		want = append(want, task)
		wantAttempts[id] = []Attempt{a}
	}
	c.writers.Go(s.writeBatches)
	for _, req := range reqs {
		if err := <-req.done; err != nil {
			t.Fatal(err)
		}
	}
	want = []Task{want[1], want[0], starts["c"]} // in start order
	wantAttempts["c"] = []Attempt{{RunID: run, TaskID: "c", N: 1, Status: TaskRunning, Started: at(2)}}
	got, err := s.Tasks(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tasks (-want +got):\n%s", diff)
	}
	for id, want := range wantAttempts {
		got, err := s.Attempts(ctx, run, id)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("attempts of %s (-want +got):\n%s", id, diff)
		}
	}
}

// TestArtifactsReplaced checks that a task's artifacts are those of its
// latest attempt, whether its start and end were written in one batch or
// apart, and whatever the attempt.
func TestArtifactsReplaced(t *testing.T) {
	s := openTestStore(t)
	ctx := t.Context()
	run := createRun(t, s)
	h := func(name string) Hash {
		h, err := s.Blobs().Put(ctx, []byte(name))
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	steps := []struct {
		what      string
		do        func(id string) error
		artifacts map[string]Hash
	}{
		{"start 1, queued", func(id string) error {
			return s.QueueStartTask(ctx, Task{RunID: run, ID: id, Step: "s", Attempt: 1, Started: at(1)})
		}, nil},
		{"end 1, likely in the batch of its start", func(id string) error {
			t := Task{RunID: run, ID: id, Step: "s", Status: TaskFailed, Attempt: 1, Started: at(1), Ended: at(2), Artifacts: map[string]Hash{"x": h("x"), "y": h("y")}}
			return s.CommitTask(ctx, t, Attempt{RunID: run, TaskID: id, N: 1, Status: TaskFailed, Started: at(1), Ended: at(2)})
		}, map[string]Hash{"x": h("x"), "y": h("y")}},
		{"start 2", func(id string) error {
			return s.StartTask(ctx, Task{RunID: run, ID: id, Step: "s", Attempt: 2, Started: at(3)})
		}, nil},
		{"end 2", func(id string) error {
			t := Task{RunID: run, ID: id, Step: "s", Status: TaskSucceeded, Attempt: 2, Started: at(3), Ended: at(4), Artifacts: map[string]Hash{"y": h("y2")}}
			return s.CommitTask(ctx, t, Attempt{RunID: run, TaskID: id, N: 2, Status: TaskSucceeded, Started: at(3), Ended: at(4)})
		}, map[string]Hash{"y": h("y2")}},
		{"end 2 again, without a start", func(id string) error {
			t := Task{RunID: run, ID: id, Step: "s", Status: TaskSucceeded, Attempt: 2, Started: at(3), Ended: at(5), Artifacts: map[string]Hash{"z": h("z")}}
			return s.CommitTask(ctx, t, Attempt{RunID: run, TaskID: id, N: 2, Status: TaskSucceeded, Started: at(3), Ended: at(5)})
		}, map[string]Hash{"z": h("z")}},
	}
	for _, st := range steps {
		if err := st.do("t"); err != nil {
			t.Fatalf("%s: %v", st.what, err)
		}
		if strings.HasSuffix(st.what, "queued") {
			continue // not written yet
		}
		got, err := s.Task(ctx, run, "t")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(st.artifacts, got.Artifacts, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("after %s, artifacts (-want +got):\n%s", st.what, diff)
		}
	}
}
