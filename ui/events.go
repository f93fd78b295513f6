package ui

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/daggerflow/dagger/exec"
	"github.com/daggerflow/dagger/history"
	"github.com/daggerflow/dagger/store"
)

// heartbeat is how often an idle event stream sends a comment, so that
// proxies and the browser keep it open.
const heartbeat = 15 * time.Second

// events serves /api/events?run=RUN[&task=TASK][&output=0]: server-sent
// events, each the JSON of an exec.Event as "dagger run --json" prints
// it, from run_started to run_finished, after which the stream ends. With
// task, only that task's events and the run's; with output=0, no
// task_output or setup_output lines.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	task := q.Get("task")
	if task != "" && !isTaskID(task) {
		writeError(w, &badRequest{fmt.Sprintf("%q is not a task ID", task)})
		return
	}
	run, err := s.loadRun(r.Context(), q.Get("run"))
	if err != nil {
		writeError(w, err)
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeErrorCode(w, http.StatusInternalServerError, "streaming is not supported")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	f := newFollower(s.st, run, task, q.Get("output") != "0")
	send := func(evs []exec.Event) error {
		if len(evs) == 0 {
			if _, err := fmt.Fprint(w, ": still following\n\n"); err != nil {
				return err
			}
		}
		for _, ev := range evs {
			data, err := json.Marshal(ev)
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintf(w, "data: %s\n\n", data); err != nil {
				return err
			}
		}
		flusher.Flush()
		return nil
	}
	_ = f.follow(r.Context(), s.poll, send) // an error ends the stream; the page says it lost it
}

// A follower turns what a run's records say now into the events that
// happened since it last read them.
type follower struct {
	st     *store.Store
	run    *history.Run
	lr     *history.LogReader
	task   string // the one task followed, or ""
	output bool   // whether to send lines printed

	seq     int64                   // the greatest position of a task record read
	known   map[string]taskProgress // what was sent of each task
	running map[string]bool         // the tasks last read running
	failed  string                  // the first task seen failed, which failed the run
}

// taskProgress is what was sent of a task: its attempts started, and
// whether it finished.
type taskProgress struct {
	attempt  int
	finished bool
}

func newFollower(st *store.Store, run *history.Run, task string, output bool) *follower {
	return &follower{
		st: st, run: run, lr: history.NewLogReader(run), task: task, output: output,
		known: make(map[string]taskProgress), running: make(map[string]bool),
	}
}

// follow sends the events of the run, reading it every interval until it
// has ended, or ctx is done. The run's record is read before its tasks,
// so that once it is seen ended, every task's end has been seen too.
func (f *follower) follow(ctx context.Context, interval time.Duration, send func([]exec.Event) error) error {
	r := f.run
	if err := send([]exec.Event{{Kind: exec.RunStarted, Time: r.Created, RunID: r.ID}}); err != nil {
		return err
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	idle := time.Now()
	for {
		// A dead run will not go on: its process is gone.
		ended := r.Status != store.RunRunning
		evs, err := f.poll(ctx)
		if err != nil {
			return err
		}
		if ended {
			evs = append(evs, f.finished())
		}
		if len(evs) > 0 || time.Since(idle) > heartbeat {
			idle = time.Now()
			if err := send(evs); err != nil {
				return err
			}
		}
		if ended {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
		}
		if err := r.ReloadRecord(ctx); err != nil {
			return err
		}
	}
}

// finished returns the run_finished event of the run, which has ended; of
// a dead run, which no one will end, with status dead, the time it was
// seen dead, and no duration.
func (f *follower) finished() exec.Event {
	r := f.run
	if r.Status == store.RunDead {
		return exec.Event{Kind: exec.RunFinished, Time: time.Now().UTC(), RunID: r.ID, Status: string(store.RunDead),
			Error: "the process that ran the run is gone; dagger resume " + r.ID + " continues it"}
	}
	ev := exec.Event{Kind: exec.RunFinished, Time: r.Ended, RunID: r.ID, Status: string(r.Status), Duration: r.Ended.Sub(r.Created), Error: r.Error}
	if r.Status == store.RunFailed {
		ev.TaskID = f.failed
	}
	return ev
}

// poll returns the events of what changed since the last poll.
func (f *follower) poll(ctx context.Context) ([]exec.Event, error) {
	var evs []exec.Event
	if f.output && f.task == "" {
		lines, err := f.lr.Setup(ctx)
		if err != nil {
			return nil, err
		}
		for _, l := range lines {
			evs = append(evs, exec.Event{Kind: exec.SetupOutput, Time: time.Now().UTC(), RunID: l.RunID, Line: l.Line})
		}
	}
	tasks, err := f.changed(ctx)
	if err != nil {
		return nil, err
	}
	for _, t := range tasks {
		tevs, err := f.taskEvents(ctx, t)
		if err != nil {
			return nil, err
		}
		evs = append(evs, tevs...)
	}
	return evs, nil
}

// changed returns the tasks that may have changed since the last poll: the
// task followed, or those recorded since, those running, and those that
// were running.
func (f *follower) changed(ctx context.Context) ([]store.Task, error) {
	if f.task != "" {
		return f.st.TasksByID(ctx, f.run.ID, []string{f.task})
	}
	changes, err := f.st.TasksChanged(ctx, f.run.ID, f.seq)
	if err != nil {
		return nil, err
	}
	tasks := make([]store.Task, 0, len(changes))
	seen := make(map[string]bool, len(changes))
	for _, c := range changes {
		f.seq = max(f.seq, c.Seq)
		tasks = append(tasks, c.Task)
		seen[c.ID] = true
	}
	var gone []string
	for id := range f.running {
		if !seen[id] {
			gone = append(gone, id)
		}
	}
	if len(gone) > 0 {
		slices.Sort(gone)
		ended, err := f.st.TasksByID(ctx, f.run.ID, gone)
		if err != nil {
			return nil, err
		}
		tasks = append(tasks, ended...)
	}
	clear(f.running)
	for _, t := range tasks {
		if t.Status == store.TaskRunning {
			f.running[t.ID] = true
		}
	}
	return tasks, nil
}

// taskEvents returns the events of t, as last read, not sent yet: for
// each attempt, task_started, the lines it printed and task_retrying or
// task_finished.
func (f *follower) taskEvents(ctx context.Context, t store.Task) ([]exec.Event, error) {
	p := f.known[t.ID]
	if p.finished && p.attempt >= t.Attempt {
		return nil, nil
	}
	base := exec.Event{RunID: t.RunID, Step: t.Step, TaskID: t.ID}
	var evs []exec.Event
	if t.Status == store.TaskReused {
		ev := base
		ev.Kind, ev.Time, ev.Status = exec.TaskFinished, t.Ended, string(store.TaskReused)
		f.known[t.ID] = taskProgress{attempt: t.Attempt, finished: true}
		return append(evs, ev), nil
	}
	var lines []history.LogLine
	if f.output {
		var err error
		if lines, err = f.lr.Read(ctx, t); err != nil {
			return nil, err
		}
	}
	var attempts []store.Attempt // read only when a retry ended
	for n := max(p.attempt, 1); n <= t.Attempt; n++ {
		if n > p.attempt {
			ev := base
			ev.Kind, ev.Time, ev.Attempt = exec.TaskStarted, t.Started, n
			evs = append(evs, ev)
		}
		for _, l := range lines {
			if l.Attempt == n {
				ev := base
				ev.Kind, ev.Time, ev.Attempt, ev.Line = exec.TaskOutput, lineTime(t, n), n, l.Line
				evs = append(evs, ev)
			}
		}
		if n < t.Attempt {
			if attempts == nil {
				var err error
				if attempts, err = f.st.Attempts(ctx, t.RunID, t.ID); err != nil {
					return nil, err
				}
			}
			evs = append(evs, retrying(base, n, attempts))
		}
	}
	p.attempt = t.Attempt
	if t.Status != store.TaskRunning {
		ev := base
		ev.Kind, ev.Time, ev.Attempt, ev.Status = exec.TaskFinished, t.Ended, t.Attempt, string(t.Status)
		ev.Duration, ev.Error = t.Ended.Sub(t.Started), t.Error
		if t.Status == store.TaskSucceeded && t.Error != "" {
			ev.Status = "caught"
		}
		if t.Status == store.TaskFailed && f.failed == "" {
			f.failed = t.ID
		}
		evs = append(evs, ev)
		p.finished = true
	}
	f.known[t.ID] = p
	return evs, nil
}

// retrying returns the task_retrying event of attempt n, one of attempts.
func retrying(base exec.Event, n int, attempts []store.Attempt) exec.Event {
	ev := base
	ev.Kind, ev.Attempt, ev.Status = exec.TaskRetrying, n, string(store.TaskFailed)
	for _, a := range attempts {
		if a.N == n {
			ev.Time, ev.Duration, ev.Error = a.Ended, a.Ended.Sub(a.Started), a.Error
		}
	}
	return ev
}

// lineTime is the time of a line attempt n at t printed, as far as the
// store knows: when the attempt ended, if it has, else now.
func lineTime(t store.Task, n int) time.Time {
	if n == t.Attempt && !t.Ended.IsZero() {
		return t.Ended
	}
	return time.Now().UTC()
}
