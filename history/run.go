package history

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"

	sl "go.starlark.net/starlark"

	"github.com/daggerflow/dagger/dag"
	"github.com/daggerflow/dagger/datastore"
	"github.com/daggerflow/dagger/starlark"
	"github.com/daggerflow/dagger/store"
)

// Open opens the store in dir to read its history. Unlike store.Open, it
// does not create a store that is not there: looking at runs must not
// leave an empty store behind wherever it looked. Nor does it write to
// one that is, so that a store on a read-only file system, or another
// user's, can be read; only a store that an older dagger wrote is opened
// for writing, to upgrade it. A directory without a store is an error
// that wraps ErrNoStore. The caller closes the store.
func Open(ctx context.Context, dir string) (*store.Store, error) {
	st, err := store.OpenReadOnly(ctx, dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, lookupErrorf(ErrNoStore, "there is no store in %s", dir)
	case errors.Is(err, store.ErrOldSchema):
		return store.Open(ctx, dir)
	}
	return st, err
}

// OpenExisting opens the store in dir for reading and writing, as
// store.Open does, but only if there is one: a directory without a store
// is an error that wraps ErrNoStore, and is left as it is. Commands that
// write to a store that must be there, as dagger resume does, open it so.
func OpenExisting(ctx context.Context, dir string) (*store.Store, error) {
	if _, err := os.Stat(filepath.Join(dir, "meta.db")); errors.Is(err, fs.ErrNotExist) {
		return nil, lookupErrorf(ErrNoStore, "there is no store in %s", dir)
	}
	return store.Open(ctx, dir)
}

// A Run is a run as the store recorded it when it was read: the run's
// record, and the records of its tasks. Reload reads it again. Its blobs
// are where the run kept them, in the store or in a datastore, which Load
// opens to read the flow's code, and Close closes. A Run is not safe for
// concurrent use.
type Run struct {
	store.Run
	st    *store.Store
	blobs store.Blobs          // nil until first needed
	ds    *datastore.Datastore // the datastore blobs is, if it is one
	tasks []store.Task         // in the order they started
	// flowSteps are the steps of the flow, in source order, as the code
	// the run saved defines them; nil if that code cannot be read.
	flowSteps []string
}

// Load reads the run that ref identifies, and its tasks, from st, and
// opens the run's datastore, if it has one: the caller calls Close. ref is
// "latest", a run ID, or a prefix that no other run ID starts with. A run
// that is not there, or a prefix several runs share, is an error that
// wraps ErrNotFound or ErrAmbiguous, worded by the store.
func Load(ctx context.Context, st *store.Store, ref string) (*Run, error) {
	rec, err := st.Run(ctx, ref)
	if err != nil {
		return nil, err
	}
	tasks, err := st.Tasks(ctx, rec.ID)
	if err != nil {
		return nil, err
	}
	r := &Run{Run: rec, st: st, tasks: tasks}
	r.flowSteps = r.readFlowSteps(ctx)
	return r, nil
}

// Blobs returns the blobs of the run: the store's own, or those of the
// datastore the run recorded, opened by the first call. The datastore's
// credentials come from the environment, as for any of its clients.
func (r *Run) Blobs(ctx context.Context) (store.Blobs, error) {
	if r.blobs != nil {
		return r.blobs, nil
	}
	if r.Datastore == "" {
		r.blobs = r.st.Blobs()
		return r.blobs, nil
	}
	ds, err := datastore.Open(ctx, r.Datastore)
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", r.ID, err)
	}
	r.blobs, r.ds = ds, ds
	return r.blobs, nil
}

// Close closes the run's datastore, if Blobs opened one. The store stays
// open.
func (r *Run) Close() error {
	if r.ds == nil {
		return nil
	}
	ds := r.ds
	r.ds, r.blobs = nil, nil
	return ds.Close()
}

// Reload reads the run and its tasks again, as they are now, for a run
// that was running. The flow's steps cannot change, and are not read
// again.
func (r *Run) Reload(ctx context.Context) error {
	rec, err := r.st.Run(ctx, r.ID)
	if err != nil {
		return err
	}
	tasks, err := r.st.Tasks(ctx, rec.ID)
	if err != nil {
		return err
	}
	r.Run, r.tasks = rec, tasks
	return nil
}

// readFlowSteps returns the names of the steps of the flow that run r
// ran, in source order, read from the code the run saved, without running
// or checking any of it; nil if the code cannot be read. The order of the
// source is the one people know the flow by, and it names the steps that
// have not run too. Without it, the tasks' order does.
func (r *Run) readFlowSteps(ctx context.Context) []string {
	blobs, err := r.Blobs(ctx)
	if err != nil {
		return nil
	}
	data, err := blobs.Get(ctx, r.CodeHash)
	if err != nil {
		return nil
	}
	pkg, err := starlark.DecodePackage(data)
	if err != nil {
		return nil
	}
	f, err := dag.Parse(pkg.Flow, pkg.Files[pkg.Flow])
	if err != nil {
		return nil
	}
	// Extract returns the graph as far as it can read it, even with
	// errors, which were the run's concern, not the reader's.
	g, _ := dag.Extract(f, func(string) bool { return false })
	names := make([]string, len(g.Steps))
	for i, s := range g.Steps {
		names[i] = s.Name
	}
	return names
}

// Tasks returns every task of the run, in the order they started. The
// caller must not modify the slice.
func (r *Run) Tasks() []store.Task { return r.tasks }

// Steps returns the names of the run's steps: those of the flow, in
// source order, then those of tasks that are not the flow's, in the order
// they started.
func (r *Run) Steps() []string {
	names := slices.Clone(r.flowSteps)
	for _, t := range r.tasks {
		if !slices.Contains(names, t.Step) {
			names = append(names, t.Step)
		}
	}
	return names
}

// StepTasks returns the tasks of step, in the order they started: none
// for a step that has not run. A step the run does not have is an error
// that wraps ErrNoStep and names those it has.
func (r *Run) StepTasks(step string) ([]store.Task, error) {
	steps := r.Steps()
	if !slices.Contains(steps, step) {
		return nil, lookupErrorf(ErrNoStep, "run %s has no step %s; steps: %s", r.ID, step, listNames(steps))
	}
	var tasks []store.Task
	for _, t := range r.tasks {
		if t.Step == step {
			tasks = append(tasks, t)
		}
	}
	return tasks, nil
}

// Find returns the tasks that p names, in the order they started: every
// task of the run for a path without a step, else those of p.Step whose
// foreach index starts with p.Index. p.Run is taken to be r, and
// p.Artifact is ignored. A step the run does not have is an error that
// wraps ErrNoStep; an index that no task of the step has, one that wraps
// ErrNoTask. A step that has not run, with no index, has no tasks and no
// error: they may yet start.
func (r *Run) Find(p Path) ([]store.Task, error) {
	if p.Step == "" {
		return slices.Clone(r.tasks), nil
	}
	tasks, err := r.StepTasks(p.Step)
	if err != nil {
		return nil, err
	}
	matches := withIndex(tasks, p.Index)
	if len(matches) == 0 && len(p.Index) > 0 {
		return nil, r.noTaskError(p, tasks)
	}
	return matches, nil
}

// Task returns the one task that p names: the task of p.Step whose
// foreach index is p.Index. p.Run is taken to be r. A step the run does
// not have is an error that wraps ErrNoStep; a step that has not run, or
// an index that no task of the step has, one that wraps ErrNoTask; and an
// index that only starts the index of the tasks it names, one that wraps
// ErrAmbiguous, with the path of one of them, p.Artifact included, for
// an example.
func (r *Run) Task(p Path) (store.Task, error) {
	if p.Step == "" {
		return store.Task{}, lookupErrorf(ErrNoTask, "%s names run %s, not a task", p, r.ID)
	}
	tasks, err := r.StepTasks(p.Step)
	if err != nil {
		return store.Task{}, err
	}
	if len(tasks) == 0 {
		return store.Task{}, lookupErrorf(ErrNoTask, "step %s of run %s has no tasks: it has not run", p.Step, r.ID)
	}
	matches := ByIndex(withIndex(tasks, p.Index))
	switch {
	case len(matches) == 0:
		return store.Task{}, r.noTaskError(p, tasks)
	case len(matches) == 1 && len(matches[0].Index) == len(p.Index):
		return matches[0], nil
	}
	first := matches[0]
	example := Path{Run: r.ID, Step: first.Step, Index: first.Index, Artifact: p.Artifact}
	n := "1 task"
	if len(matches) > 1 {
		n = fmt.Sprintf("%d tasks", len(matches))
	}
	return store.Task{}, lookupErrorf(ErrAmbiguous, "run %s has %s of %s: name one by its foreach index, as %s", r.ID, n, p.TaskID(), example)
}

// noTaskError reports that no task of p's step, whose tasks are tasks,
// has p's index.
func (r *Run) noTaskError(p Path, tasks []store.Task) error {
	if len(tasks) == 1 && len(tasks[0].Index) == 0 {
		// An index where none is wanted: say how the task is named.
		return lookupErrorf(ErrNoTask, "run %s has no task %s: step %s is outside any foreach, and its one task is %s", r.ID, p.TaskID(), p.Step, Path{Run: r.ID, Step: p.Step})
	}
	ids := make([]string, len(tasks))
	for i, t := range ByIndex(tasks) {
		ids[i] = t.ID
	}
	return lookupErrorf(ErrNoTask, "run %s has no task %s; tasks of %s: %s", r.ID, p.TaskID(), p.Step, listNames(ids))
}

// withIndex returns the tasks whose foreach index starts with index.
func withIndex(tasks []store.Task, index []int) []store.Task {
	var out []store.Task
	for _, t := range tasks {
		if len(t.Index) >= len(index) && slices.Equal(t.Index[:len(index)], index) {
			out = append(out, t)
		}
	}
	return out
}

// ByIndex returns tasks sorted by their foreach index, in a new slice:
// the order of the elements they ran for, which is how people count them,
// where the order they started in is the scheduler's choice. Tasks of
// the same index keep their order.
func ByIndex(tasks []store.Task) []store.Task {
	return slices.SortedStableFunc(slices.Values(tasks), func(a, b store.Task) int {
		return slices.Compare(a.Index, b.Index)
	})
}

// Artifact returns the value of artifact name of task t of the run, read
// from the run's blobs and decoded. An artifact the task does not have is
// an error that wraps ErrNoArtifact and names those it has.
func (r *Run) Artifact(ctx context.Context, t store.Task, name string) (sl.Value, error) {
	h, ok := t.Artifacts[name]
	if !ok {
		names := slices.Sorted(maps.Keys(t.Artifacts))
		return nil, lookupErrorf(ErrNoArtifact, "task %s of run %s has no artifact %s; artifacts: %s", t.ID, t.RunID, name, listNames(names))
	}
	blobs, err := r.Blobs(ctx)
	if err != nil {
		return nil, err
	}
	data, err := blobs.Get(ctx, h)
	if err != nil {
		return nil, fmt.Errorf("artifact %s of task %s: %w", name, t.ID, err)
	}
	v, err := starlark.Decode(data)
	if err != nil {
		return nil, fmt.Errorf("artifact %s of task %s: %w", name, t.ID, err)
	}
	return v, nil
}
