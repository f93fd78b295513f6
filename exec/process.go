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
	"strings"
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
	cmd.Env = append(os.Environ(), taskRunnerEnv+"=1")
	cmd.Stdin = bytes.NewReader(in)
	cmd.ExtraFiles = []*os.File{resultW}
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
		if msg == "" && waitErr != nil {
			msg = waitErr.Error()
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
// task prints to out as it prints them, and writes the TaskResult as JSON
// to result, whether the task succeeded or failed. A nil set means
// builtins.Standard(). An error means the task could not be run, and no
// result was written.
func ServeTask(ctx context.Context, spec *TaskSpec, set *builtins.Set, out, result io.Writer) error {
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
	res, err := runTask(ctx, spec, set, ds, out)
	if err = errors.Join(err, ds.Close()); err != nil {
		return fmt.Errorf("task %s: %w", spec.TaskID, err)
	}
	data, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("task %s: encoding its result: %w", spec.TaskID, err)
	}
	if _, err := result.Write(data); err != nil {
		return fmt.Errorf("task %s: writing its result: %w", spec.TaskID, err)
	}
	return nil
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
	w := bufio.NewWriter(out)
	res, err := runner.Execute(ctx, spec, func(line string) {
		w.WriteString(line)
		w.WriteByte('\n')
		w.Flush() // lines show as they come
	})
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
