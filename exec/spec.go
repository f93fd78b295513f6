package exec

import (
	"context"
	"strconv"
	"time"

	"github.com/daggerflow/dagger/builtins"
)

// SpecEnv is the environment variable from which the task runner reads the
// TaskSpec, as JSON, when it is set: a pod has no standard input to read
// it from.
const SpecEnv = "DAGGER_TASK_SPEC"

// A TaskSpec is everything needed to run one task, wherever it runs: the
// code and the blobs it reads come from the datastore, the rest is here.
// It holds nothing that only makes sense on the driver's disk, and no
// credentials: a runner takes those from its own environment.
type TaskSpec struct {
	RunID     string            `json:"run_id"`
	Code      string            `json:"code"`                // blob of the flow's code package
	Dir       string            `json:"dir,omitempty"`       // folder prefix of file names in backtraces
	Datastore string            `json:"datastore,omitempty"` // URL of the datastore that holds the blobs
	Params    map[string]string `json:"params,omitempty"`    // values given for the run, as on the command line
	Step      string            `json:"step"`
	TaskID    string            `json:"task_id"`
	Attempt   int               `json:"attempt"`
	Index     []int             `json:"index,omitempty"` // foreach indices, outermost first
	Input     string            `json:"input,omitempty"` // blob of the foreach element, at a foreach's step
	// Artifacts are what ctx starts with: name -> blob.
	Artifacts map[string]string `json:"artifacts,omitempty"`
	// Conflicts are the artifacts the inputs of a join disagree on.
	Conflicts map[string]builtins.Conflict `json:"conflicts,omitempty"`
	// Inputs are the tasks that meet at a join, in order.
	Inputs   []Input `json:"inputs,omitempty"`
	MaxSteps uint64  `json:"max_steps,omitempty"` // Starlark execution steps allowed; 0 for no limit
	// Timeout is the step's timeout option; the executor stops the task
	// when it runs out. 0 for none.
	Timeout time.Duration `json:"timeout_ns,omitempty"`
	// Resources are the step's options that say where the task runs, for
	// executors that start a container; the others ignore them.
	Resources Resources `json:"resources,omitzero"`
	// joined, if set in place of Inputs, holds the inputs of the join of a
	// foreach for the Runner of this process, which makes them one at a
	// time: a million-task foreach must not hold a million Inputs.
	joined *joinState
	// Ref, if set, is the blob of Datastore that holds the whole spec, as
	// JSON, which the runner reads in place of this one: for a spec too
	// large for where it travels, such as a pod's environment at the join
	// of a wide foreach. The other fields then only describe the task to
	// the executor.
	Ref string `json:"ref,omitempty"`
}

// Resources are the options of a step that say where and with what its
// tasks run, as the flow's top-level code resolved them and dag checked
// them.
type Resources struct {
	Image          string            `json:"image,omitempty"`
	CPU            string            `json:"cpu,omitempty"`    // a Kubernetes quantity, such as "500m" or "2"
	Memory         string            `json:"memory,omitempty"` // a Kubernetes quantity, such as "2Gi"
	GPU            int               `json:"gpu,omitempty"`
	Env            map[string]string `json:"env,omitempty"`
	NodeSelector   map[string]string `json:"node_selector,omitempty"`
	ServiceAccount string            `json:"service_account,omitempty"`
	// Secrets are Kubernetes Secrets whose keys become environment
	// variables of the task's pod, for the step to read with env.get.
	Secrets []string `json:"secrets,omitempty"`
}

// resources returns the Resources that opts, the options of a step as
// its top-level code set them, give.
func resources(opts map[string]any) Resources {
	var r Resources
	r.Image, _ = opts["image"].(string)
	r.CPU = quantity(opts["cpu"])
	r.Memory = quantity(opts["memory"])
	if n, ok := opts["gpu"].(int64); ok {
		r.GPU = int(n)
	}
	r.Env = stringMap(opts["env"])
	r.NodeSelector = stringMap(opts["node_selector"])
	r.ServiceAccount, _ = opts["service_account"].(string)
	if list, ok := opts["secrets"].([]any); ok {
		for _, v := range list {
			if name, ok := v.(string); ok {
				r.Secrets = append(r.Secrets, name)
			}
		}
	}
	return r
}

// quantity returns v, a number or a quantity string, as a quantity
// string.
func quantity(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return ""
}

// stringMap returns v, a dict of strings to strings as dag reads it, as a
// map; nil for anything else.
func stringMap(v any) map[string]string {
	m, ok := v.(map[string]any)
	if !ok || len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, x := range m {
		out[k], _ = x.(string)
	}
	return out
}

// An Input is a task whose context reaches a join.
type Input struct {
	TaskID    string            `json:"task_id"`
	Step      string            `json:"step"`
	Attempt   int               `json:"attempt"`
	Index     []int             `json:"index,omitempty"`
	Input     string            `json:"input,omitempty"` // its foreach element
	Artifacts map[string]string `json:"artifacts"`
}

// A TaskResult is what running a task gave.
type TaskResult struct {
	OK        bool              `json:"ok"`
	Artifacts map[string]string `json:"artifacts,omitempty"` // every artifact of the task's ctx: name -> blob
	Next      []string          `json:"next,omitempty"`      // the steps next_step named
	Foreach   []string          `json:"foreach"`             // blobs of the elements when it fanned out (non-nil, maybe empty), else nil
	Logs      string            `json:"logs,omitempty"`      // blob of what the task printed
	Error     string            `json:"error,omitempty"`     // with the Starlark backtrace
}

// An Executor runs tasks. Execute returns an error only when the task
// could not be run at all; a task that ran and failed gives a result that
// is not OK. print receives each line the task prints, as it does.
type Executor interface {
	Execute(ctx context.Context, spec *TaskSpec, print func(line string)) (*TaskResult, error)
}

// A TimeoutKeeper is an Executor that stops each task at its step's
// timeout itself, counting from when the task starts to run rather than
// from the call to Execute, as an executor whose tasks may first wait a
// long time for a place to run (a pod for a node, or for its image) must:
// the scheduler then sets no deadline of its own on Execute.
type TimeoutKeeper interface {
	Executor
	KeepsTimeouts()
}

// An EventKind says what happened.
type EventKind string

// The kinds of event a run reports, in the order they happen.
const (
	RunStarted  EventKind = "run_started"
	SetupOutput EventKind = "setup_output" // a line printed by the flow's top-level code
	TaskStarted EventKind = "task_started"
	TaskOutput  EventKind = "task_output" // a line printed by a task
	// TaskWaiting: the executor says why a task that started does not
	// run yet, in Line, such as a pod no node can take; "" once it runs.
	TaskWaiting  EventKind = "task_waiting"
	TaskFinished EventKind = "task_finished"
	TaskRetrying EventKind = "task_retrying"
	RunFinished  EventKind = "run_finished"
)

// An Event is something that happened in a run. Run reports events one at
// a time, in order.
type Event struct {
	Kind     EventKind     `json:"event"`
	Time     time.Time     `json:"time"`
	RunID    string        `json:"run_id"`
	Step     string        `json:"step,omitempty"`
	TaskID   string        `json:"task_id,omitempty"`
	Attempt  int           `json:"attempt,omitempty"`
	Line     string        `json:"line,omitempty"`
	Status   string        `json:"status,omitempty"` // succeeded, failed, cancelled, reused (copied from the run a resumed run resumes), or caught: failed, with its error in the catch artifact
	Duration time.Duration `json:"duration_ns,omitempty"`
	Error    string        `json:"error,omitempty"`
}

// waitingKey is the context key of the function ReportWaiting calls.
type waitingKey struct{}

// ReportWaiting tells the run whose executor was given ctx for a task why
// the task does not run yet, or, with "", that it now runs: the run
// reports a TaskWaiting event. An executor calls it from Execute, or from
// goroutines that end before Execute returns.
func ReportWaiting(ctx context.Context, why string) {
	if report, ok := ctx.Value(waitingKey{}).(func(string)); ok {
		report(why)
	}
}
