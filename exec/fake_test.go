package exec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	sl "go.starlark.net/starlark"

	"github.com/daggerflow/dagger/builtins"
	"github.com/daggerflow/dagger/dag"
	"github.com/daggerflow/dagger/starlark"
	"github.com/daggerflow/dagger/store"
)

// Tests of how the scheduler copes with executors, stores and consumers
// of events that fail, panic, stall or ignore cancellation: whatever
// happens, every task that started is recorded finished, and the run ends.

var errInjected = errors.New("injected")

// fakeExecutor runs a task with the function of its step, if it has one;
// other tasks succeed, going where their step goes.
type fakeExecutor struct {
	g     *dag.Graph
	steps map[string]func(ctx context.Context, spec *TaskSpec, print func(string)) (*TaskResult, error)
}

func (f *fakeExecutor) Execute(ctx context.Context, spec *TaskSpec, print func(string)) (*TaskResult, error) {
	if fn := f.steps[spec.Step]; fn != nil {
		return fn(ctx, spec, print)
	}
	res := &TaskResult{OK: true, Artifacts: spec.Artifacts}
	if next := f.g.Step(spec.Step).Next; next != nil {
		res.Next = next.Names()
		if next.Kind == dag.Foreach {
			res.Foreach = []string{spec.Code, spec.Code} // any blobs will do
		}
	}
	return res, nil
}

// faultyBlobs are blobs whose Put and PutReader fail, or panic, as fault
// says, given the content.
type faultyBlobs struct {
	store.Blobs
	fault func(data []byte) error
}

func (b faultyBlobs) Put(ctx context.Context, parts ...[]byte) (store.Hash, error) {
	if err := b.fault(bytes.Join(parts, nil)); err != nil {
		return "", err
	}
	return b.Blobs.Put(ctx, parts...)
}

func (b faultyBlobs) PutReader(ctx context.Context, r io.Reader) (store.Hash, int64, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return "", 0, err
	}
	if err := b.fault(data); err != nil {
		return "", 0, err
	}
	return b.Blobs.PutReader(ctx, bytes.NewReader(data))
}

// faultyRecorder is a Recorder whose records of starting and of ending a
// task fail, or panic, as start and commit say.
type faultyRecorder struct {
	Recorder
	start, commit func(store.Task) error
}

func (r faultyRecorder) QueueStartTask(ctx context.Context, t store.Task) error {
	if r.start != nil {
		if err := r.start(t); err != nil {
			return err
		}
	}
	return r.Recorder.QueueStartTask(ctx, t)
}

func (r faultyRecorder) CommitTask(ctx context.Context, t store.Task, a store.Attempt) error {
	if r.commit != nil {
		if err := r.commit(t); err != nil {
			return err
		}
	}
	return r.Recorder.CommitTask(ctx, t, a)
}

// of returns a fault of the task or blob that match says, for faultyBlobs
// and faultyRecorder: an error, or a panic if panics.
func of[T any](match func(T) bool, panics bool) func(T) error {
	return func(x T) error {
		switch {
		case !match(x):
			return nil
		case panics:
			panic(errInjected)
		}
		return errInjected
	}
}

func task(id string) func(store.Task) bool { return func(t store.Task) bool { return t.ID == id } }

const (
	linearFlow = "def start(ctx):\n    next_step(finish)\n\ndef finish(ctx):\n    pass\n"
	catchFlow  = `
def start(ctx):
    next_step(risky)

def risky(ctx):
    fail("boom")
    next_step(finish)

step(risky, catch = "error")

def finish(ctx):
    pass
`
	foreachFlow = `
def start(ctx):
    next_step(body, foreach = [1, 2])

def body(ctx):
    next_step(join)

def join(ctx, inputs):
    next_step(finish)

def finish(ctx):
    pass
`
	printingFlow = "def start(ctx):\n    print(\"hello\")\n    fail(\"boom\")\n    next_step(finish)\n\ndef finish(ctx):\n    pass\n"
)

// TestFaultsAreRecorded makes the executor, the store, the blobs or the
// consumer of events fail or panic at each point of a task's life: the
// task is recorded failed with the fault, and reported so, the run fails
// with it, and no task stays running.
func TestFaultsAreRecorded(t *testing.T) {
	tests := []struct {
		name     string
		flow     string
		executor func(e *fakeExecutor) // makes the run use e, changed
		blobs    func(data []byte) error
		start    func(store.Task) error
		commit   func(store.Task) error
		onEvent  func(Event)
		want     map[string]store.TaskStatus
		wantErr  []string // in the run's error, and in the task's that failed
	}{{
		name: "the executor panics",
		flow: linearFlow,
		executor: func(e *fakeExecutor) {
			e.steps["start"] = func(context.Context, *TaskSpec, func(string)) (*TaskResult, error) { panic(errInjected) }
		},
		want:    map[string]store.TaskStatus{"start": store.TaskFailed},
		wantErr: []string{"the executor panicked: injected", "exec.(*scheduler).call"},
	}, {
		name: "the executor returns no result",
		flow: linearFlow,
		executor: func(e *fakeExecutor) {
			e.steps["start"] = func(context.Context, *TaskSpec, func(string)) (*TaskResult, error) { return nil, nil }
		},
		want:    map[string]store.TaskStatus{"start": store.TaskFailed},
		wantErr: []string{"the executor returned no result"},
	}, {
		name:    "recording the start fails",
		flow:    linearFlow,
		start:   of(task("finish"), false),
		want:    map[string]store.TaskStatus{"start": store.TaskSucceeded, "finish": store.TaskFailed},
		wantErr: []string{"recording its start: injected"},
	}, {
		name:    "recording the start panics",
		flow:    linearFlow,
		start:   of(task("finish"), true),
		want:    map[string]store.TaskStatus{"start": store.TaskSucceeded, "finish": store.TaskFailed},
		wantErr: []string{"panic: injected", "exec.faultyRecorder.QueueStartTask"},
	}, {
		name:    "recording the end fails",
		flow:    linearFlow,
		commit:  of(task("start"), false),
		want:    map[string]store.TaskStatus{"start": store.TaskFailed},
		wantErr: []string{"recording its end: injected"},
	}, {
		name:    "keeping a caught error fails",
		flow:    catchFlow,
		blobs:   of(func(data []byte) bool { return bytes.Contains(data, []byte("fail: boom")) }, false),
		want:    map[string]store.TaskStatus{"start": store.TaskSucceeded, "risky": store.TaskFailed},
		wantErr: []string{"fail: boom", "fail: boom; and saving the caught error of risky: injected"},
	}, {
		name:    "keeping a caught error panics",
		flow:    catchFlow,
		blobs:   of(func(data []byte) bool { return bytes.Contains(data, []byte("fail: boom")) }, true),
		want:    map[string]store.TaskStatus{"start": store.TaskSucceeded, "risky": store.TaskFailed},
		wantErr: []string{"panic: injected", "exec.(*scheduler).catch"},
	}, {
		name:    "saving the foreach elements fails",
		flow:    foreachFlow,
		blobs:   of(func(data []byte) bool { return bytes.HasPrefix(data, []byte("sha256:")) }, false),
		want:    map[string]store.TaskStatus{"start": store.TaskFailed},
		wantErr: []string{"saving its foreach elements: injected"},
	}, {
		name:    "saving the output of a failed task fails",
		flow:    printingFlow,
		blobs:   of(func(data []byte) bool { return string(data) == "hello\n" }, false),
		want:    map[string]store.TaskStatus{"start": store.TaskFailed},
		wantErr: []string{"task start: ", "fail: boom; and saving its output: injected"},
	}, {
		name: "the consumer of events panics",
		flow: linearFlow,
		onEvent: func(e Event) {
			if e.Kind == TaskStarted && e.TaskID == "finish" {
				panic(errInjected)
			}
		},
		want:    map[string]store.TaskStatus{"start": store.TaskSucceeded, "finish": store.TaskSucceeded},
		wantErr: []string{"OnEvent panicked on a task_started event: injected"},
	}}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			flow := loadFlow(t, writeFlow(t, map[string]string{"flow.star": test.flow}))
			st, err := store.Open(t.Context(), t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			var (
				mu      sync.Mutex
				reports = make(map[string]Event)
			)
			opts := Options{OnEvent: func(e Event) {
				mu.Lock()
				if e.Kind == TaskFinished {
					reports[e.TaskID] = e
				}
				mu.Unlock()
				if test.onEvent != nil {
					test.onEvent(e)
				}
			}}
			if test.executor != nil {
				e := &fakeExecutor{g: flow.Graph, steps: make(map[string]func(context.Context, *TaskSpec, func(string)) (*TaskResult, error))}
				test.executor(e)
				opts.Executor = e
			}
			if test.blobs != nil {
				opts.Blobs = faultyBlobs{st.Blobs(), test.blobs}
			}
			run, err := Run(t.Context(), faultyRecorder{st, test.start, test.commit}, flow, opts)
			var re *RunError
			if !errors.As(err, &re) || run.Status != store.RunFailed {
				t.Fatalf("run %s, error %v; want it failed with a *RunError", run.Status, err)
			}
			for _, want := range test.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("run error:\n%v\nwant it to contain %q", err, want)
				}
			}
			tasks, err := st.Tasks(t.Context(), run.ID)
			if err != nil {
				t.Fatal(err)
			}
			got := make(map[string]store.TaskStatus)
			for _, tk := range tasks {
				got[tk.ID] = tk.Status
				if tk.Status != store.TaskFailed {
					continue
				}
				if tk.ID == re.TaskID && test.commit == nil {
					// The record has the fault, unless it is that the
					// record could not be written.
					for _, want := range test.wantErr {
						if !strings.Contains(tk.Error, want) {
							t.Errorf("task %s recorded with error:\n%s\nwant it to contain %q", tk.ID, tk.Error, want)
						}
					}
				}
				if e, ok := reports[tk.ID]; ok && (e.Status != "failed" || !strings.Contains(re.Error(), e.Error)) {
					t.Errorf("task %s reported %s: %s; want it failed with the run's error", tk.ID, e.Status, e.Error)
				}
			}
			if diff := cmp.Diff(test.want, got); diff != "" {
				t.Errorf("tasks (-want +got):\n%s", diff)
			}
		})
	}
}

// stuck is what an executor that ignores cancellation does: it returns
// only once release is closed, at the end of the test.
type stuck struct{ release chan struct{} }

func newStuck(t *testing.T) *stuck {
	s := &stuck{release: make(chan struct{})}
	t.Cleanup(func() {
		select {
		case <-s.release:
		default:
			close(s.release)
		}
	})
	return s
}

func (s *stuck) run(context.Context, *TaskSpec, func(string)) (*TaskResult, error) {
	<-s.release
	return nil, errors.New("too late")
}

// TestExecutorTimeouts checks how the scheduler stops an executor that
// keeps no timeout: it cancels its context timeoutGrace after the step's
// timeout, and gives up on one that ignores its context too, as on one
// that ignores the run's cancellation, timeoutGrace later again. Either
// way the task is recorded ended, and the run ends.
func TestExecutorTimeouts(t *testing.T) {
	defer func(d time.Duration) { timeoutGrace = d }(timeoutGrace)
	timeoutGrace = 20 * time.Millisecond
	const flow = "def start(ctx):\n    next_step(finish)\n\nstep(start, timeout = \"10ms\")\n\ndef finish(ctx):\n    pass\n"
	tests := []struct {
		name    string
		flow    string // the flow, if not flow
		execute func(s *stuck) func(context.Context, *TaskSpec, func(string)) (*TaskResult, error)
		cancel  bool // cancel the run once start starts
		want    store.TaskStatus
		wantRun store.RunStatus
		wantErr string
	}{{
		name: "an executor that keeps no timeout is cancelled",
		execute: func(*stuck) func(context.Context, *TaskSpec, func(string)) (*TaskResult, error) {
			return func(ctx context.Context, _ *TaskSpec, _ func(string)) (*TaskResult, error) {
				<-ctx.Done()
				return nil, context.Cause(ctx)
			}
		},
		want: store.TaskFailed, wantRun: store.RunFailed,
		wantErr: "task start: step start did not stop within 20ms of its timeout, 10ms",
	}, {
		name:    "an executor that ignores its timeout and cancellation is abandoned",
		execute: func(s *stuck) func(context.Context, *TaskSpec, func(string)) (*TaskResult, error) { return s.run },
		want:    store.TaskFailed, wantRun: store.RunFailed,
		wantErr: "task start: the executor did not stop the task within 20ms of: step start did not stop within 20ms of its timeout, 10ms",
	}, {
		name:    "an executor that ignores the run's cancellation is abandoned",
		execute: func(s *stuck) func(context.Context, *TaskSpec, func(string)) (*TaskResult, error) { return s.run },
		cancel:  true,
		want:    store.TaskCancelled, wantRun: store.RunCancelled,
		wantErr: "context canceled",
	}, {
		// It may still run: another attempt, or the steps after its
		// catch, would run beside it.
		name:    "an abandoned task is neither retried nor caught",
		flow:    strings.Replace(flow, `timeout = "10ms"`, `timeout = "10ms", retries = 2, catch = "error"`, 1),
		execute: func(s *stuck) func(context.Context, *TaskSpec, func(string)) (*TaskResult, error) { return s.run },
		want:    store.TaskFailed, wantRun: store.RunFailed,
		wantErr: "task start: the executor did not stop the task within 20ms",
	}}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			src := flow
			if test.flow != "" {
				src = test.flow
			}
			f := loadFlow(t, writeFlow(t, map[string]string{"flow.star": src}))
			st, err := store.Open(t.Context(), t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			s := newStuck(t)
			e := &fakeExecutor{g: f.Graph, steps: map[string]func(context.Context, *TaskSpec, func(string)) (*TaskResult, error){"start": test.execute(s)}}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var (
				mu     sync.Mutex
				events []Event
			)
			run, err := Run(ctx, st, f, Options{Executor: e, OnEvent: func(ev Event) {
				mu.Lock()
				events = append(events, ev)
				mu.Unlock()
				if test.cancel && ev.Kind == TaskStarted {
					cancel()
				}
			}})
			if run.Status != test.wantRun || err == nil || !strings.Contains(err.Error(), test.wantErr) {
				t.Fatalf("run %s, error %v; want it %s with %q", run.Status, err, test.wantRun, test.wantErr)
			}
			tasks, err := st.Tasks(t.Context(), run.ID)
			if err != nil || len(tasks) != 1 || tasks[0].Status != test.want || tasks[0].Attempt != 1 {
				t.Fatalf("tasks %+v, %v; want start %s after one attempt", tasks, err, test.want)
			}
			mu.Lock()
			defer mu.Unlock()
			if last := events[len(events)-1]; last.Kind != RunFinished {
				t.Errorf("last event %+v, want run_finished", last)
			}
		})
	}
}

// TestAbandonedTaskReportsNothing checks that a task the scheduler gave
// up on reports nothing more, though its executor prints later.
func TestAbandonedTaskReportsNothing(t *testing.T) {
	defer func(d time.Duration) { timeoutGrace = d }(timeoutGrace)
	timeoutGrace = 10 * time.Millisecond
	f := loadFlow(t, writeFlow(t, map[string]string{"flow.star": linearFlow}))
	st, err := store.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	release, printed := make(chan struct{}), make(chan struct{})
	e := &fakeExecutor{g: f.Graph, steps: map[string]func(context.Context, *TaskSpec, func(string)) (*TaskResult, error){
		"start": func(_ context.Context, _ *TaskSpec, print func(string)) (*TaskResult, error) {
			<-release
			print("late")
			close(printed)
			return nil, errors.New("too late")
		},
	}}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var (
		mu    sync.Mutex
		kinds []EventKind
	)
	run, err := Run(ctx, st, f, Options{Executor: e, OnEvent: func(ev Event) {
		mu.Lock()
		kinds = append(kinds, ev.Kind)
		mu.Unlock()
		if ev.Kind == TaskStarted {
			cancel()
		}
	}})
	if run.Status != store.RunCancelled {
		t.Fatalf("run %s, %v; want it cancelled", run.Status, err)
	}
	close(release)
	<-printed
	mu.Lock()
	defer mu.Unlock()
	want := []EventKind{RunStarted, TaskStarted, TaskFinished, RunFinished}
	if diff := cmp.Diff(want, kinds); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

// slowRecorder is a Recorder whose records of the ends of body tasks wait
// until gate is closed. It closes full once maxCommitting of them wait.
type slowRecorder struct {
	Recorder
	waiting    atomic.Int64
	gate, full chan struct{}
}

func (r *slowRecorder) CommitTask(ctx context.Context, t store.Task, a store.Attempt) error {
	if t.Step == "body" {
		if r.waiting.Add(1) == maxCommitting {
			close(r.full)
		}
		<-r.gate
	}
	return r.Recorder.CommitTask(ctx, t, a)
}

// TestBackPressure runs a foreach wider than maxCommitting against a store
// whose records stall: once maxCommitting tasks wait for theirs, no other
// task starts; once the store catches up, every task ends, recorded and
// reported in causal order, and the join has its inputs in order.
func TestBackPressure(t *testing.T) {
	if testing.Short() {
		t.Skip("runs thousands of tasks")
	}
	const n = maxCommitting + 10
	f := loadFlow(t, writeFlow(t, map[string]string{"flow.star": foreachFlow}))
	st, err := store.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var executed atomic.Int64
	e := &fakeExecutor{g: f.Graph, steps: map[string]func(context.Context, *TaskSpec, func(string)) (*TaskResult, error){
		"start": func(_ context.Context, spec *TaskSpec, _ func(string)) (*TaskResult, error) {
			return &TaskResult{OK: true, Next: []string{"body"}, Foreach: slices.Repeat([]string{spec.Code}, n)}, nil
		},
		"body": func(context.Context, *TaskSpec, func(string)) (*TaskResult, error) {
			executed.Add(1)
			return &TaskResult{OK: true, Next: []string{"join"}}, nil
		},
	}}
	rec := &slowRecorder{Recorder: st, gate: make(chan struct{}), full: make(chan struct{})}
	type result struct {
		run store.Run
		err error
	}
	done := make(chan result, 1)
	var events []Event // the run's events, in order: OnEvent is called one at a time
	go func() {
		run, err := Run(t.Context(), rec, f, Options{Executor: e, MaxWorkers: 1, OnEvent: func(ev Event) { events = append(events, ev) }})
		done <- result{run, err}
	}()
	<-rec.full
	// With one worker, the last task to start ran before its record
	// stalled; one more would show that records do not hold tasks back.
	time.Sleep(50 * time.Millisecond)
	if got := executed.Load(); got != maxCommitting {
		t.Errorf("%d body tasks ran while %d records waited, want %d", got, maxCommitting, maxCommitting)
	}
	close(rec.gate)
	r := <-done
	if r.err != nil || r.run.Status != store.RunSucceeded {
		t.Fatalf("run %s, %v; want it succeeded", r.run.Status, r.err)
	}
	tasks, err := st.Tasks(t.Context(), r.run.ID)
	if err != nil {
		t.Fatal(err)
	}
	var parents []string
	for i := range n {
		parents = append(parents, fmt.Sprintf("body.%d", i))
	}
	for _, tk := range tasks {
		if tk.Status != store.TaskSucceeded {
			t.Errorf("task %s %s", tk.ID, tk.Status)
		}
		if tk.ID == "join" && !slices.Equal(tk.Parents, parents) {
			t.Errorf("join's parents are not body.0 to body.%d in order: %v", n-1, tk.Parents)
		}
	}
	if len(tasks) != n+3 {
		t.Errorf("%d tasks recorded, want %d", len(tasks), n+3)
	}
	// Each task is reported finished after it started, and a task starts
	// only after every task it follows is reported finished.
	finished := make(map[string]bool)
	bodies := 0
	for _, ev := range events {
		switch ev.Kind {
		case TaskStarted:
			switch {
			case ev.Step == "body" && !finished["start"],
				ev.Step == "join" && bodies != n,
				ev.Step == "finish" && !finished["join"]:
				t.Fatalf("%s started before what it follows finished", ev.TaskID)
			}
		case TaskFinished:
			if finished[ev.TaskID] {
				t.Fatalf("%s reported finished twice", ev.TaskID)
			}
			finished[ev.TaskID] = true
			if ev.Step == "body" {
				bodies++
			}
		}
	}
	if len(finished) != n+3 {
		t.Errorf("%d tasks reported finished, want %d", len(finished), n+3)
	}
}

// TestCancelDuringSetup cancels a run while the flow's top-level code
// runs: the run is recorded cancelled, not failed.
func TestCancelDuringSetup(t *testing.T) {
	path := writeFlow(t, map[string]string{"flow.star": `
def _spin():
    n = 0
    for i in range(1000000000):
        n += i
    return n

print("setting up")
total = _spin()

def start(ctx):
    next_step(finish)

def finish(ctx):
    pass
`})
	st, err := store.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	run, err := Run(ctx, st, loadFlow(t, path), Options{OnEvent: func(e Event) {
		if e.Kind == SetupOutput {
			cancel()
		}
	}})
	var re *RunError
	if !errors.As(err, &re) || run.Status != store.RunCancelled || re.Status != store.RunCancelled {
		t.Fatalf("run %s, error %v; want it cancelled", run.Status, err)
	}
	if !strings.Contains(err.Error(), "running the flow's top-level code") {
		t.Errorf("error %v, want it to say where it stopped", err)
	}
}

// TestBuiltinPanicsInSetup checks that a builtin that panics in the
// flow's top-level code fails the run with the panic and its stack, rather
// than kill the process with the run recorded running.
func TestBuiltinPanicsInSetup(t *testing.T) {
	set := builtins.Standard()
	boom := sl.NewBuiltin("boom", func(*sl.Thread, *sl.Builtin, sl.Tuple, []sl.Tuple) (sl.Value, error) {
		panic("a bug of the builtin's")
	})
	if err := set.Add("boom", boom); err != nil {
		t.Fatal(err)
	}
	path := writeFlow(t, map[string]string{"flow.star": "x = boom()\n\n" + linearFlow})
	flow, err := starlark.Load(path, set)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	run, err := Run(t.Context(), st, flow, Options{})
	if run.Status != store.RunFailed || err == nil || !strings.Contains(err.Error(), "running the flow's top-level code: panic in a builtin: a bug of the builtin's") || !strings.Contains(err.Error(), "exec.initFlow") {
		t.Errorf("run %s, error %v; want it failed with the panic and its stack", run.Status, err)
	}
}
