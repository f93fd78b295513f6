package dagger_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.starlark.net/starlark"

	"github.com/daggerflow/dagger"
	"github.com/daggerflow/dagger/builtins"
	"github.com/daggerflow/dagger/store"
)

// writeFlow writes src as the flow file name in a new folder, and returns
// its path.
func writeFlow(t *testing.T, name, src string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(src), 0o666); err != nil {
		t.Fatal(err)
	}
	return path
}

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestFlowKeepsItsBuiltins checks that a flow keeps the set it was loaded
// with: a builtin added later is not one the flow may use.
func TestFlowKeepsItsBuiltins(t *testing.T) {
	path := writeFlow(t, "f.star", "def start(ctx):\n    ctx.v = later()\n    next_step(finish)\n\ndef finish(ctx):\n    pass\n")
	set := builtins.Standard()
	if _, err := dagger.Load(path, set); err == nil || !strings.Contains(err.Error(), "f.star:2:13: undefined: later") {
		t.Fatalf("Load without later: %v", err)
	}
	if err := set.Add("later", starlark.NewBuiltin("later", func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
		return starlark.None, nil
	})); err != nil {
		t.Fatal(err)
	}
	flow, err := dagger.Load(path, set)
	if err != nil {
		t.Fatal(err)
	}
	if !flow.Builtins().IsPredeclared("later") {
		t.Error("the flow does not have the builtin it was loaded with")
	}
	if err := set.Add("other", starlark.None); err != nil {
		t.Fatal(err)
	}
	if flow.Builtins().IsPredeclared("other") {
		t.Error("a builtin added after Load reached the flow")
	}
}

// TestRunAndResumeRefuse checks the requests that cannot start a run: each
// is an *InvalidError, and none records a run.
func TestRunAndResumeRefuse(t *testing.T) {
	path := writeFlow(t, "p.star", "n = param('n', help = 'a number', default = 1)\n\ndef start(ctx):\n    ctx.n = n\n    next_step(finish)\n\ndef finish(ctx):\n    pass\n")
	flow, err := dagger.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	st := openStore(t)
	done, err := dagger.Run(t.Context(), st, flow, dagger.Options{Params: map[string]string{"n": "2"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		run  func() error
		want string
	}{
		{"bad param", func() error {
			_, err := dagger.Run(t.Context(), st, flow, dagger.Options{Params: map[string]string{"n": "two"}})
			return err
		}, `param n: "two" is not an int`},
		{"unknown param", func() error {
			_, err := dagger.Run(t.Context(), st, flow, dagger.Options{Params: map[string]string{"m": "1"}})
			return err
		}, "flow p has no param m; its params are n"},
		{"nothing to resume", func() error {
			_, err := dagger.Resume(t.Context(), st, flow, done, "", dagger.Options{})
			return err
		}, "succeeded: there is nothing to resume"},
		{"unknown step", func() error {
			_, err := dagger.Resume(t.Context(), st, flow, done, "middle", dagger.Options{})
			return err
		}, "flow p has no step middle"},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			err := test.run()
			var invalid *dagger.InvalidError
			if !errors.As(err, &invalid) || !strings.Contains(err.Error(), test.want) {
				t.Errorf("error = %v, want an *InvalidError with %q", err, test.want)
			}
		})
	}
	runs, err := st.Runs(t.Context(), store.RunFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 {
		t.Errorf("the store has %d runs, want only the one that succeeded", len(runs))
	}
	// With from, a run that succeeded runs again, with its params.
	again, err := dagger.Resume(t.Context(), st, flow, done, "finish", dagger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if again.Params["n"] != "2" || again.Origin != done.ID {
		t.Errorf("resumed run: params %v, origin %s", again.Params, again.Origin)
	}
}

// TestSlowConsumer runs a wide foreach with an OnEvent that takes its
// time, and checks that events still come one at a time, each task's in
// order, and that nothing starts before what it follows is reported.
func TestSlowConsumer(t *testing.T) {
	path := writeFlow(t, "wide.star", `
def start(ctx):
    next_step(each, foreach = list(range(40)))

def each(ctx):
    print("element", ctx.input)
    ctx.sq = ctx.input * ctx.input
    next_step(join)

def join(ctx, inputs):
    ctx.total = 0
    for i in inputs:
        ctx.total += i.sq
    next_step(finish)

def finish(ctx):
    print(ctx.total)
`)
	flow, err := dagger.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		inside   bool
		events   []dagger.Event
		overlaps int
	)
	onEvent := func(e dagger.Event) {
		mu.Lock()
		if inside {
			overlaps++
		}
		inside = true
		mu.Unlock()
		time.Sleep(200 * time.Microsecond) // a slow consumer
		mu.Lock()
		events = append(events, e)
		inside = false
		mu.Unlock()
	}
	run, err := dagger.Run(t.Context(), openStore(t), flow, dagger.Options{MaxWorkers: 8, OnEvent: onEvent})
	if err != nil {
		t.Fatal(err)
	}
	if overlaps > 0 {
		t.Errorf("OnEvent was called %d times while it ran", overlaps)
	}
	if events[0].Kind != dagger.RunStarted || events[len(events)-1].Kind != dagger.RunFinished {
		t.Errorf("the events start with %s and end with %s", events[0].Kind, events[len(events)-1].Kind)
	}
	state := make(map[string]dagger.EventKind) // the last event of each task
	eachDone := 0
	for _, e := range events {
		switch e.Kind {
		case dagger.TaskStarted:
			if state[e.TaskID] != "" {
				t.Errorf("%s started twice", e.TaskID)
			}
			if e.Step == "each" && state["start"] != dagger.TaskFinished || e.Step == "join" && eachDone < 40 {
				t.Errorf("%s started before what it follows finished", e.TaskID)
			}
		case dagger.TaskOutput:
			if state[e.TaskID] != dagger.TaskStarted && state[e.TaskID] != dagger.TaskOutput {
				t.Errorf("%s printed after %q", e.TaskID, state[e.TaskID])
			}
		case dagger.TaskFinished:
			if state[e.TaskID] == "" {
				t.Errorf("%s finished without starting", e.TaskID)
			}
			if e.Step == "each" {
				eachDone++
			}
		default:
			continue
		}
		state[e.TaskID] = e.Kind
	}
	if len(state) != 43 || run.Status != store.RunSucceeded {
		t.Errorf("%d tasks reported, run %s; want 43, succeeded", len(state), run.Status)
	}
}

// TestBuiltinSeesTheTaskContext checks that a builtin that blocks stops
// when its task does: here, at the step's timeout.
func TestBuiltinSeesTheTaskContext(t *testing.T) {
	set := builtins.Standard()
	wait := starlark.NewBuiltin("wait", func(thread *starlark.Thread, _ *starlark.Builtin, _ starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
		ctx := builtins.ThreadContext(thread)
		select {
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		case <-time.After(time.Minute):
			return nil, errors.New("the task's context was not cancelled")
		}
	})
	if err := set.Add("wait", wait); err != nil {
		t.Fatal(err)
	}
	path := writeFlow(t, "wait.star", "def start(ctx):\n    wait()\n    next_step(finish)\n\ndef finish(ctx):\n    pass\n\nstep(start, timeout = \"50ms\")\n")
	flow, err := dagger.Load(path, set)
	if err != nil {
		t.Fatal(err)
	}
	_, err = dagger.Run(t.Context(), openStore(t), flow, dagger.Options{})
	var runErr *dagger.RunError
	if !errors.As(err, &runErr) || !strings.Contains(err.Error(), "step start timed out after 50ms") {
		t.Errorf("run error = %v, want the step's timeout", err)
	}
}

// TestBuiltinPanics checks that a builtin that panics fails its task,
// with the panic and its stack, and the run with it, and leaves no task
// recorded running.
func TestBuiltinPanics(t *testing.T) {
	set := builtins.Standard()
	boom := starlark.NewBuiltin("boom", func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
		panic("a bug of the builtin's")
	})
	if err := set.Add("boom", boom); err != nil {
		t.Fatal(err)
	}
	path := writeFlow(t, "boom.star", "def start(ctx):\n    boom()\n    next_step(finish)\n\ndef finish(ctx):\n    pass\n")
	flow, err := dagger.Load(path, set)
	if err != nil {
		t.Fatal(err)
	}
	st := openStore(t)
	run, err := dagger.Run(t.Context(), st, flow, dagger.Options{})
	if err == nil || !strings.Contains(err.Error(), "panic in a builtin: a bug of the builtin's") || !strings.Contains(err.Error(), "goroutine") {
		t.Errorf("run error = %v, want the panic with its stack", err)
	}
	tasks, err := st.Tasks(t.Context(), run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 1 || tasks[0].Status != store.TaskFailed {
		t.Errorf("tasks = %+v, want start failed", tasks)
	}
}

// TestProcessExecutorInRunner checks that a program started to run one
// task cannot start task runners of its own: one whose main runs its flow
// instead of the step command would start itself without end.
func TestProcessExecutorInRunner(t *testing.T) {
	if _, err := dagger.ProcessExecutor(); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DAGGER_TASK_RUNNER", "1")
	if _, err := dagger.ProcessExecutor(); err == nil || !strings.Contains(err.Error(), "its main must hand a command line starting with step to cli.Main") {
		t.Errorf("ProcessExecutor in a task runner: %v", err)
	}
}
