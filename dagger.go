package dagger

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/daggerflow/dagger/builtins"
	"github.com/daggerflow/dagger/dag"
	"github.com/daggerflow/dagger/datastore"
	"github.com/daggerflow/dagger/exec"
	"github.com/daggerflow/dagger/starlark"
	"github.com/daggerflow/dagger/store"
)

// A Flow is a flow that passed every static check against the builtins it
// was loaded with: ready to run, none of its code run yet.
type Flow struct {
	f *starlark.Flow
}

// Load reads the flow file at path and the modules it loads, and checks
// them against the builtins of set (builtins.Standard() if nil), running
// none of their code. The flow keeps a copy of set: adding to set later
// does not change it.
//
// An invalid flow gives a dag.ErrorList, every problem with its
// file:line:col; a file that cannot be read gives an ordinary error.
func Load(path string, set *builtins.Set) (*Flow, error) {
	f, err := starlark.Load(path, orStandard(set))
	if err != nil {
		return nil, err
	}
	return &Flow{f}, nil
}

// LoadFS is Load for the flow file called name in fsys, such as an
// embed.FS; the modules it loads are read from fsys too, and errors name
// files by their names in fsys.
func LoadFS(fsys fs.FS, name string, set *builtins.Set) (*Flow, error) {
	f, err := starlark.LoadFS(fsys, name, orStandard(set))
	if err != nil {
		return nil, err
	}
	return &Flow{f}, nil
}

// LoadCode loads the flow that run r ran from the code it saved, with the
// builtins of set: for a run whose flow file has moved or is gone, which
// dagger resume runs with the code it ran. The flow keeps r's path.
func LoadCode(ctx context.Context, st *store.Store, r store.Run, set *builtins.Set) (*Flow, error) {
	blobs := st.Blobs()
	if r.Datastore != "" {
		ds, err := datastore.Open(ctx, r.Datastore)
		if err != nil {
			return nil, err
		}
		defer ds.Close()
		blobs = ds
	}
	data, err := blobs.Get(ctx, r.CodeHash)
	if err != nil {
		return nil, fmt.Errorf("reading the code of run %s: %w", r.ID, err)
	}
	pkg, err := starlark.DecodePackage(data)
	if err != nil {
		return nil, fmt.Errorf("the code of run %s: %w", r.ID, err)
	}
	f, err := starlark.LoadPackageAt(pkg, r.FlowPath, orStandard(set))
	if err != nil {
		return nil, err
	}
	return &Flow{f}, nil
}

func orStandard(set *builtins.Set) *builtins.Set {
	if set == nil {
		return builtins.Standard()
	}
	return set
}

// Name returns the flow's name: its file's name without ".star".
func (f *Flow) Name() string { return f.f.Graph.Name }

// Path returns the flow file's path as errors and backtraces name it.
func (f *Flow) Path() string { return f.f.Path() }

// Graph returns the flow's steps, transitions, params and options, as read
// from its source. The caller must not change it.
func (f *Flow) Graph() *dag.Graph { return f.f.Graph }

// Params returns the flow's params, in source order.
func (f *Flow) Params() []*dag.Param { return f.f.Graph.Params }

// Builtins returns the builtins the flow was loaded with.
func (f *Flow) Builtins() *builtins.Set { return f.f.Builtins() }

// CheckParams checks param values given for a run of the flow, as text
// from a command line (JSON for lists and dicts), without running
// anything. A bad value, a value for a param the flow does not have, or a
// required param without one, gives an *InvalidError with every problem.
func (f *Flow) CheckParams(given map[string]string) error {
	if _, err := exec.ParamValues(f.f.Graph, given); err != nil {
		return &InvalidError{Problems: strings.Split(err.Error(), "\n")}
	}
	return nil
}

// An InvalidError is a request that cannot start a run: bad param values,
// or a resumption that does not fit the run it resumes. No run was
// recorded.
type InvalidError struct {
	Problems []string // one sentence each, saying what to do
}

func (e *InvalidError) Error() string { return strings.Join(e.Problems, "\n") }

// Options configure a run.
type Options struct {
	// Params are the param values given for the run, as text from a
	// command line: see Flow.CheckParams.
	Params map[string]string
	// MaxWorkers is how many tasks run at once; 0 means one per CPU.
	MaxWorkers int
	// Executor runs the tasks; nil runs them in this process.
	Executor exec.Executor
	// MaxSteps bounds the Starlark execution steps of each task; 0 for no
	// limit.
	MaxSteps uint64
	// Datastore is the URL of the datastore that keeps the run's blobs,
	// its code, artifacts, foreach elements and logs: s3://, gs://,
	// azblob:// or file:// (see package datastore). "" keeps them in the
	// store, or, for an Executor that runs tasks outside this process, in
	// a file datastore in the store's folder, since a task runner never
	// opens the store. A resumed run keeps the datastore of its origin.
	Datastore string
	// Allow grants the run capabilities: a step that declares one (with
	// its allow option) that Allow does not cover makes Run refuse the
	// flow before anything runs. A step still uses only what it declared.
	Allow []dag.Capability
	// ExecutorSettings, if set, are recorded with the run (see
	// store.Run.Executor), for a program that resumes it to run its tasks
	// the same way.
	ExecutorSettings string
	// OnEvent, if set, is called with every event of the run, one call at
	// a time, in the order things happened. A task that has something to
	// report waits while OnEvent runs, so a slow OnEvent slows the run
	// down but never reorders or loses events. OnEvent must not call into
	// the run. The lines a task prints come in batches, within 50 ms of
	// their printing in process (see exec.Options.OnEvent).
	OnEvent func(Event)
}

// Event is something that happened in a run; see exec.Event.
type Event = exec.Event

// EventKind says what happened; see exec.EventKind.
type EventKind = exec.EventKind

// The kinds of event a run reports.
const (
	RunStarted   = exec.RunStarted
	SetupOutput  = exec.SetupOutput
	TaskStarted  = exec.TaskStarted
	TaskWaiting  = exec.TaskWaiting
	TaskOutput   = exec.TaskOutput
	TaskFinished = exec.TaskFinished
	TaskRetrying = exec.TaskRetrying
	RunFinished  = exec.RunFinished
)

// CheckGrants returns an *InvalidError naming each step that declares a
// capability that granted does not cover, or nil if granted covers every
// step.
func (f *Flow) CheckGrants(granted []dag.Capability) error {
	missing := f.f.Graph.Ungranted(granted)
	if len(missing) == 0 {
		return nil
	}
	var problems []string
	for _, s := range f.f.Graph.Steps {
		if c, ok := missing[s.Name]; ok {
			problems = append(problems, fmt.Sprintf("step %s needs the capability %s, which the run does not grant", s.Name, c))
		}
	}
	return &InvalidError{Problems: problems}
}

// A RunError reports a run that failed or was cancelled.
type RunError = exec.RunError

// Run runs flow from start to finish, recording the run, its tasks and
// their artifacts in st, and returns the run's record. Param values are
// checked first: bad ones give an *InvalidError, and nothing is recorded.
// A task that fails, or ctx cancelled, gives a *RunError; the tasks that
// finished stay recorded either way, and the run can be resumed.
func Run(ctx context.Context, st *store.Store, flow *Flow, opts Options) (store.Run, error) {
	if err := flow.CheckParams(opts.Params); err != nil {
		return store.Run{}, err
	}
	return run(ctx, st, flow, opts, nil)
}

// run runs flow with the blobs of opts.Datastore, which it opens and
// closes, and resume, if not nil.
func run(ctx context.Context, st *store.Store, flow *Flow, opts Options, resume *exec.Resume) (store.Run, error) {
	if err := flow.CheckGrants(opts.Allow); err != nil {
		return store.Run{}, err
	}
	eo := exec.Options{
		Params:     opts.Params,
		MaxWorkers: opts.MaxWorkers,
		Executor:   opts.Executor,
		MaxSteps:   opts.MaxSteps,
		OnEvent:    opts.OnEvent,
		Resume:     resume,
		Datastore:  opts.Datastore,

		ExecutorSettings: opts.ExecutorSettings,
	}
	if eo.Datastore == "" && eo.Executor != nil {
		var err error
		if eo.Datastore, err = st.LocalDatastore(); err != nil {
			return store.Run{}, err
		}
	}
	if eo.Datastore != "" {
		ds, err := datastore.Open(ctx, eo.Datastore)
		if err != nil {
			return store.Run{}, err
		}
		defer ds.Close()
		eo.Blobs, eo.Datastore = ds, ds.URL()
	}
	r, err := exec.Run(ctx, st, flow.f, eo)
	if errors.Is(err, exec.ErrDatastoreChanged) {
		// Checked where the run is made; refused before it is.
		return store.Run{}, &InvalidError{Problems: []string{err.Error()}}
	}
	return r, err
}

// Resume starts a new run of flow that resumes origin, a run of it that
// failed or was cancelled: every task that succeeded in origin, and whose
// parents were copied too, is copied instead of run, and the rest runs
// with flow's code. from, if not "", is a step that runs again with every
// step after it, even where origin's tasks succeeded; with from, origin
// may have succeeded too. With opts.Params nil, the run takes origin's
// param values.
//
// The resumed run keeps its blobs where origin does. A succeeded origin
// without from, a from the flow does not have, param values that no
// longer fit the flow, or a datastore other than origin's give an
// *InvalidError, and nothing is recorded. See exec.Resume for what is
// copied and why.
func Resume(ctx context.Context, st *store.Store, flow *Flow, origin store.Run, from string, opts Options) (store.Run, error) {
	g := flow.f.Graph
	switch {
	case origin.Status == store.RunSucceeded && from == "":
		return store.Run{}, &InvalidError{Problems: []string{fmt.Sprintf("run %s succeeded: there is nothing to resume; name a step to run again, and those after it, with from", origin.ID)}}
	case from != "" && g.Step(from) == nil:
		return store.Run{}, &InvalidError{Problems: []string{fmt.Sprintf("flow %s has no step %s", g.Name, from)}}
	}
	if opts.Params == nil {
		given, err := exec.ParamsFromRecord(g, origin.Params)
		if err == nil {
			err = flow.CheckParams(given)
		}
		var invalid *InvalidError
		if errors.As(err, &invalid) {
			return store.Run{}, &InvalidError{Problems: append([]string{fmt.Sprintf("the params of run %s no longer fit %s:", origin.ID, flow.Path())}, invalid.Problems...)}
		}
		if err != nil {
			return store.Run{}, &InvalidError{Problems: []string{fmt.Sprintf("the params of run %s: %v", origin.ID, err)}}
		}
		opts.Params = given
	} else if err := flow.CheckParams(opts.Params); err != nil {
		return store.Run{}, err
	}
	switch {
	case opts.Datastore == "" && origin.Datastore == "" && opts.Executor != nil:
		return store.Run{}, &InvalidError{Problems: []string{fmt.Sprintf("run %s kept its blobs in the store, which task runners in other processes never open: resume it with the in-process executor", origin.ID)}}
	case opts.Datastore == "":
		opts.Datastore = origin.Datastore
	}
	return run(ctx, st, flow, opts, &exec.Resume{Origin: origin, From: from})
}

// ProcessExecutor returns an executor that runs each task in a subprocess
// of its own: this very executable, started as "EXE step", which reads the
// task on its standard input and runs it with its own builtins. The
// program must answer to that command line, as package cli's Main does,
// and must have the builtins the flow was loaded with.
func ProcessExecutor() (exec.Executor, error) {
	if exec.IsTaskRunner() {
		// The program ran its flow where it should have run one task: it
		// would start itself again, and again.
		return nil, errors.New("this program was started to run one task, as \"step\", but runs a flow: its main must hand a command line starting with step to cli.Main")
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding this executable to run tasks in: %w", err)
	}
	return &exec.Process{Command: []string{exe, "step"}}, nil
}
