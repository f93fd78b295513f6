package ui

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/daggerflow/dagger/dag"
	"github.com/daggerflow/dagger/history"
	"github.com/daggerflow/dagger/store"
)

// StepStats sums up the tasks of a step, for the page of a run.
type StepStats struct {
	Name     string                   `json:"name"`
	Tasks    int                      `json:"tasks"`    // how many started
	Statuses map[store.TaskStatus]int `json:"statuses"` // how many have each status
	// Caught is how many of those succeeded kept a failure their catch
	// option took.
	Caught int `json:"caught"`
	// Retries is how many attempts were made after the first, over all
	// the step's tasks.
	Retries int `json:"retries"`
	// Expected is, for the step a foreach fans out to, how many tasks the
	// fan-outs so far asked for: with Tasks, the progress of the foreach.
	// 0 for other steps.
	Expected int `json:"expected"`
	// FanOut is how many tasks the step's tasks fanned out to.
	FanOut int `json:"fanout"`
	// Duration sums up how long the tasks that ended took, in
	// nanoseconds; null if none has.
	Duration *Durations `json:"duration_ns"`
}

// Durations are the shortest, median, 95th percentile and longest of
// durations, in nanoseconds.
type Durations struct {
	Min    time.Duration `json:"min"`
	Median time.Duration `json:"median"`
	P95    time.Duration `json:"p95"`
	Max    time.Duration `json:"max"`
}

// RunStats is what /api/stats/RUN serves: the run's record, as
// /api/runs lists it, read before the statistics of its steps, so that a
// run seen ended has all its tasks counted.
type RunStats struct {
	RunID string          `json:"run_id"`
	Run   history.RunJSON `json:"run"`
	Steps []StepStats     `json:"steps"` // in the order of history.Run.Steps
}

// stats serves /api/stats/RUN.
func (s *Server) stats(w http.ResponseWriter, r *http.Request) {
	run, err := s.loadRun(r.Context(), r.PathValue("run"))
	if err != nil {
		writeError(w, err)
		return
	}
	steps, err := s.stepStats(r.Context(), run)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, RunStats{RunID: run.ID, Run: history.NewRunJSON(run.Run), Steps: steps})
}

// stepStats sums up each step of run in one pass over its tasks, reading
// a few columns of each: the durations of the tasks that ended, a number
// each, are all it keeps. Steps come in the order of the flow, then those
// of tasks that are not the flow's.
func (s *Server) stepStats(ctx context.Context, run *history.Run) ([]StepStats, error) {
	names := run.Steps() // of the flow alone: a head has no tasks
	at := make(map[string]int, len(names))
	steps := make([]StepStats, len(names))
	durations := make([][]time.Duration, len(names))
	for i, name := range names {
		at[name] = i
		steps[i] = StepStats{Name: name, Statuses: map[store.TaskStatus]int{}}
	}
	err := s.st.TaskStates(ctx, run.ID, func(t store.TaskState) error {
		i, ok := at[t.Step]
		if !ok {
			i = len(steps)
			at[t.Step] = i
			steps = append(steps, StepStats{Name: t.Step, Statuses: map[store.TaskStatus]int{}})
			durations = append(durations, nil)
		}
		st := &steps[i]
		st.Tasks++
		st.Statuses[t.Status]++
		st.Retries += max(t.Attempt-1, 0)
		st.FanOut += t.ForeachLen
		if t.Caught {
			st.Caught++
		}
		if !t.Ended.IsZero() && !t.Started.IsZero() && t.Status != store.TaskReused {
			durations[i] = append(durations[i], t.Ended.Sub(t.Started))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i := range steps {
		steps[i].Duration = summarize(durations[i])
	}
	if g, err := run.Graph(ctx); err == nil {
		addExpected(steps, at, g)
	}
	return steps, nil
}

// addExpected sets the Expected of each step a foreach of g fans out to.
func addExpected(steps []StepStats, at map[string]int, g *dag.Graph) {
	for _, s := range g.Steps {
		if s.Next == nil || s.Next.Kind != dag.Foreach {
			continue
		}
		from, ok := at[s.Name]
		if !ok {
			continue
		}
		for _, target := range s.Next.Names() {
			if to, ok := at[target]; ok {
				steps[to].Expected += steps[from].FanOut
			}
		}
	}
}

// summarize returns the Durations of ds, nil for none. It sorts ds.
func summarize(ds []time.Duration) *Durations {
	if len(ds) == 0 {
		return nil
	}
	slices.Sort(ds)
	// The nearest rank: the smallest duration that at least p of them
	// do not exceed.
	rank := func(p float64) time.Duration {
		i := int(p*float64(len(ds))+0.999999) - 1
		return ds[min(max(i, 0), len(ds)-1)]
	}
	return &Durations{Min: ds[0], Median: rank(0.5), P95: rank(0.95), Max: ds[len(ds)-1]}
}
