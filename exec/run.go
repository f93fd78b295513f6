package exec

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sl "go.starlark.net/starlark"

	"github.com/daggerflow/dagger/dag"
	"github.com/daggerflow/dagger/history"
	"github.com/daggerflow/dagger/starlark"
	"github.com/daggerflow/dagger/store"
)

// Options configure a run.
type Options struct {
	// Params are the param values given for the run, as text from the
	// command line; ParamValues checks them.
	Params map[string]string
	// MaxWorkers is how many tasks run at once; 0 means one per CPU.
	MaxWorkers int
	// Executor runs the tasks; nil runs them in this process.
	Executor Executor
	// MaxSteps bounds the Starlark execution steps of each task; 0 for no
	// limit.
	MaxSteps uint64
	// OnEvent, if set, is called with every event of the run, one call
	// at a time, in the order things happened. Whatever reports an event,
	// the scheduler or a task whose printed lines are due, waits while
	// OnEvent runs: a slow OnEvent slows the run down, and never reorders
	// or drops events. A consumer that must not slow the run copies events
	// into a queue of its own.
	//
	// The lines a task prints come in batches, a TaskOutput event each,
	// within 50 ms of their printing in process (up to 50 ms more from a
	// runner in a subprocess or pod, which batches them too), and before
	// the task's next event; the events of a batch share their Time, when
	// it was reported.
	OnEvent func(Event)
	// Resume, if set, makes the run a resumption of an earlier one; with
	// Params nil, it runs with the param values of that run.
	Resume *Resume
	// Blobs, if set, holds the run's blobs: its code, artifacts, foreach
	// elements and logs; nil means the store's own. Datastore is its URL,
	// recorded with the run and given to every task runner, which opens it
	// itself; an executor that runs tasks outside this process needs one.
	Blobs     store.Blobs
	Datastore string
	// ExecutorSettings are recorded with the run, as store.Run.Executor,
	// for a program that resumes it to run its tasks the same way.
	ExecutorSettings string
}

// A Recorder is what a run needs of the store of run metadata:
// *store.Store is one.
type Recorder interface {
	CreateRun(ctx context.Context, r store.Run) (store.Run, error)
	FinishRun(ctx context.Context, id string, status store.RunStatus, errMsg string) error
	Run(ctx context.Context, ref string) (store.Run, error)
	Tasks(ctx context.Context, runID string) ([]store.Task, error)
	QueueStartTask(ctx context.Context, t store.Task) error
	CommitTask(ctx context.Context, t store.Task, a store.Attempt) error
	// Blobs returns the store's own blobs, for runs that have no
	// datastore.
	Blobs() store.Blobs
}

// A RunError reports a run that did not succeed.
type RunError struct {
	RunID  string
	Status store.RunStatus
	TaskID string // the task that failed, if one did
	Err    error
}

func (e *RunError) Error() string {
	if e.TaskID != "" {
		return fmt.Sprintf("run %s %s: task %s: %v", e.RunID, e.Status, e.TaskID, e.Err)
	}
	return fmt.Sprintf("run %s %s: %v", e.RunID, e.Status, e.Err)
}

func (e *RunError) Unwrap() error { return e.Err }

// Run runs flow from start to finish, recording the run and its tasks in
// st and their artifacts in opts.Blobs, and returns the run's record. The
// error is a *RunError when a task failed or ctx was cancelled; tasks that
// finished stay recorded either way. Cancelling ctx cancels the running
// tasks.
func Run(ctx context.Context, st Recorder, flow *starlark.Flow, opts Options) (store.Run, error) {
	if opts.Blobs == nil {
		if opts.Datastore != "" {
			return store.Run{}, fmt.Errorf("datastore %s is named but not open", opts.Datastore)
		}
		opts.Blobs = st.Blobs()
	}
	if opts.MaxWorkers <= 0 {
		opts.MaxWorkers = runtime.NumCPU()
	}
	g := flow.Graph
	if opts.Resume != nil && opts.Params == nil {
		p, err := ParamsFromRecord(g, opts.Resume.Origin.Params)
		if err != nil {
			return store.Run{}, err
		}
		opts.Params = p
	}
	values, err := ParamValues(g, opts.Params)
	if err != nil {
		return store.Run{}, err
	}
	params, err := ParamsJSON(g, values)
	if err != nil {
		return store.Run{}, err
	}
	code, err := opts.Blobs.Put(ctx, flow.Package.Encode())
	if err == nil && opts.Datastore != "" {
		// The store makes its own blobs durable with the records that
		// need them; a datastore's, before them.
		err = opts.Blobs.Sync(ctx)
	}
	if err != nil {
		return store.Run{}, fmt.Errorf("saving the flow's code: %w", err)
	}
	var resume *resumer
	origin := ""
	if opts.Resume != nil {
		// The tasks copied keep their blobs where the origin has them.
		if o := opts.Resume.Origin; o.Datastore != opts.Datastore {
			return store.Run{}, fmt.Errorf("run %s keeps its blobs in %s, not in %s: %w", o.ID, orLocal(o.Datastore), orLocal(opts.Datastore), ErrDatastoreChanged)
		}
		if resume, err = newResumer(ctx, st, g, opts.Resume); err != nil {
			return store.Run{}, err
		}
		origin = opts.Resume.Origin.ID
	}
	run, err := st.CreateRun(ctx, store.Run{Flow: g.Name, FlowPath: flow.File(), CodeHash: code, Params: params, Origin: origin, Datastore: opts.Datastore, Executor: opts.ExecutorSettings})
	if err != nil {
		return store.Run{}, err
	}
	s := &scheduler{
		ctx:       ctx,
		st:        st,
		flow:      flow,
		g:         g,
		opts:      opts,
		run:       run,
		code:      string(code),
		resume:    resume,
		joins:     make(map[string]*joinState),
		done:      make(chan *attempt),
		committed: make(chan *attempt),
		retry:     make(chan *pending),
		halt:      make(chan struct{}),
	}
	s.emit(Event{Kind: RunStarted})
	if ll, ok := st.(LiveLogger); ok {
		s.live = ll.LiveLog(run.ID)
	}
	var setup strings.Builder
	s.runner, err = NewRunner(ctx, flow, opts.Params, opts.Blobs, func(line string) {
		setup.WriteString(line + "\n")
		s.emit(Event{Kind: SetupOutput, Line: line})
	})
	if serr := s.recordSetup(setup.String()); serr != nil && err == nil {
		err = serr
	}
	if err != nil {
		if ctx.Err() != nil {
			// Interrupted while it set up: the run did not fail.
			return s.end(store.RunCancelled, "", err)
		}
		return s.end(store.RunFailed, "", err)
	}
	s.exec = opts.Executor
	if s.exec == nil {
		s.exec = s.runner
	}
	s.push(s.newPending("start", nil, "", nil, nil, nil))
	return s.loop()
}

// A LiveLogger is a Recorder that keeps what the running tasks of a run
// print as they print it, for other processes to follow. *store.Store is
// one.
type LiveLogger interface {
	LiveLog(runID string) *store.LiveLog
}

// A SetupRecorder is a Recorder that records, with a run, the blob of what
// the flow's top-level code printed. *store.Store is one.
type SetupRecorder interface {
	RecordSetup(ctx context.Context, runID string, logs store.Hash) error
}

// recordSetup records logs, what the flow's top-level code printed, with
// the run, if the store keeps it.
func (s *scheduler) recordSetup(logs string) error {
	lr, ok := s.st.(SetupRecorder)
	if !ok || logs == "" {
		return nil
	}
	ctx := context.WithoutCancel(s.ctx)
	h, err := s.opts.Blobs.Put(ctx, []byte(logs))
	if err == nil && s.opts.Datastore != "" {
		err = s.opts.Blobs.Sync(ctx)
	}
	if err == nil {
		err = lr.RecordSetup(ctx, s.run.ID, h)
	}
	if err != nil {
		return fmt.Errorf("recording the output of the top-level code: %w", err)
	}
	return nil
}

// ErrDatastoreChanged is wrapped by the error of a resumed run given a
// datastore other than its origin's: the tasks it copies keep their blobs
// where the origin has them.
var ErrDatastoreChanged = errors.New("a resumed run keeps them where its origin does")

// orLocal names a datastore for messages: its URL, or the store for "".
func orLocal(datastore string) string {
	if datastore == "" {
		return "the store"
	}
	return datastore
}

type scheduler struct {
	ctx    context.Context
	st     Recorder
	flow   *starlark.Flow
	g      *dag.Graph
	opts   Options
	run    store.Run
	code   string
	runner *Runner
	exec   Executor
	resume *resumer       // nil unless the run resumes another
	live   *store.LiveLog // nil unless the store keeps the output of running tasks

	ready      []readyItem
	running    int // tasks executing
	committing int // attempts being recorded
	waiting    int // retries waiting for their delay
	joins      map[string]*joinState
	done       chan *attempt // executed
	committed  chan *attempt // recorded durably
	retry      chan *pending
	failure    *RunError     // the first failure; nothing starts after it
	halt       chan struct{} // closed on the first failure
	finished   bool          // finish succeeded

	// lineBufs holds the slices of lines of the batches of attempts that
	// ended, for others (see lineBatch).
	lineBufs sync.Pool // of *[]string

	emitMu sync.Mutex
	// eventErr is the panic of OnEvent, which then gets no more events;
	// guarded by emitMu, and announced by eventFailed for the loop to
	// read without waiting for an OnEvent that is running.
	eventErr    error
	eventFailed atomic.Bool
}

// A pending task is ready to run, or to run again.
type pending struct {
	spec    *TaskSpec
	parents []string
	fans    []fan // the fan-outs open around the task, outermost first
	// failed is the record of the attempt before this one, for a task
	// that waits to be retried.
	failed *store.Task
	// elements are the foreach elements of a task that fanned out with
	// foreach, for the tasks of its branches and their join.
	elements *hashList
}

// A fan is one branch of a split or foreach that a task runs inside.
type fan struct {
	task   *pending // the task that fanned out
	n      int      // how many branches it has
	branch int      // which one this is
}

// A readyItem is a task ready to run, or, with fanOut set, the tasks of
// a foreach yet to start, made one at a time as they start: a wide
// foreach must not hold a task's spec for every element that waits.
type readyItem struct {
	p      *pending
	fanOut *fanOut
}

// A fanOut is the fan-out of a foreach whose tasks have not all started.
type fanOut struct {
	from      *pending // the task that fanned out
	step      string   // the step of its branches
	artifacts map[string]string
	next      int // the element whose task starts next
}

// push makes p ready to run, after those ready before.
func (s *scheduler) push(p *pending) { s.ready = append(s.ready, readyItem{p: p}) }

// pop returns the next task ready to run.
func (s *scheduler) pop() *pending {
	head := &s.ready[0]
	p := head.p
	if f := head.fanOut; f != nil {
		i := f.next
		f.next++
		from, n := f.from, f.from.elements.len()
		p = s.newPending(f.step, append(slices.Clip(from.spec.Index), i), from.elements.at(i), f.artifacts,
			[]string{from.spec.TaskID}, append(slices.Clip(from.fans), fan{task: from, n: n, branch: i}))
		if f.next < n {
			return p
		}
	}
	*head = readyItem{}
	s.ready = s.ready[1:]
	return p
}

// An attempt is the outcome of one execution of a pending task, and its
// records.
type attempt struct {
	p        *pending
	res      *TaskResult
	err      error
	again    bool // retry
	copied   bool // from the origin of a resumed run, not run
	start    time.Time
	duration time.Duration
	task     store.Task
	record   store.Attempt
}

func (s *scheduler) newPending(step string, index []int, input string, artifacts map[string]string, parents []string, fans []fan) *pending {
	return &pending{
		spec: &TaskSpec{
			RunID:     s.run.ID,
			Code:      s.code,
			Dir:       s.flow.Dir(),
			Datastore: s.opts.Datastore,
			Params:    s.opts.Params,
			Step:      step,
			TaskID:    history.TaskID(step, index),
			Attempt:   1,
			Index:     index,
			Input:     input,
			Artifacts: artifacts,
			MaxSteps:  s.opts.MaxSteps,
		},
		parents: parents,
		fans:    fans,
	}
}

func (s *scheduler) emit(e Event) { s.emitUnless(nil, e) }

// emitUnless emits e unless *stop, which emitMu guards, is set: a task
// the scheduler gave up on reports nothing more.
func (s *scheduler) emitUnless(stop *bool, e Event) { s.emitLines(stop, e, e.Line) }

// emitLines emits a copy of e for each line, with that Line, unless
// *stop, as emitUnless. The lines of a batch share one lock and one
// reading of the clock.
func (s *scheduler) emitLines(stop *bool, e Event, lines ...string) {
	if s.opts.OnEvent == nil {
		return
	}
	e.RunID = s.run.ID
	e.Time = time.Now()
	s.emitMu.Lock()
	defer s.emitMu.Unlock()
	if s.eventErr != nil || stop != nil && *stop {
		return
	}
	defer func() {
		// A consumer's panic fails the run, rather than kill the process
		// and leave the run recorded running.
		if v := recover(); v != nil {
			s.eventErr = fmt.Errorf("OnEvent panicked on a %s event: %v\n%s", e.Kind, v, debug.Stack())
			s.eventFailed.Store(true)
		}
	}()
	for _, line := range lines {
		e.Line = line
		s.opts.OnEvent(e)
	}
}

// eventFailure returns the panic of OnEvent, if it panicked.
func (s *scheduler) eventFailure() error {
	if !s.eventFailed.Load() {
		return nil
	}
	s.emitMu.Lock()
	defer s.emitMu.Unlock()
	return s.eventErr
}

func (s *scheduler) loop() (store.Run, error) {
	cancelled := s.ctx.Done()
	for {
		if err := s.eventFailure(); err != nil {
			s.fail("", err)
		}
		for len(s.ready) > 0 && s.running < s.opts.MaxWorkers && s.committing < maxCommitting && !s.stopped() {
			s.launch(s.pop())
		}
		if s.running == 0 && s.waiting == 0 && s.committing == 0 && (len(s.ready) == 0 || s.stopped()) {
			break
		}
		select {
		case a := <-s.done:
			s.running--
			s.executed(a)
		case a := <-s.committed:
			s.committing--
			s.recorded(a)
		case p := <-s.retry:
			s.waiting--
			switch {
			case !s.stopped():
				s.push(p)
			case s.ctx.Err() != nil && p.failed != nil:
				t := p.failed
				if err := s.cancelRetry(t); err != nil {
					s.fail(t.ID, err)
					break
				}
				s.emit(Event{Kind: TaskFinished, Step: t.Step, TaskID: t.ID, Attempt: t.Attempt, Status: string(store.TaskCancelled), Error: t.Error})
			}
		case <-cancelled:
			// Running tasks are cancelled with the context; wait for them.
			cancelled = nil
		}
	}
	if err := s.eventFailure(); err != nil {
		s.fail("", err)
	}
	switch {
	case s.failure != nil:
		return s.end(store.RunFailed, s.failure.TaskID, s.failure.Err)
	case s.finished:
		// finish is recorded: an interrupt after it comes too late.
	case s.ctx.Err() != nil:
		return s.end(store.RunCancelled, "", context.Cause(s.ctx))
	default:
		return s.end(store.RunFailed, "", errors.New("the run ended without reaching finish"))
	}
	return s.end(store.RunSucceeded, "", nil)
}

// stopped reports whether no task may start: one failed, or the run was
// cancelled.
func (s *scheduler) stopped() bool { return s.failure != nil || s.ctx.Err() != nil }

// end records how the run ended.
func (s *scheduler) end(status store.RunStatus, task string, cause error) (store.Run, error) {
	msg := ""
	if cause != nil {
		msg = cause.Error()
		if task != "" {
			msg = "task " + task + ": " + msg
		}
	}
	ctx := context.WithoutCancel(s.ctx)
	s.live.Close()
	if err := s.st.FinishRun(ctx, s.run.ID, status, msg); err != nil {
		if cause != nil {
			// Why the run ended matters more than why that was not
			// recorded: say both.
			return s.run, fmt.Errorf("run %s %s: %s; recording its end: %w", s.run.ID, status, msg, err)
		}
		return s.run, fmt.Errorf("recording the end of run %s: %w", s.run.ID, err)
	}
	run, err := s.st.Run(ctx, s.run.ID)
	if err != nil {
		return s.run, err
	}
	s.emit(Event{Kind: RunFinished, Status: string(status), Duration: run.Ended.Sub(run.Created), Error: msg, TaskID: task})
	if status != store.RunSucceeded {
		return run, &RunError{RunID: run.ID, Status: status, TaskID: task, Err: cause}
	}
	return run, nil
}

// launch starts a task in a goroutine of its own.
func (s *scheduler) launch(p *pending) {
	if s.resume != nil {
		if o, ok := s.resume.reusable(s.g, p); ok {
			s.reuse(p, o)
			return
		}
	}
	s.running++
	spec := p.spec
	s.emit(Event{Kind: TaskStarted, Step: spec.Step, TaskID: spec.TaskID, Attempt: spec.Attempt})
	opts := s.runner.Options(spec.Step)
	if d, ok := duration(opts["timeout"]); ok {
		spec.Timeout = d
	}
	spec.Resources = resources(opts)
	go func() {
		a := &attempt{p: p, start: time.Now()}
		defer func() {
			// A panic of the scheduler's own code for the task, or of a
			// Recorder or Blobs it calls, fails the task, not the process:
			// the task and the run are recorded as they end.
			if v := recover(); v != nil {
				a.fault(fmt.Errorf("panic: %v\n%s", v, debug.Stack()))
			}
			s.done <- a
		}()
		// Cancelling the run cancels the task, not its records.
		err := s.st.QueueStartTask(context.WithoutCancel(s.ctx), store.Task{
			RunID: spec.RunID, ID: spec.TaskID, Step: spec.Step, Parents: p.parents, Index: spec.Index,
			Status: store.TaskRunning, Attempt: spec.Attempt, Started: a.start,
		})
		if err != nil {
			a.fault(fmt.Errorf("recording its start: %w", err))
			return
		}
		s.execute(a, opts)
	}()
}

// fault makes a the failed attempt of a task that the scheduler could not
// run, or whose outcome it could not keep, because of err, such as a full
// disk: the run stops with err, and the task is still recorded, failed
// with err and with what it printed and set, rather than left running.
func (a *attempt) fault(err error) {
	res := &TaskResult{Error: err.Error()}
	if a.res != nil {
		res.Logs, res.Artifacts = a.res.Logs, a.res.Artifacts
	}
	a.res, a.err, a.again = res, err, false
	if a.duration == 0 {
		a.duration = time.Since(a.start)
	}
	a.records(store.TaskFailed, "")
}

// records makes the records of a, which ended with status: the task's and
// its attempt's.
func (a *attempt) records(status store.TaskStatus, manifest store.Hash) {
	spec, res := a.p.spec, a.res
	end := a.start.Add(a.duration)
	a.record = store.Attempt{RunID: spec.RunID, TaskID: spec.TaskID, N: spec.Attempt, Status: status,
		Started: a.start, Ended: end, Error: res.Error, Logs: store.Hash(res.Logs)}
	a.task = store.Task{RunID: spec.RunID, ID: spec.TaskID, Step: spec.Step, Parents: a.p.parents, Index: spec.Index,
		Status: status, Attempt: spec.Attempt, Started: a.start, Ended: end, Next: res.Next,
		ForeachLen: len(res.Foreach), Foreach: manifest, Artifacts: hashes(res.Artifacts), Logs: store.Hash(res.Logs), Error: res.Error}
}

// execute runs an attempt under the step's timeout, decides whether it is
// retried or caught, and makes its records.
func (s *scheduler) execute(a *attempt, opts map[string]any) {
	spec := a.p.spec
	ctx := s.ctx
	if _, keeps := s.exec.(TimeoutKeeper); spec.Timeout > 0 && !keeps {
		d := spec.Timeout
		// The executor stops the task at its timeout; this is the backstop
		// for one that does not.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, d+timeoutGrace, fmt.Errorf("step %s did not stop within %s of its timeout, %s", spec.Step, timeoutGrace, d))
		defer cancel()
	}
	a.res, a.err = s.call(ctx, spec)
	a.duration = time.Since(a.start)
	// A task abandoned may still run: another attempt, or the steps after
	// its catch, would run beside it.
	abandoned := errors.Is(a.err, errAbandoned)
	if a.err == nil && a.res == nil {
		a.err = errors.New("the executor returned no result")
	}
	if a.err == nil && a.res.OK {
		a.err = checkTransition(s.g.Step(spec.Step), len(a.res.Next) > 0, a.res.Next, a.res.Foreach != nil)
	}
	if a.err != nil {
		// The task could not run, its runner died (a killed subprocess,
		// an evicted pod) or it reported what the flow cannot do: a failed
		// attempt like any other, which retries and catch apply to. What
		// it printed and set, if it ran, stays on the record.
		failed := &TaskResult{Error: a.err.Error()}
		if a.res != nil {
			failed.Logs, failed.Artifacts = a.res.Logs, a.res.Artifacts
		}
		a.res, a.err = failed, nil
	}
	res := a.res
	status := store.TaskSucceeded
	if !res.OK {
		status = store.TaskFailed
		retries, _ := opts["retries"].(int64)
		switch {
		case s.ctx.Err() != nil:
			status = store.TaskCancelled
		case int64(spec.Attempt) <= retries && !abandoned:
			a.again = true
		case opts["catch"] != nil && !abandoned:
			if err := s.catch(ctx, spec, opts["catch"].(string), res); err != nil {
				a.fault(fmt.Errorf("%s; and %w", res.Error, err))
				return
			}
			status = store.TaskSucceeded
		}
	}
	var manifest store.Hash
	if res.OK && res.Foreach != nil {
		var err error
		if manifest, err = s.writeManifest(context.WithoutCancel(ctx), res.Foreach); err != nil {
			a.fault(fmt.Errorf("saving its foreach elements: %w", err))
			return
		}
	}
	a.records(status, manifest)
}

// call has the executor run the task of spec, and waits for it as long as
// ctx lasts and timeoutGrace more: an executor that ignores ctx, stuck on
// an unresponsive machine say, is abandoned then, and its task fails, so
// that the run still ends. What it reports later is dropped. A panic of
// the executor fails the task with the panic and its Go stack.
func (s *scheduler) call(ctx context.Context, spec *TaskSpec) (*TaskResult, error) {
	type outcome struct {
		res *TaskResult
		err error
	}
	done := make(chan outcome, 1) // an abandoned executor must not block
	out := s.newLineBatch(spec)
	ctx = context.WithValue(ctx, waitingKey{}, func(why string) {
		out.emit(Event{Kind: TaskWaiting, Step: spec.Step, TaskID: spec.TaskID, Attempt: spec.Attempt, Line: why})
	})
	go func() {
		defer func() {
			if v := recover(); v != nil {
				out.close()
				done <- outcome{err: fmt.Errorf("the executor panicked: %v\n%s", v, debug.Stack())}
			}
		}()
		res, err := s.exec.Execute(ctx, spec, out.print)
		out.close()
		done <- outcome{res, err}
	}()
	select {
	case o := <-done:
		return o.res, o.err
	case <-ctx.Done():
	}
	grace := time.NewTimer(timeoutGrace)
	defer grace.Stop()
	select {
	case o := <-done:
		return o.res, o.err
	case <-grace.C:
	}
	out.abandon()
	return nil, fmt.Errorf("%w within %s of: %w", errAbandoned, timeoutGrace, context.Cause(ctx))
}

// errAbandoned is wrapped by the error of a task whose executor did not
// stop it when asked.
var errAbandoned = errors.New("the executor did not stop the task")

// catch turns a failed result into a successful one that goes on to the
// step's next steps with the error in the artifact the catch option names.
func (s *scheduler) catch(ctx context.Context, spec *TaskSpec, name string, res *TaskResult) error {
	data, err := starlark.Encode(sl.String(res.Error))
	if err != nil {
		return err
	}
	h, err := s.opts.Blobs.Put(context.WithoutCancel(ctx), data)
	if err != nil {
		return fmt.Errorf("saving the caught error of %s: %w", spec.TaskID, err)
	}
	res.OK = true
	res.Artifacts = maps.Clone(spec.Artifacts)
	if res.Artifacts == nil {
		res.Artifacts = make(map[string]string)
	}
	res.Artifacts[name] = string(h)
	res.Next = nil
	if next := s.g.Step(spec.Step).Next; next != nil {
		res.Next = next.Names()
	}
	return nil
}

// maxCommitting bounds the attempts being recorded at once. Tasks may run
// faster than their records are written; past this many, no task starts
// until records catch up, so that a wide foreach holds a bounded number of
// results, and goroutines, in memory. Batches stay large enough to share
// a flush among thousands of tasks.
const maxCommitting = 4096

// timeoutGrace is how long a task may overrun its timeout before the
// scheduler cancels it, and how long an executor may take to stop a
// cancelled task before the scheduler abandons it; a variable for tests.
var timeoutGrace = 30 * time.Second

func duration(v any) (time.Duration, bool) {
	text, ok := v.(string)
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(text)
	return d, err == nil && d > 0
}

func hashes(m map[string]string) map[string]store.Hash {
	out := make(map[string]store.Hash, len(m))
	for k, v := range m {
		out[k] = store.Hash(v)
	}
	return out
}

// executed takes the outcome of an attempt as soon as it ran: its worker
// is free, and its record is written in the background, so that the
// records of all the tasks that end meanwhile share one flush to disk. A
// failure stops the run at once.
func (s *scheduler) executed(a *attempt) {
	if a.err != nil {
		// A fault: the run stops at once, and the task is recorded failed.
		s.fail(a.p.spec.TaskID, a.err)
	}
	s.committing++
	go func() {
		ctx := context.WithoutCancel(s.ctx)
		var err error
		if s.opts.Datastore != "" {
			// What the record names must be durable first: the store
			// does that for its own blobs, not for a datastore's.
			err = s.opts.Blobs.Sync(ctx)
		}
		if err == nil {
			err = s.st.CommitTask(ctx, a.task, a.record)
		}
		if err != nil {
			// The task stays recorded running until the run's end
			// records it failed (see store.FinishRun).
			err = fmt.Errorf("recording its end: %w", err)
			if a.err != nil {
				err = fmt.Errorf("%w; and %w", a.err, err)
			}
			a.err = err
		}
		s.committed <- a
	}()
	if !a.again && !a.res.OK && s.ctx.Err() == nil {
		s.fail(a.p.spec.TaskID, errors.New(a.res.Error))
	}
}

// recorded takes an attempt once its record is durable: it is reported,
// then retried, or the tasks after it become ready. Nothing starts before
// what it follows is reported finished, so events come in causal order and
// a crash never leaves a task recorded without the tasks it came from.
func (s *scheduler) recorded(a *attempt) {
	// Decided before the report, whose consumer may cancel the run.
	retry := a.err == nil && a.again && !s.stopped()
	if a.err == nil && a.again && !retry && s.ctx.Err() != nil {
		// Cancelled since it ran: no retry will come, and the report
		// says cancelled, as the record must.
		if err := s.cancelRetry(&a.task); err != nil {
			a.err = err
		}
	}
	if a.err == nil {
		s.live.End(a.p.spec.TaskID, a.p.spec.Attempt)
	}
	s.report(a)
	switch {
	case a.err != nil:
		s.fail(a.p.spec.TaskID, a.err)
	case retry:
		// Only now: the next attempt's records must not race this one's.
		s.retryLater(a.p, &a.task)
	case a.res.OK:
		if a.p.spec.Step == "finish" {
			s.finished = true
		}
		s.advance(a.p, a.res)
	}
}

func (s *scheduler) report(a *attempt) {
	spec := a.p.spec
	ev := Event{Kind: TaskFinished, Step: spec.Step, TaskID: spec.TaskID, Attempt: spec.Attempt, Duration: a.duration}
	switch {
	case a.err != nil:
		ev.Status, ev.Error = "failed", a.err.Error()
	case a.again && !s.stopped():
		// Only a retry that will happen: a run that stopped retries
		// nothing.
		ev.Kind, ev.Status, ev.Error = TaskRetrying, "failed", a.res.Error
	case a.copied:
		ev.Status = "reused"
	case a.res.OK && a.task.Error != "":
		ev.Status, ev.Error = "caught", a.task.Error
	case a.res.OK:
		ev.Status = "succeeded"
	case s.ctx.Err() != nil:
		ev.Status, ev.Error = "cancelled", a.res.Error
	default:
		ev.Status, ev.Error = "failed", a.res.Error
	}
	s.emit(ev)
}

// cancelRetry records cancelled the task of failed, the record of its
// last attempt, which the run's cancellation found due for a retry,
// rather than leave it recorded failed by an attempt the run did not stop
// on. It updates failed to what it recorded.
func (s *scheduler) cancelRetry(failed *store.Task) error {
	failed.Status = store.TaskCancelled
	failed.Error = fmt.Sprintf("%v, while waiting to retry it: %s", context.Cause(s.ctx), failed.Error)
	return s.st.CommitTask(context.WithoutCancel(s.ctx), *failed, store.Attempt{})
}

// retryLater makes a task ready again, as its next attempt, after the
// step's retry delay.
func (s *scheduler) retryLater(p *pending, failed *store.Task) {
	s.waiting++
	delay, _ := duration(s.runner.Options(p.spec.Step)["retry_delay"])
	next := *p
	spec := *p.spec
	spec.Attempt++
	next.spec = &spec
	next.failed = failed
	go func() {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-s.ctx.Done():
		case <-s.halt: // the run failed: no attempt is worth waiting for
		}
		s.retry <- &next
	}()
}

func (s *scheduler) fail(task string, err error) {
	if s.failure == nil {
		s.failure = &RunError{RunID: s.run.ID, Status: store.RunFailed, TaskID: task, Err: err}
		close(s.halt)
	}
}

// advance makes ready the tasks that follow a successful one.
func (s *scheduler) advance(p *pending, res *TaskResult) {
	step := s.g.Step(p.spec.Step)
	if step.Next == nil {
		return
	}
	index := p.spec.Index
	switch step.Next.Kind {
	case dag.Linear, dag.Switch:
		s.arrive(res.Next[0], p, res, index, p.spec.Input, p.fans)
	case dag.Split:
		for i, t := range res.Next {
			s.arrive(t, p, res, index, p.spec.Input, append(slices.Clip(p.fans), fan{task: p, n: len(res.Next), branch: i}))
		}
	case dag.Foreach:
		n := len(res.Foreach)
		if n == 0 {
			// Nothing runs inside; the join starts at once, from the
			// artifacts of the task that fanned out.
			join := s.newPending(step.JoinedBy, index, p.spec.Input, res.Artifacts, []string{p.spec.TaskID}, p.fans)
			join.spec.Inputs = []Input{}
			s.push(join)
			return
		}
		p.elements = newHashList(res.Foreach)
		if !s.g.Step(res.Next[0]).Join {
			s.ready = append(s.ready, readyItem{fanOut: &fanOut{from: p, step: res.Next[0], artifacts: res.Artifacts}})
			return
		}
		for i, h := range res.Foreach {
			s.arrive(res.Next[0], p, res, append(slices.Clip(index), i), h, append(slices.Clip(p.fans), fan{task: p, n: n, branch: i}))
		}
	}
}

// arrive makes the task of step that follows from ready, or, at a join,
// counts from in and makes the join ready when every input has arrived.
// Inside a foreach, every task has the element of the foreach around it as
// ctx.input, not only the first.
func (s *scheduler) arrive(step string, from *pending, res *TaskResult, index []int, input string, fans []fan) {
	if !s.g.Step(step).Join {
		s.push(s.newPending(step, index, input, res.Artifacts, []string{from.spec.TaskID}, fans))
		return
	}
	f := fans[len(fans)-1]
	key := step + "\x00" + f.task.spec.TaskID
	js := s.joins[key]
	if js == nil {
		js = newJoinState(f, s.g.Step(f.task.spec.Step).Next.Kind == dag.Foreach)
		s.joins[key] = js
	}
	js.add(f.branch, from.spec, res.Artifacts)
	if js.got < f.n {
		return
	}
	delete(s.joins, key)
	artifacts, conflicts := js.merge()
	p := s.newPending(step, f.task.spec.Index, f.task.spec.Input, artifacts, js.parents(), fans[:len(fans)-1])
	p.spec.Conflicts = conflicts
	if js.foreach && s.exec == Executor(s.runner) {
		// The runner of this process reads them one at a time.
		p.spec.joined = js
	} else {
		p.spec.Inputs = js.all()
	}
	s.push(p)
}
