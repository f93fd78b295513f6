package exec

import (
	"context"
	"time"
)

// A TaskSpec is everything needed to run one task, wherever it runs: the
// code and the blobs it reads come from the store, the rest is here.
type TaskSpec struct {
	RunID   string            `json:"run_id"`
	Code    string            `json:"code"`             // blob of the flow's code package
	Dir     string            `json:"dir,omitempty"`    // folder prefix of file names in backtraces
	Store   string            `json:"store"`            // where the blobs are
	Params  map[string]string `json:"params,omitempty"` // values given for the run, as on the command line
	Step    string            `json:"step"`
	TaskID  string            `json:"task_id"`
	Attempt int               `json:"attempt"`
	Index   []int             `json:"index,omitempty"` // foreach indices, outermost first
	Input   string            `json:"input,omitempty"` // blob of the foreach element, at a foreach's step
	// Artifacts are what ctx starts with: name -> blob.
	Artifacts map[string]string `json:"artifacts,omitempty"`
	// Conflicts are the artifacts the inputs of a join disagree on, with
	// how they do.
	Conflicts map[string]string `json:"conflicts,omitempty"`
	// Inputs are the tasks that meet at a join, in order.
	Inputs   []Input `json:"inputs,omitempty"`
	MaxSteps uint64  `json:"max_steps,omitempty"` // Starlark execution steps allowed; 0 for no limit
	// Timeout is the step's timeout option; the executor stops the task
	// when it runs out. 0 for none.
	Timeout time.Duration `json:"timeout_ns,omitempty"`
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

// An EventKind says what happened.
type EventKind string

// The kinds of event a run reports, in the order they happen.
const (
	RunStarted   EventKind = "run_started"
	SetupOutput  EventKind = "setup_output" // a line printed by the flow's top-level code
	TaskStarted  EventKind = "task_started"
	TaskOutput   EventKind = "task_output" // a line printed by a task
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
