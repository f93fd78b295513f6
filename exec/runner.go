package exec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	sltime "go.starlark.net/lib/time"
	sl "go.starlark.net/starlark"

	"github.com/daggerflow/dagger/builtins"
	"github.com/daggerflow/dagger/dag"
	"github.com/daggerflow/dagger/starlark"
	"github.com/daggerflow/dagger/store"
)

// A Runner runs the tasks of one flow in this process. It runs the flow's
// top-level code once, when it is made, and its tasks share the resulting
// globals, frozen; each task runs on a thread of its own, so tasks run in
// parallel on every core.
type Runner struct {
	flow    *starlark.Flow
	code    string
	globals sl.StringDict
	blobs   store.Blobs
	setup   *builtins.Setup
	// splitJoins are the joins that close a split, whose inputs are also
	// named by step.
	splitJoins map[string]bool
	// logBufs holds buffers that tasks printed into, their output saved,
	// for other tasks to print into: each would otherwise grow one anew,
	// and make as much garbage again as it printed.
	logBufs sync.Pool // of *[]byte
}

// NewRunner runs the top-level code of flow, with the param values given
// for the run (as on the command line) and the flow's builtins, and
// returns a Runner for its tasks. print receives each line the top-level
// code prints.
func NewRunner(ctx context.Context, flow *starlark.Flow, params map[string]string, blobs store.Blobs, print func(line string)) (*Runner, error) {
	values, err := ParamValues(flow.Graph, params)
	if err != nil {
		return nil, err
	}
	setup := builtins.NewSetup(flow.Graph, values)
	thread := &sl.Thread{Name: "setup", Print: func(_ *sl.Thread, msg string) { printLines(msg, print) }}
	setup.Attach(thread)
	// Top-level code runs again in every process that runs tasks, so it
	// must give the same globals each time: no clock.
	sltime.SetNow(thread, func() (time.Time, error) {
		return time.Time{}, errors.New("time.now cannot be called in a flow's top-level code, which must give the same result in every process; call it in a step")
	})
	globals, err := initFlow(ctx, flow, thread)
	if err != nil {
		return nil, fmt.Errorf("running the flow's top-level code: %w", err)
	}
	splitJoins := make(map[string]bool)
	for _, s := range flow.Graph.Steps {
		if s.Next != nil && s.Next.Kind == dag.Split {
			splitJoins[s.JoinedBy] = true
		}
	}
	return &Runner{flow: flow, code: flow.Package.Hash(), globals: globals, blobs: blobs, setup: setup, splitJoins: splitJoins}, nil
}

// initFlow runs the top-level code of flow on thread. A builtin that
// panics fails the run with the panic and its Go stack, as it fails a task
// (see call), rather than kill the process with the run recorded running.
func initFlow(ctx context.Context, flow *starlark.Flow, thread *sl.Thread) (globals sl.StringDict, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic in a builtin: %v\n%s", r, debug.Stack())
		}
	}()
	return flow.Init(ctx, thread)
}

// Options returns the options of a step as the flow's top-level code set
// them with step().
func (r *Runner) Options(step string) map[string]any { return r.setup.Options[step] }

func printLines(msg string, print func(string)) {
	for line := range strings.SplitSeq(msg, "\n") {
		print(line)
	}
}

// Execute runs one task of the flow.
func (r *Runner) Execute(ctx context.Context, spec *TaskSpec, print func(line string)) (*TaskResult, error) {
	if spec.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, spec.Timeout, fmt.Errorf("step %s timed out after %s", spec.Step, spec.Timeout))
		defer cancel()
	}
	if spec.Code != r.code {
		return nil, fmt.Errorf("task %s is of code %s, not of the code this runner loaded (%s)", spec.TaskID, spec.Code, r.code)
	}
	step := r.flow.Graph.Step(spec.Step)
	if step == nil {
		return nil, fmt.Errorf("task %s: the flow has no step %s", spec.TaskID, spec.Step)
	}
	load := func(h string) (sl.Value, error) { return r.load(ctx, store.Hash(h)) }
	info := builtins.TaskInfo{RunID: spec.RunID, Step: spec.Step, TaskID: spec.TaskID, Attempt: spec.Attempt, Index: -1, Input: spec.Input}
	if spec.Input != "" {
		if len(spec.Index) == 0 {
			return nil, fmt.Errorf("task %s has a foreach element but no index", spec.TaskID)
		}
		info.Index = spec.Index[len(spec.Index)-1]
	}
	taskCtx := builtins.NewContext(info, spec.Artifacts, spec.Conflicts, load)
	args := []sl.Value{taskCtx}
	switch len(step.Params) {
	case 0:
		args = nil
	case 2:
		args = append(args, r.inputs(spec, load))
	}

	var (
		mu   sync.Mutex // programs the task runs print from goroutines of their own
		logs = r.logBuffer()
	)
	task := &builtins.Task{Step: spec.Step, Allow: step.Capabilities(), Getenv: os.LookupEnv, Blobs: r.blobs}
	task.Prepare = r.prepare
	task.Print = func(line string) {
		line = task.Redact(line)
		mu.Lock()
		defer mu.Unlock()
		if logs != nil {
			*logs = append(append(*logs, line...), '\n')
		}
		print(line)
	}
	defer task.Close()
	thread := &sl.Thread{Name: spec.TaskID, Print: func(_ *sl.Thread, msg string) { printLines(msg, task.Print) }}
	taskCtx.Watch(thread, starlark.Check)
	if spec.MaxSteps > 0 {
		thread.SetMaxExecutionSteps(spec.MaxSteps)
	}
	builtins.SetThreadTask(thread, task)
	next := &builtins.Next{}
	next.Attach(thread)
	err := call(ctx, thread, r.globals[spec.Step], args)
	res := &TaskResult{}
	if err == nil {
		err = r.finish(ctx, step, next, taskCtx, res)
	}
	mu.Lock()
	defer mu.Unlock()
	// What a cancelled task printed is kept too.
	h, perr := r.saveLogs(context.WithoutCancel(ctx), logs)
	logs = nil // what a program the task started prints late is not kept
	if perr != nil {
		if err != nil {
			// The task's own failure is the news; losing its output is
			// the second.
			return nil, fmt.Errorf("task %s: %s; and saving its output: %w", spec.TaskID, task.Redact(err.Error()), perr)
		}
		return nil, fmt.Errorf("task %s: saving its output: %w", spec.TaskID, perr)
	}
	res.Logs = string(h)
	if err != nil {
		// An error may quote a value the task read as a secret.
		res.Error = task.Redact(err.Error())
		return res, nil
	}
	res.OK = true
	return res, nil
}

// maxLogBuffer is the largest buffer of output that a Runner keeps for
// the next task, so that one task that printed much leaves no large buffer
// for the many that print little.
const maxLogBuffer = 1 << 20

// logBuffer returns an empty buffer for a task to print into.
func (r *Runner) logBuffer() *[]byte {
	if buf, ok := r.logBufs.Get().(*[]byte); ok {
		return buf
	}
	return new([]byte)
}

// saveLogs saves what a task printed into logs, if anything, and keeps
// the buffer for another task.
func (r *Runner) saveLogs(ctx context.Context, logs *[]byte) (store.Hash, error) {
	defer func() {
		if cap(*logs) <= maxLogBuffer {
			*logs = (*logs)[:0]
			r.logBufs.Put(logs)
		}
	}()
	if len(*logs) == 0 {
		return "", nil
	}
	return r.blobs.Put(ctx, *logs)
}

// collectMin is the size of an artifact from which loading it collects
// garbage first.
const collectMin = 64 << 20

// load returns the value of the artifact stored as blob h. A large string
// or bytes is read straight into its own memory (see
// starlark.DecodeReader), and verified as it is read.
func (r *Runner) load(ctx context.Context, h store.Hash) (sl.Value, error) {
	rc, err := r.blobs.Open(ctx, h)
	if err != nil {
		return nil, err
	}
	defer rc.Close() // read-only: nothing to lose
	var v sl.Value
	if sized, ok := rc.(interface{ Size() int64 }); ok {
		if sized.Size() >= collectMin {
			// The memory of a large value that a task dropped, such as the
			// one that the previous step saved, is then reused for this
			// one rather than added to it: the collector would free it
			// only once the heap had grown by as much again. Collecting
			// costs little next to reading so much, as large values hold
			// no pointers to follow.
			runtime.GC()
		}
		v, err = starlark.DecodeReader(rc, sized.Size())
	} else {
		var data []byte
		if data, err = io.ReadAll(rc); err == nil {
			v, err = starlark.DecodeOwned(data)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", h, err)
	}
	return v, nil
}

// call calls the step fn on thread. A builtin that panics, one of an
// embedder or of dagger, fails the task with the panic and its Go stack,
// rather than take down every task of the process.
func call(ctx context.Context, thread *sl.Thread, fn sl.Value, args []sl.Value) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic in a builtin: %v\n%s", r, debug.Stack())
		}
	}()
	_, err = starlark.Call(ctx, thread, fn, args...)
	return err
}

// inputs builds the inputs value of a join.
func (r *Runner) inputs(spec *TaskSpec, load builtins.Loader) *builtins.Inputs {
	if js := spec.joined; js != nil {
		return builtins.NewForeachInputs(js.len(), func(i int) *builtins.Context { return input(spec, js.input(i), load) })
	}
	items := make([]*builtins.Context, len(spec.Inputs))
	for i, in := range spec.Inputs {
		items[i] = input(spec, in, load)
	}
	return builtins.NewInputs(items, r.splitJoins[spec.Step])
}

// input returns the context of in, an input of the join of spec.
func input(spec *TaskSpec, in Input, load builtins.Loader) *builtins.Context {
	info := builtins.TaskInfo{RunID: spec.RunID, Step: in.Step, TaskID: in.TaskID, Attempt: in.Attempt, Index: -1, Input: in.Input}
	if in.Input != "" && len(in.Index) > 0 {
		info.Index = in.Index[len(in.Index)-1]
	} else {
		info.Input = ""
	}
	return builtins.NewContext(info, in.Artifacts, nil, load).ReadOnly()
}

// finish checks the transition the task took against the graph and saves
// its artifacts and foreach elements.
func (r *Runner) finish(ctx context.Context, step *dag.Step, next *builtins.Next, taskCtx *builtins.Context, res *TaskResult) error {
	if err := checkTransition(step, next.Called, next.Targets, next.Foreach != nil); err != nil {
		return err
	}
	res.Next = next.Targets
	var buf []byte
	if next.Foreach != nil {
		iter := sl.Iterate(next.Foreach)
		defer iter.Done()
		var x sl.Value
		for i := 0; iter.Next(&x); i++ {
			h, err := r.save(ctx, &buf, x)
			if err != nil {
				return fmt.Errorf("foreach element %d: %w", i, err)
			}
			res.Foreach = append(res.Foreach, h)
		}
		if res.Foreach == nil {
			res.Foreach = []string{}
		}
	}
	values, unchanged := taskCtx.Touched()
	res.Artifacts = unchanged
	for _, name := range sortedKeys(values) {
		h, err := r.resave(ctx, &buf, values[name], taskCtx.Loaded(name))
		if err != nil {
			// A value can change after it is set, as a list that a
			// function is appended to: say where to look.
			if where := taskCtx.Where(name); where != "" {
				return fmt.Errorf("artifact %s (%s): %w", name, where, err)
			}
			return fmt.Errorf("artifact %s: %w", name, err)
		}
		res.Artifacts[name] = h
	}
	return nil
}

// save encodes v into *buf, which it reuses, and stores it. The large
// strings and bytes in v are stored from where they are, not copied.
func (r *Runner) save(ctx context.Context, buf *[]byte, v sl.Value) (string, error) {
	return r.resave(ctx, buf, v, "")
}

// resave is save for a value that the task loaded from blob loaded, if
// not "", and may have changed: if its encoding still has that hash, the
// blob is not stored again.
func (r *Runner) resave(ctx context.Context, buf *[]byte, v sl.Value, loaded string) (string, error) {
	parts, data, err := starlark.AppendEncodeParts((*buf)[:0], v)
	if err != nil {
		return "", err
	}
	*buf = data
	if loaded != "" && string(store.HashParts(parts...)) == loaded {
		return loaded, nil
	}
	h, err := r.blobs.Put(ctx, parts...)
	return string(h), err
}

// checkTransition reports a transition that does not fit the graph: a
// task that went to targets, fanning out or not. Validation makes a
// mismatch all but impossible in a task that just ran; it is how the
// scheduler checks what any executor reports, and whether a task of an
// earlier run still fits the current code.
func checkTransition(step *dag.Step, called bool, targets []string, foreach bool) error {
	if step.Next == nil {
		if called {
			return fmt.Errorf("step %s called next_step, but it ends the flow", step.Name)
		}
		return nil
	}
	if !called {
		return fmt.Errorf("step %s ended without calling next_step", step.Name)
	}
	want := step.Next.Names()
	ok := false
	switch step.Next.Kind {
	case dag.Linear, dag.Split:
		ok = slices.Equal(targets, want) && !foreach
	case dag.Foreach:
		ok = slices.Equal(targets, want) && foreach
	case dag.Switch:
		ok = len(targets) == 1 && slices.Contains(want, targets[0]) && !foreach
	}
	if !ok {
		return fmt.Errorf("step %s went to %s, which its source does not say", step.Name, strings.Join(targets, ", "))
	}
	return nil
}
