package history

import (
	"encoding/json"
	"time"

	"github.com/daggerflow/dagger/store"
)

// The JSON form of the history. Every field is always there, whatever
// the run, so that tools need not tell a missing field from an empty
// one: strings that do not apply are empty, lists and objects empty, and
// times null while they are unknown. Times are in UTC, as the store
// returns them.

// RunJSON is a run, as "dagger runs --json" lists it.
type RunJSON struct {
	ID       string          `json:"id"`
	Flow     string          `json:"flow"`
	FlowPath string          `json:"flow_path"`
	Status   store.RunStatus `json:"status"`
	// Params holds the value of each param as JSON, not as a string of
	// JSON, as the store keeps it.
	Params  map[string]json.RawMessage `json:"params"`
	Origin  string                     `json:"origin"`
	Created time.Time                  `json:"created"`
	Ended   *time.Time                 `json:"ended"` // nil while the run is running
	Error   string                     `json:"error"`
	// Datastore is the URL of the datastore that keeps the run's blobs,
	// "" for the store.
	Datastore string `json:"datastore"`
}

// NewRunJSON returns r in its JSON form.
func NewRunJSON(r store.Run) RunJSON {
	params := make(map[string]json.RawMessage, len(r.Params))
	for name, v := range r.Params {
		params[name] = json.RawMessage(v)
	}
	return RunJSON{
		ID:        r.ID,
		Flow:      r.Flow,
		FlowPath:  r.FlowPath,
		Status:    r.Status,
		Params:    params,
		Origin:    r.Origin,
		Created:   r.Created,
		Ended:     optionalTime(r.Ended),
		Error:     r.Error,
		Datastore: r.Datastore,
	}
}

// RunDetailJSON is a run with a summary of each of its steps, as "dagger
// inspect --json RUN" shows it.
type RunDetailJSON struct {
	RunJSON
	Steps []StepJSON `json:"steps"` // in the order of Run.Steps
}

// StepJSON sums up the tasks of a step.
type StepJSON struct {
	Name     string                   `json:"name"`
	Tasks    int                      `json:"tasks"`    // how many started
	Statuses map[store.TaskStatus]int `json:"statuses"` // how many have each status
}

// NewRunDetailJSON returns r, with its steps, in its JSON form.
func NewRunDetailJSON(r *Run) RunDetailJSON {
	names := r.Steps()
	d := RunDetailJSON{RunJSON: NewRunJSON(r.Run), Steps: make([]StepJSON, len(names))}
	at := make(map[string]int, len(names)) // the index of each step in d.Steps
	for i, name := range names {
		d.Steps[i] = StepJSON{Name: name, Statuses: make(map[store.TaskStatus]int)}
		at[name] = i
	}
	// Every task's step is one of names: Steps names them all.
	for _, t := range r.tasks {
		s := &d.Steps[at[t.Step]]
		s.Tasks++
		s.Statuses[t.Status]++
	}
	return d
}

// TaskJSON is a task, as "dagger inspect --json" lists the tasks of a
// step.
type TaskJSON struct {
	RunID     string                `json:"run_id"`
	ID        string                `json:"id"`
	Step      string                `json:"step"`
	Index     []int                 `json:"index"`
	Status    store.TaskStatus      `json:"status"`
	Attempt   int                   `json:"attempt"`
	Started   *time.Time            `json:"started"`
	Ended     *time.Time            `json:"ended"`
	Parents   []string              `json:"parents"`
	Next      []string              `json:"next"`
	Foreach   int                   `json:"foreach"`
	Artifacts map[string]store.Hash `json:"artifacts"`
	Logs      store.Hash            `json:"logs"`
	Error     string                `json:"error"`
	Origin    string                `json:"origin"`
}

// NewTaskJSON returns t in its JSON form.
func NewTaskJSON(t store.Task) TaskJSON {
	return TaskJSON{
		RunID:     t.RunID,
		ID:        t.ID,
		Step:      t.Step,
		Index:     nonNil(t.Index),
		Status:    t.Status,
		Attempt:   t.Attempt,
		Started:   optionalTime(t.Started),
		Ended:     optionalTime(t.Ended),
		Parents:   nonNil(t.Parents),
		Next:      nonNil(t.Next),
		Foreach:   t.ForeachLen,
		Artifacts: nonNilMap(t.Artifacts),
		Logs:      t.Logs,
		Error:     t.Error,
		Origin:    t.Origin,
	}
}

// StepTasksJSON is tasks of a step, as "dagger inspect --json RUN/STEP"
// shows them.
type StepTasksJSON struct {
	RunID string     `json:"run_id"`
	Step  string     `json:"step"`
	Tasks []TaskJSON `json:"tasks"`
}

// NewStepTasksJSON returns tasks, of step of run runID, in their JSON
// form, in the order given.
func NewStepTasksJSON(runID, step string, tasks []store.Task) StepTasksJSON {
	list := make([]TaskJSON, len(tasks))
	for i, t := range tasks {
		list[i] = NewTaskJSON(t)
	}
	return StepTasksJSON{RunID: runID, Step: step, Tasks: list}
}

// TaskDetailJSON is one task with its attempts, as "dagger inspect --json
// RUN/STEP/TASK" shows it.
type TaskDetailJSON struct {
	TaskJSON
	Attempts []AttemptJSON `json:"attempts"` // first attempt first
}

// AttemptJSON is an attempt at a task.
type AttemptJSON struct {
	N       int              `json:"n"`
	Status  store.TaskStatus `json:"status"`
	Started *time.Time       `json:"started"`
	Ended   *time.Time       `json:"ended"`
	Error   string           `json:"error"`
	Logs    store.Hash       `json:"logs"`
}

// NewTaskDetailJSON returns t, with its attempts, in its JSON form.
func NewTaskDetailJSON(t store.Task, attempts []store.Attempt) TaskDetailJSON {
	d := TaskDetailJSON{TaskJSON: NewTaskJSON(t), Attempts: make([]AttemptJSON, len(attempts))}
	for i, a := range attempts {
		d.Attempts[i] = NewAttemptJSON(a)
	}
	return d
}

// NewAttemptJSON returns a in its JSON form.
func NewAttemptJSON(a store.Attempt) AttemptJSON {
	return AttemptJSON{N: a.N, Status: a.Status, Started: optionalTime(a.Started), Ended: optionalTime(a.Ended), Error: a.Error, Logs: a.Logs}
}

// optionalTime returns nil for the zero time, which JSON writes as null.
func optionalTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// nonNil returns s, or an empty slice, which JSON writes as [], not null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// nonNilMap returns m, or an empty map, which JSON writes as {}, not null.
func nonNilMap[K comparable, V any](m map[K]V) map[K]V {
	if m == nil {
		return map[K]V{}
	}
	return m
}
