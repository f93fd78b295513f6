package exec

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/daggerflow/dagger/builtins"
	"github.com/daggerflow/dagger/datastore"
	"github.com/daggerflow/dagger/starlark"
	"github.com/daggerflow/dagger/store"
)

// Process runs each task in a subprocess of its own: the hidden
// `dagger step` command, the entry point a Kubernetes pod runs too. The
// subprocess reads the spec on its standard input, prints the task's
// output on its standard output and writes the result to descriptor 3.
type Process struct {
	// Command is the runner command, e.g. {"/usr/local/bin/dagger", "step"}.
	Command []string
	// Grace is how long a cancelled subprocess has to report its result
	// before it is killed; 0 means 10 seconds.
	Grace time.Duration
}

// Execute runs one task in a subprocess.
func (p *Process) Execute(ctx context.Context, spec *TaskSpec, print func(line string)) (*TaskResult, error) {
	if len(p.Command) == 0 {
		return nil, errors.New("process executor: no runner command")
	}
	if IsTaskRunner() {
		return nil, errors.New("process executor: this process was started to run one task, as \"step\", and runs a flow instead: its main must hand the step command line to cli.Main")
	}
	in, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("task %s: encoding its spec: %w", spec.TaskID, err)
	}
	resultR, resultW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("task %s: %w", spec.TaskID, err)
	}
	defer resultR.Close()

	cmd := osexec.CommandContext(ctx, p.Command[0], append(p.Command[1:], "--result-fd", "3")...)
	// The spec comes on standard input: one left in the environment, of
	// a task this process runs itself, would make the runner run it.
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, SpecEnv+"=")
	}), taskRunnerEnv+"=1")
	cmd.Stdin = bytes.NewReader(in)
	cmd.ExtraFiles = []*os.File{resultW}
	cmd.SysProcAttr = dieWithParent()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		resultW.Close()
		return nil, fmt.Errorf("task %s: %w", spec.TaskID, err)
	}
	// A cancelled task is asked to stop, so that it reports where it was;
	// it is killed only if it does not.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = p.Grace
	if cmd.WaitDelay == 0 {
		cmd.WaitDelay = 10 * time.Second
	}
	if err := cmd.Start(); err != nil {
		resultW.Close()
		return nil, fmt.Errorf("task %s: starting %s: %w", spec.TaskID, p.Command[0], err)
	}
	resultW.Close() // the child has its own copy

	resultc := make(chan []byte, 1)
	go func() {
		data, _ := io.ReadAll(resultR) // a short read shows as a bad result below
		resultc <- data
	}()
	// Lines of any length are read whole, so that the child never blocks
	// on a pipe nobody reads.
	lines := bufio.NewReader(stdout)
	for {
		line, err := lines.ReadString('\n')
		if line != "" {
			print(strings.TrimSuffix(line, "\n"))
		}
		if err != nil {
			break // EOF, or the pipe closed by Wait
		}
	}
	waitErr := cmd.Wait()
	data := <-resultc

	var res TaskResult
	if len(data) == 0 || json.Unmarshal(data, &res) != nil {
		msg := strings.TrimSpace(stderr.String())
		switch {
		case msg == "" && waitErr != nil:
			msg = waitErr.Error()
		case waitErr != nil:
			// How it ended says what its last words may not: killed by a
			// signal, say.
			msg += " (" + waitErr.Error() + ")"
		}
		if ctx.Err() != nil {
			return &TaskResult{Error: fmt.Sprintf("%v: %s", context.Cause(ctx), msg)}, nil
		}
		return nil, fmt.Errorf("%s gave no result: %s", strings.Join(p.Command, " "), msg)
	}
	return &res, nil
}

// taskRunnerEnv marks the environment of a process that Process started to
// run a task.
const taskRunnerEnv = "DAGGER_TASK_RUNNER"

// IsTaskRunner reports whether this process was started by Process to run
// a task. A program whose main does not hand the step command line to the
// runner would run its flow again instead, and start itself again, without
// end: whatever makes a Process checks this first.
func IsTaskRunner() bool { return os.Getenv(taskRunnerEnv) == "1" }

// ServeTask is the runner side of the task protocol, what the hidden
// `dagger step` command runs in a subprocess or a pod: it opens the
// datastore spec names, and nothing else (not the driver's metadata
// database), runs the task with the builtins of set, prints the lines the
// task prints to out, in batches, each within 50 ms of its first line, and
// all before the result, and writes the TaskResult as JSON to result,
// whether the task succeeded or failed. A nil set means
// builtins.Standard(). An error means the task could not be run, and no
// result was written.
func ServeTask(ctx context.Context, spec *TaskSpec, set *builtins.Set, out, result io.Writer) error {
	return serveTask(ctx, spec, set, out, func(_ store.Blobs, res *TaskResult) error {
		data, err := json.Marshal(res)
		if err != nil {
			return fmt.Errorf("encoding its result: %w", err)
		}
		_, err = result.Write(data)
		return err
	})
}

// ServeTaskRef is ServeTask for a runner whose result must be short, as in
// a pod, whose kubelet keeps only the last MaxResultRef bytes of its
// termination message: it stores the TaskResult in the datastore, durably,
// and writes a ResultRef to result, which FetchResult reads back.
func ServeTaskRef(ctx context.Context, spec *TaskSpec, set *builtins.Set, out, result io.Writer) error {
	return serveTask(ctx, spec, set, out, func(blobs store.Blobs, res *TaskResult) error {
		data, err := json.Marshal(res)
		if err != nil {
			return fmt.Errorf("encoding its result: %w", err)
		}
		h, err := blobs.Put(context.WithoutCancel(ctx), data)
		if err == nil {
			err = blobs.Sync(context.WithoutCancel(ctx))
		}
		if err != nil {
			return fmt.Errorf("saving its result: %w", err)
		}
		ref := ResultRef{Result: string(h), OK: res.OK}
		if !res.OK {
			ref.Error = lastLine(res.Error)
		}
		data, err = ref.encode()
		if err != nil {
			return err
		}
		_, err = result.Write(data)
		return err
	})
}

// serveTask runs the task of spec against the datastore it names, and
// hands the result to write.
func serveTask(ctx context.Context, spec *TaskSpec, set *builtins.Set, out io.Writer, write func(store.Blobs, *TaskResult) error) error {
	if set == nil {
		set = builtins.Standard()
	}
	if spec.Datastore == "" {
		return fmt.Errorf("task %s: the task spec names no datastore", spec.TaskID)
	}
	ds, err := datastore.Open(ctx, spec.Datastore)
	if err != nil {
		return fmt.Errorf("task %s: %w", spec.TaskID, err)
	}
	if spec, err = LoadSpec(ctx, ds, spec); err != nil {
		ds.Close()
		return err
	}
	res, err := runTask(ctx, spec, set, ds, out)
	if err == nil {
		if err = write(ds, res); err != nil {
			err = fmt.Errorf("writing its result: %w", err)
		}
	}
	if err = errors.Join(err, ds.Close()); err != nil {
		return fmt.Errorf("task %s: %w", spec.TaskID, err)
	}
	return nil
}

// LoadSpec returns the whole spec that ref, a spec whose Ref is set,
// names in blobs, as SaveSpec saved it; a spec without Ref is returned as
// it is.
func LoadSpec(ctx context.Context, blobs store.Blobs, ref *TaskSpec) (*TaskSpec, error) {
	if ref.Ref == "" {
		return ref, nil
	}
	h, err := store.ParseHash(ref.Ref)
	if err != nil {
		return nil, fmt.Errorf("task %s: its spec reference: %w", ref.TaskID, err)
	}
	data, err := blobs.Get(ctx, h)
	if err != nil {
		return nil, fmt.Errorf("task %s: fetching its spec: %w", ref.TaskID, err)
	}
	var spec TaskSpec
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, fmt.Errorf("task %s: decoding its spec %s: %w", ref.TaskID, h, err)
	}
	if spec.Ref != "" || spec.TaskID != ref.TaskID {
		return nil, fmt.Errorf("task %s: its spec reference %s names the spec of another task, %s", ref.TaskID, h, spec.TaskID)
	}
	return &spec, nil
}

// SaveSpec saves spec in blobs, durably, and returns the short spec that
// refers to it, for a runner to read it with LoadSpec: the task's
// identity, datastore, timeout and resources, and Ref.
func SaveSpec(ctx context.Context, blobs store.Blobs, spec *TaskSpec) (*TaskSpec, error) {
	data, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("task %s: encoding its spec: %w", spec.TaskID, err)
	}
	h, err := blobs.Put(ctx, data)
	if err == nil {
		err = blobs.Sync(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("task %s: saving its spec: %w", spec.TaskID, err)
	}
	return &TaskSpec{
		RunID: spec.RunID, Datastore: spec.Datastore, Step: spec.Step, TaskID: spec.TaskID, Attempt: spec.Attempt,
		Index: spec.Index, Timeout: spec.Timeout, Resources: spec.Resources, Ref: string(h),
	}, nil
}

// MaxResultRef is the most of a termination message a kubelet keeps.
const MaxResultRef = 4096

// A ResultRef is the short form of a TaskResult that ServeTaskRef writes:
// the blob that holds the whole TaskResult, and, for people reading the
// pod's status, whether it succeeded and the last line of its error.
type ResultRef struct {
	Result string `json:"result"` // the blob of the TaskResult, as JSON
	OK     bool   `json:"ok"`
	Error  string `json:"error,omitempty"`
}

// encode returns r as JSON within MaxResultRef bytes, cutting its error.
func (r ResultRef) encode() ([]byte, error) {
	for {
		data, err := json.Marshal(r)
		if err != nil || len(data) <= MaxResultRef {
			return data, err
		}
		// Cut runes, not bytes, so that the JSON stays valid UTF-8.
		cut := []rune(r.Error)
		r.Error = string(cut[:len(cut)*3/4]) + "…"
	}
}

// FetchResult returns the TaskResult that ref, a ResultRef as ServeTaskRef
// wrote it, names in blobs.
func FetchResult(ctx context.Context, blobs store.Blobs, ref []byte) (*TaskResult, error) {
	var r ResultRef
	if err := json.Unmarshal(ref, &r); err != nil {
		return nil, fmt.Errorf("reading a task's result reference %q: %w", ref, err)
	}
	h, err := store.ParseHash(r.Result)
	if err != nil {
		return nil, fmt.Errorf("a task's result reference: %w", err)
	}
	data, err := blobs.Get(ctx, h)
	if err != nil {
		return nil, fmt.Errorf("fetching a task's result: %w", err)
	}
	var res TaskResult
	if err := json.Unmarshal(data, &res); err != nil {
		return nil, fmt.Errorf("decoding a task's result %s: %w", h, err)
	}
	return &res, nil
}

// lastLine returns the last line of msg, such as the message of a
// Starlark backtrace.
func lastLine(msg string) string {
	msg = strings.TrimRight(msg, "\n")
	return msg[strings.LastIndexByte(msg, '\n')+1:]
}

// runTask runs the task spec describes in this process: it fetches the
// flow's code package from the blobs, checks it, runs its top-level code
// (whose output belongs to the run and was shown by the driver, so it is
// dropped here), runs the task and makes the blobs it wrote durable. Lines
// the task prints go to out.
func runTask(ctx context.Context, spec *TaskSpec, set *builtins.Set, blobs store.Blobs, out io.Writer) (*TaskResult, error) {
	code, err := blobs.Get(ctx, store.Hash(spec.Code))
	if err != nil {
		return nil, fmt.Errorf("fetching the flow's code: %w", err)
	}
	pkg, err := starlark.DecodePackage(code)
	if err != nil {
		return nil, err
	}
	flow, err := starlark.LoadPackage(pkg, spec.Dir, set)
	if err != nil {
		return nil, fmt.Errorf("checking the flow's code: %w", err)
	}
	runner, err := NewRunner(ctx, flow, spec.Params, blobs, func(string) {})
	if err != nil {
		return nil, err
	}
	// A runner whose output can no longer be written, its driver gone,
	// stops: no one will read its result.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	o := newTaskOutput(out, outputDelay, func(err error) { cancel(fmt.Errorf("writing the task's output: %w", err)) })
	res, err := runner.Execute(ctx, spec, o.print)
	// What the task printed goes out before its result, which the driver
	// reads after the output, so that its lines come before its ✓. A
	// write that fails now, its driver gone, changes nothing.
	o.close()
	if err != nil {
		return nil, err
	}
	// The driver records the task as finished once this returns: what it
	// wrote must survive a crash by then, cancelled or not.
	if err := blobs.Sync(context.WithoutCancel(ctx)); err != nil {
		return nil, err
	}
	return res, nil
}

// outputDelay is how long a line a task printed may wait in its runner's
// buffer, and in the batch its driver reports it in (see lineBatch): lines
// still show as they come, to the eye, while a task that prints many pays
// one write, or one report, for a batch of them rather than one each.
const outputDelay = 50 * time.Millisecond

// A taskOutput is the output of a task that a runner prints: lines are
// buffered, and written when the buffer fills, outputDelay after the first
// line that waits, and when the task ends. The first write that fails is
// reported to fail, and the lines after it are dropped.
type taskOutput struct {
	delay time.Duration // outputDelay, but in tests
	fail  func(error)

	mu      sync.Mutex
	w       *bufio.Writer
	pending *time.Timer // the flush of the lines that wait, if any
	err     error       // the first error of a write
}

func newTaskOutput(out io.Writer, delay time.Duration, fail func(error)) *taskOutput {
	return &taskOutput{delay: delay, fail: fail, w: bufio.NewWriterSize(out, 64<<10)}
}

// print is the task's print function.
func (o *taskOutput) print(line string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err != nil {
		return
	}
	// The writer writes a full buffer itself, and keeps its error.
	o.w.WriteString(line)
	if err := o.w.WriteByte('\n'); err != nil {
		o.failed(err)
		return
	}
	if o.w.Buffered() > 0 && o.pending == nil {
		o.pending = time.AfterFunc(o.delay, o.flush)
	}
}

// flush writes the lines that wait, when the delay has passed.
func (o *taskOutput) flush() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.pending = nil
	o.flushLocked()
}

// close writes the lines that wait, at the end of the task.
func (o *taskOutput) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.pending != nil {
		o.pending.Stop()
		o.pending = nil
	}
	o.flushLocked()
}

// flushLocked writes the buffer; the caller holds mu.
func (o *taskOutput) flushLocked() {
	if err := o.w.Flush(); err != nil && o.err == nil {
		o.failed(err)
	}
}

// failed records err, the first error of a write, and reports it. The
// caller holds mu.
func (o *taskOutput) failed(err error) {
	o.err = err
	o.fail(err)
}
