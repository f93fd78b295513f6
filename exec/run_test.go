package exec

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/daggerflow/dagger/builtins"
	"github.com/daggerflow/dagger/starlark"
	"github.com/daggerflow/dagger/store"
)

// outcome is what a test run gave.
type outcome struct {
	run    store.Run
	err    error
	tasks  map[string]store.Task
	output map[string][]string // task -> printed lines; "" for top-level code
	st     *store.Store
}

// value returns the repr of an artifact of a task.
func (o *outcome) value(t *testing.T, task, name string) string {
	t.Helper()
	tk, ok := o.tasks[task]
	if !ok {
		t.Fatalf("no task %s; tasks: %v", task, slices.Sorted(func(yield func(string) bool) {
			for k := range o.tasks {
				if !yield(k) {
					return
				}
			}
		}))
	}
	h, ok := tk.Artifacts[name]
	if !ok {
		t.Fatalf("task %s has no artifact %s (has %v)", task, name, tk.Artifacts)
	}
	data, err := o.st.Blobs().Get(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	v, err := starlark.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	return v.String()
}

// writeFlow writes files (path -> source) into a fresh folder and returns
// the path of the first, the flow.
func writeFlow(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	flowPath := ""
	for name, src := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(name, "flow") {
			flowPath = p
		}
	}
	return flowPath
}

// loadFlow loads and checks the flow at path with the standard builtins.
func loadFlow(t *testing.T, path string) *starlark.Flow {
	t.Helper()
	flow, err := starlark.Load(path, builtins.Standard())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return flow
}

func runFlow(t *testing.T, ctx context.Context, path string, opts Options) *outcome {
	t.Helper()
	flow := loadFlow(t, path)
	st, err := store.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	o := &outcome{output: make(map[string][]string), tasks: make(map[string]store.Task), st: st}
	var mu sync.Mutex
	opts.OnEvent = func(e Event) {
		mu.Lock()
		defer mu.Unlock()
		switch e.Kind {
		case TaskOutput:
			o.output[e.TaskID] = append(o.output[e.TaskID], e.Line)
		case SetupOutput:
			o.output[""] = append(o.output[""], e.Line)
		}
	}
	o.run, o.err = Run(ctx, st, flow, opts)
	tasks, err := st.Tasks(context.Background(), o.run.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range tasks {
		o.tasks[tk.ID] = tk
	}
	return o
}

func TestRun(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		params  map[string]string
		check   func(t *testing.T, o *outcome)
		wantErr string // substring of the run's error; "" for success
	}{{
		name: "linear with params and setup output",
		files: map[string]string{"flow.star": `
print("setting up")
who = param("who", default = "world")
n = param("n", default = 1)

def start(ctx):
    ctx.who = who
    ctx.n = n * 2
    next_step(hello)

def hello(ctx):
    print("hello, %s" % ctx.who)
    next_step(finish)

def finish(ctx):
    pass
`},
		params: map[string]string{"n": "21"},
		check: func(t *testing.T, o *outcome) {
			if diff := cmp.Diff(map[string][]string{"": {"setting up"}, "hello": {"hello, world"}}, o.output); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
			if got := o.value(t, "finish", "n"); got != "42" {
				t.Errorf("n = %s, want 42", got)
			}
			if diff := cmp.Diff(map[string]string{"who": `"world"`, "n": "21"}, o.run.Params); diff != "" {
				t.Errorf("recorded params (-want +got):\n%s", diff)
			}
		},
	}, {
		name: "split merges identical artifacts and names the branches",
		files: map[string]string{"flow.star": `
def start(ctx):
    ctx.data = [1, 2, 3]
    ctx.score = 0
    next_step(a, b)

def a(ctx):
    ctx.score = 1
    ctx.only_a = "x"
    next_step(join)

def b(ctx):
    ctx.score = 2
    next_step(join)

def join(ctx, inputs):
    ctx.scores = [inputs.a.score, inputs.b.score, inputs[0].score]
    ctx.seen = (ctx.data, inputs.a.only_a)
    next_step(finish)

def finish(ctx):
    pass
`},
		check: func(t *testing.T, o *outcome) {
			if got := o.value(t, "finish", "scores"); got != "[1, 2, 1]" {
				t.Errorf("scores = %s", got)
			}
			if got := o.value(t, "finish", "seen"); got != `([1, 2, 3], "x")` {
				t.Errorf("seen = %s", got)
			}
			if diff := cmp.Diff([]string{"a", "b"}, o.tasks["join"].Parents); diff != "" {
				t.Errorf("join parents (-want +got):\n%s", diff)
			}
		},
	}, {
		name: "a foreach join reads every input, whatever artifacts each set",
		files: map[string]string{"flow.star": `
def start(ctx):
    ctx.common = "same"
    next_step(work, foreach = ["a", "b", "c", "d", "e"])

def work(ctx):
    ctx.v = ctx.input + "!"
    if ctx.index == 2:
        ctx.extra = 1
    if ctx.index == 3:
        ctx.common = "changed"
    next_step(join)

def join(ctx, inputs):
    ctx.got = [(i.task_id, i.step, i.index, i.input, i.v, i.common, getattr(i, "extra", None)) for i in inputs]
    ctx.second = (inputs[1].v, len(inputs))
    next_step(finish)

def finish(ctx):
    pass
`},
		check: func(t *testing.T, o *outcome) {
			want := `[("work.0", "work", 0, "a", "a!", "same", None), ("work.1", "work", 1, "b", "b!", "same", None), ` +
				`("work.2", "work", 2, "c", "c!", "same", 1), ("work.3", "work", 3, "d", "d!", "changed", None), ("work.4", "work", 4, "e", "e!", "same", None)]`
			if got := o.value(t, "join", "got"); got != want {
				t.Errorf("got = %s\nwant %s", got, want)
			}
			if got := o.value(t, "join", "second"); got != `("b!", 5)` {
				t.Errorf("second = %s", got)
			}
			want2 := []string{"work.0", "work.1", "work.2", "work.3", "work.4"}
			if diff := cmp.Diff(want2, o.tasks["join"].Parents); diff != "" {
				t.Errorf("join parents (-want +got):\n%s", diff)
			}
		},
	}, {
		name: "an artifact only some inputs of a foreach have is a conflict",
		files: map[string]string{"flow.star": `
def start(ctx):
    next_step(work, foreach = [1, 2, 3])

def work(ctx):
    if ctx.input == 3:
        ctx.extra = 1
    next_step(join)

def join(ctx, inputs):
    print(ctx.extra)
    next_step(finish)

def finish(ctx):
    pass
`},
		wantErr: "artifact extra differs between the inputs of this join: element 2 (task work.2) has 1, element 0 (task work.0) does not have it; set ctx.extra before reading it",
	}, {
		name: "an artifact only some inputs have is a conflict",
		files: map[string]string{"flow.star": `
def start(ctx):
    next_step(a, b)

def a(ctx):
    ctx.only_a = 1
    next_step(join)

def b(ctx):
    next_step(join)

def join(ctx, inputs):
    print(ctx.only_a)
    next_step(finish)

def finish(ctx):
    pass
`},
		wantErr: "artifact only_a differs between the inputs of this join: branch a (task a) has 1, branch b (task b) does not have it; set ctx.only_a before reading it",
	}, {
		name: "reading a conflicting artifact at a join fails with the branches",
		files: map[string]string{"flow.star": `
def start(ctx):
    next_step(a, b)

def a(ctx):
    ctx.score = 1
    next_step(join)

def b(ctx):
    ctx.score = 2
    next_step(join)

def join(ctx, inputs):
    print(ctx.score)
    next_step(finish)

def finish(ctx):
    pass
`},
		wantErr: "artifact score differs between the inputs of this join: branch a (task a) has 1, branch b (task b) has 2; set ctx.score before reading it",
	}, {
		name: "a conflict the join does not set is passed on, and reading it names it",
		files: map[string]string{"flow.star": `
def start(ctx):
    next_step(a, b)

def a(ctx):
    ctx.score = {"x": 1, "y": 2}
    next_step(join)

def b(ctx):
    ctx.score = {"y": 2, "x": 1}
    next_step(join)

def join(ctx, inputs):
    next_step(finish)

def finish(ctx):
    if not hasattr(ctx, "score"):
        fail("the conflict was dropped")
    print(getattr(ctx, "score", "a default that hides the conflict"))
`},
		wantErr: "artifact score has no value: the inputs of join join differ on it (" +
			`branch a (task a) has {"x": 1, "y": 2}, branch b (task b) has {"y": 2, "x": 1}; ` +
			"they are equal with ==, but a join compares artifacts as saved, where an int differs from a float and a dict's or set's order counts), " +
			"and join did not set it; set ctx.score in join, or here before reading it",
	}, {
		name: "a value that cannot be saved fails where it is set",
		files: map[string]string{"flow.star": `
def start(ctx):
    ctx.fn = len
    next_step(finish)

def finish(ctx):
    pass
`},
		wantErr: "flow.star:3:8: in start\nError: artifact fn: value: a builtin_function_or_method cannot be saved as an artifact",
	}, {
		name: "a value changed after it is set so that it cannot be saved names where it was set",
		files: map[string]string{"flow.star": `
def start(ctx):
    ctx.fns = []
    ctx.fns.append(len)
    next_step(finish)

def finish(ctx):
    pass
`},
		wantErr: "flow.star:3:8): value[0]: a builtin_function_or_method cannot be saved as an artifact",
	}, {
		name: "a value that holds itself exponentially often fails where it is set",
		files: map[string]string{"flow.star": `
def start(ctx):
    x = []
    for _ in range(25):
        x = [x, x]
    ctx.x = x
    next_step(finish)

def finish(ctx):
    pass
`},
		wantErr: "flow.star:6:8: in start\nError: artifact x: value would take more than 2 GiB of memory once loaded",
	}, {
		name: "foreach, nested, with index, input and an empty fan-out",
		files: map[string]string{"flow.star": `
def start(ctx):
    ctx.base = "b"
    next_step(outer, foreach = [[1, 2], [], [3]])

def outer(ctx):
    ctx.row = ctx.index
    next_step(inner, foreach = ctx.input)

def inner(ctx):
    ctx.cell = (ctx.row, ctx.index, ctx.input)
    next_step(join_inner)

def join_inner(ctx, inputs):
    ctx.cells = [i.cell for i in inputs]
    if [(i.index, i.input, i.attempt) for i in inputs] != [(j, x, 1) for j, x in enumerate(ctx.input)]:
        fail("inputs do not know their elements")
    next_step(join_outer)

def join_outer(ctx, inputs):
    ctx.grid = [i.cells for i in inputs]
    ctx.rows = len(inputs)
    next_step(finish)

def finish(ctx):
    pass
`},
		check: func(t *testing.T, o *outcome) {
			if got := o.value(t, "finish", "grid"); got != "[[(0, 0, 1), (0, 1, 2)], [], [(2, 0, 3)]]" {
				t.Errorf("grid = %s", got)
			}
			if got := o.value(t, "join_inner.1", "base"); got != `"b"` {
				t.Errorf("base at the join of an empty foreach = %s", got)
			}
			if got := o.tasks["outer.1"].ForeachLen; got != 0 {
				t.Errorf("outer.1 fanned out to %d", got)
			}
			if _, ok := o.tasks["inner.1.0"]; ok {
				t.Error("an empty foreach ran a task")
			}
		},
	}, {
		name: "switch inside a split branch",
		files: map[string]string{"flow.star": `
def start(ctx):
    ctx.n = 5
    next_step(a, b)

def a(ctx):
    if ctx.n > 3:
        next_step(big)
    else:
        next_step(small)

def big(ctx):
    ctx.size = "big"
    next_step(join)

def small(ctx):
    ctx.size = "small"
    next_step(join)

def b(ctx):
    ctx.size = "big"
    next_step(join)

def join(ctx, inputs):
    ctx.which = [i.step for i in inputs]
    next_step(finish)

def finish(ctx):
    pass
`},
		check: func(t *testing.T, o *outcome) {
			if got := o.value(t, "finish", "size"); got != `"big"` {
				t.Errorf("merged size = %s", got)
			}
			if _, ran := o.tasks["small"]; ran {
				t.Error("the switch ran both alternatives")
			}
			if diff := cmp.Diff([]string{"big"}, o.tasks["a"].Next); diff != "" {
				t.Errorf("a went to (-want +got):\n%s", diff)
			}
		},
	}, {
		name: "retries until an attempt succeeds",
		files: map[string]string{"flow.star": `
def start(ctx):
    if ctx.attempt < 3:
        fail("attempt %d fails" % ctx.attempt)
    ctx.attempts = ctx.attempt
    next_step(finish)

def finish(ctx):
    pass

step(start, retries = 2, retry_delay = "10ms")
`},
		check: func(t *testing.T, o *outcome) {
			if got := o.value(t, "finish", "attempts"); got != "3" {
				t.Errorf("attempts = %s", got)
			}
			attempts, err := o.st.Attempts(context.Background(), o.run.ID, "start")
			if err != nil {
				t.Fatal(err)
			}
			var statuses []store.TaskStatus
			for _, a := range attempts {
				statuses = append(statuses, a.Status)
			}
			want := []store.TaskStatus{store.TaskFailed, store.TaskFailed, store.TaskSucceeded}
			if diff := cmp.Diff(want, statuses); diff != "" {
				t.Errorf("attempts (-want +got):\n%s", diff)
			}
		},
	}, {
		name: "retries run out",
		files: map[string]string{"flow.star": `
def start(ctx):
    fail("always")
    next_step(finish)

def finish(ctx):
    pass

step(start, retries = 1)
`},
		wantErr: "Error in fail: fail: always",
	}, {
		name: "catch keeps the error as an artifact and goes on",
		files: map[string]string{"flow.star": `
def start(ctx):
    ctx.kept = 1
    next_step(risky)

def risky(ctx):
    ctx.kept = 2
    ctx.x = 1 // 0
    next_step(finish)

def finish(ctx):
    pass

step(risky, catch = "error")
`},
		check: func(t *testing.T, o *outcome) {
			if got := o.value(t, "finish", "error"); !strings.Contains(got, "flow.star:8:15: in risky") || !strings.Contains(got, "floored division by zero") {
				t.Errorf("caught error = %s", got)
			}
			if got := o.value(t, "finish", "kept"); got != "1" {
				t.Errorf("a failed task's artifacts leaked: kept = %s", got)
			}
		},
	}, {
		name: "timeout cancels a step",
		files: map[string]string{"flow.star": `
def start(ctx):
    n = 0
    for i in range(1000000000):
        n += i
    next_step(finish)

def finish(ctx):
    pass

step(start, timeout = "50ms")
`},
		wantErr: "step start timed out after 50ms",
	}, {
		name: "a runtime error has the flow's backtrace",
		files: map[string]string{"flow.star": `
def _divide(a, b):
    return a // b

def start(ctx):
    ctx.x = _divide(1, 0)
    next_step(finish)

def finish(ctx):
    pass
`},
		wantErr: "Traceback (most recent call last):\n  " + "FLOW:6:20: in start\n  FLOW:3:14: in _divide\nError: floored division by zero",
	}, {
		name: "an artifact that cannot be saved is named with its type",
		files: map[string]string{"flow.star": `
def start(ctx):
    ctx.fn = lambda x: x
    next_step(finish)

def finish(ctx):
    pass
`},
		wantErr: "artifact fn: ",
	}, {
		name: "reading a missing artifact lists the others",
		files: map[string]string{"flow.star": `
def start(ctx):
    ctx.alpha = 1
    ctx.beta = 2
    next_step(finish)

def finish(ctx):
    print(ctx.gamma)
`},
		wantErr: "ctx has no artifact gamma; artifacts: alpha, beta",
	}, {
		// check finds ctx.step = ... in a step; the run still refuses it
		// where the syntax does not show the ctx.
		name: "reserved attributes cannot be set",
		files: map[string]string{"flow.star": `
def _mark(c):
    c.step = "mine"

def start(ctx):
    _mark(ctx)
    next_step(finish)

def finish(ctx):
    pass
`},
		wantErr: "ctx.step is reserved",
	}, {
		name: "modules are loaded relative to the loading file",
		files: map[string]string{
			"flow.star": `
load("lib/text.star", "shout")

def start(ctx):
    ctx.msg = shout("hi")
    next_step(finish)

def finish(ctx):
    pass
`,
			"lib/text.star": `
load("util.star", "suffix")

def shout(s):
    return s.upper() + suffix
`,
			"lib/util.star": `suffix = "!"`,
		},
		check: func(t *testing.T, o *outcome) {
			if got := o.value(t, "finish", "msg"); got != `"HI!"` {
				t.Errorf("msg = %s", got)
			}
		},
	}}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			path := writeFlow(t, test.files)
			o := runFlow(t, context.Background(), path, Options{Params: test.params})
			if test.wantErr == "" {
				if o.err != nil {
					t.Fatalf("run failed: %v", o.err)
				}
				if o.run.Status != store.RunSucceeded {
					t.Fatalf("run status %s", o.run.Status)
				}
				test.check(t, o)
				return
			}
			var re *RunError
			if !errors.As(o.err, &re) {
				t.Fatalf("run error = %v, want a *RunError", o.err)
			}
			want := strings.ReplaceAll(test.wantErr, "FLOW", path)
			if !strings.Contains(o.err.Error(), want) {
				t.Errorf("run error:\n%v\nwant it to contain:\n%s", o.err, want)
			}
			if o.run.Status != store.RunFailed {
				t.Errorf("run status %s, want failed", o.run.Status)
			}
		})
	}
}

// contradicting is an executor whose tasks report a transition their
// step does not have, having printed and set something.
type contradicting struct{ logs, artifact string }

func (c contradicting) Execute(context.Context, *TaskSpec, func(string)) (*TaskResult, error) {
	return &TaskResult{OK: true, Next: []string{"nowhere"}, Logs: c.logs, Artifacts: map[string]string{"x": c.artifact}}, nil
}

// TestContradictingResultKeepsRecord checks that a task whose result
// fails the transition check is recorded failed, with the check's error,
// and with what it printed and set.
func TestContradictingResultKeepsRecord(t *testing.T) {
	path := writeFlow(t, map[string]string{"flow.star": "def start(ctx):\n    next_step(finish)\n\ndef finish(ctx):\n    pass\n"})
	st, err := store.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	logs, err := st.Blobs().Put(t.Context(), []byte("printed\n"))
	if err != nil {
		t.Fatal(err)
	}
	x, err := st.Blobs().Put(t.Context(), []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	run, err := Run(t.Context(), st, loadFlow(t, path), Options{Executor: contradicting{string(logs), string(x)}})
	if err == nil {
		t.Fatal("the run succeeded")
	}
	tasks, err := st.Tasks(t.Context(), run.ID)
	if err != nil || len(tasks) != 1 {
		t.Fatalf("tasks: %v, %v", tasks, err)
	}
	got := tasks[0]
	if got.Status != store.TaskFailed || !strings.Contains(got.Error, "nowhere") || got.Logs != logs || got.Artifacts["x"] != x {
		t.Errorf("task = %+v, want it failed, with its logs and artifact", got)
	}
}

// TestCancelDuringRetryDelay cancels a run while a task waits to be
// retried: the task is recorded, and reported, cancelled, not failed.
func TestCancelDuringRetryDelay(t *testing.T) {
	path := writeFlow(t, map[string]string{"flow.star": `
def start(ctx):
    fail("not yet")
    next_step(finish)

step(start, retries = 3, retry_delay = "1m")

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
	var last Event
	run, err := Run(ctx, st, loadFlow(t, path), Options{OnEvent: func(e Event) {
		switch e.Kind {
		case TaskRetrying:
			cancel()
		case TaskFinished:
			last = e
		}
	}})
	if err == nil || run.Status != store.RunCancelled {
		t.Fatalf("run %s, %v; want it cancelled", run.Status, err)
	}
	tasks, err := st.Tasks(t.Context(), run.ID)
	if err != nil || len(tasks) != 1 {
		t.Fatalf("tasks %v, %v", tasks, err)
	}
	if got := tasks[0]; got.Status != store.TaskCancelled || !strings.Contains(got.Error, "while waiting to retry it: ") {
		t.Errorf("task = %+v, want it cancelled while waiting", got)
	}
	if last.TaskID != "start" || last.Status != "cancelled" {
		t.Errorf("last task_finished = %+v, want start cancelled", last)
	}
}

// unfinishable is a Recorder that cannot record the end of a run.
type unfinishable struct{ Recorder }

func (unfinishable) FinishRun(context.Context, string, store.RunStatus, string) error {
	return errors.New("no space left on device")
}

// TestFinishRunFails checks that a run whose end cannot be recorded says
// why it ended as well as why that was not recorded.
func TestFinishRunFails(t *testing.T) {
	path := writeFlow(t, map[string]string{"flow.star": "def start(ctx):\n    fail(\"boom\")\n    next_step(finish)\n\ndef finish(ctx):\n    pass\n"})
	st, err := store.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, err = Run(t.Context(), unfinishable{st}, loadFlow(t, path), Options{})
	if err == nil || !strings.Contains(err.Error(), "boom") || !strings.Contains(err.Error(), "no space left on device") {
		t.Errorf("error = %v, want the task's failure and the recording's", err)
	}
}

// TestNoRetryOfAStoppedRun fails a run while a task with retries fails
// too: that task is reported failed, not retrying, since no retry will
// happen.
func TestNoRetryOfAStoppedRun(t *testing.T) {
	path := writeFlow(t, map[string]string{"flow.star": `
def start(ctx):
    next_step(a, b)

def a(ctx):
    fail("at once")
    next_step(j)

def b(ctx):
    for i in range(2000000):
        pass
    fail("later")
    next_step(j)

step(b, retries = 3)

def j(ctx, inputs):
    next_step(finish)

def finish(ctx):
    pass
`})
	var mu sync.Mutex
	var kinds []string
	flow := loadFlow(t, path)
	st, err := store.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, err = Run(t.Context(), st, flow, Options{MaxWorkers: 2, OnEvent: func(e Event) {
		if e.TaskID == "b" && (e.Kind == TaskRetrying || e.Kind == TaskFinished) {
			mu.Lock()
			kinds = append(kinds, string(e.Kind)+" "+e.Status)
			mu.Unlock()
		}
	}})
	if err == nil {
		t.Fatal("the run succeeded")
	}
	if want := []string{"task_finished failed"}; !slices.Equal(kinds, want) {
		t.Errorf("events of b: %v, want %v", kinds, want)
	}
}

func TestRunCancelled(t *testing.T) {
	path := writeFlow(t, map[string]string{"flow.star": `
def start(ctx):
    ctx.before = 1
    next_step(spin)

def spin(ctx):
    print("spinning")
    n = 0
    for i in range(1000000000):
        n += i
    next_step(finish)

def finish(ctx):
    pass
`})
	ctx, cancel := context.WithCancel(context.Background())
	flow := loadFlow(t, path)
	st, err := store.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	run, err := Run(ctx, st, flow, Options{OnEvent: func(e Event) {
		if e.Kind == TaskOutput && e.Line == "spinning" {
			time.AfterFunc(20*time.Millisecond, cancel)
		}
	}})
	var re *RunError
	if !errors.As(err, &re) || run.Status != store.RunCancelled {
		t.Fatalf("run = %s, %v; want cancelled", run.Status, err)
	}
	tasks, err := st.Tasks(context.Background(), run.ID)
	if err != nil {
		t.Fatal(err)
	}
	got := make(map[string]store.TaskStatus)
	for _, tk := range tasks {
		got[tk.ID] = tk.Status
	}
	want := map[string]store.TaskStatus{"start": store.TaskSucceeded, "spin": store.TaskCancelled}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tasks (-want +got):\n%s", diff)
	}
}

func TestParamValues(t *testing.T) {
	path := writeFlow(t, map[string]string{"flow.star": `
name = param("name")
n = param("n", default = 1)
on = param("on", default = False)
xs = param("xs", default = [1])

def start(ctx):
    next_step(finish)

def finish(ctx):
    pass
`})
	flow := loadFlow(t, path)
	tests := []struct {
		given   map[string]string
		want    map[string]string // repr of each value
		wantErr string
	}{
		{given: map[string]string{"name": "x", "n": "12345678901234567890", "on": "true", "xs": "[1, 2]"},
			want: map[string]string{"name": `"x"`, "n": "12345678901234567890", "on": "True", "xs": "[1, 2]"}},
		{given: map[string]string{}, wantErr: "param name is required: give it with -p name=<string>"},
		{given: map[string]string{"name": "x", "n": "many"}, wantErr: `param n: "many" is not an int`},
		{given: map[string]string{"name": "x", "xs": `{"a": 1}`}, wantErr: "param xs: want a JSON array, got an object"},
		{given: map[string]string{"name": "x", "nope": "1"}, wantErr: "flow flow has no param nope; its params are name, n, on, xs"},
	}
	for _, test := range tests {
		values, err := ParamValues(flow.Graph, test.given)
		if test.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), test.wantErr) {
				t.Errorf("ParamValues(%v) error = %v, want %q", test.given, err, test.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParamValues(%v): %v", test.given, err)
			continue
		}
		got := make(map[string]string)
		for k, v := range values {
			got[k] = v.String()
		}
		if diff := cmp.Diff(test.want, got); diff != "" {
			t.Errorf("ParamValues(%v) (-want +got):\n%s", test.given, diff)
		}
	}
}
