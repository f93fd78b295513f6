package history

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/daggerflow/dagger/store"
)

// A LogLine is a line that an attempt at a task, or the flow's top-level
// code, printed. Its JSON form, as "dagger logs --json" prints it, has the
// fields of the task_output events of "dagger run --json"; a line of the
// top-level code has no step, task_id or attempt.
type LogLine struct {
	RunID   string `json:"run_id"`
	Step    string `json:"step,omitempty"`
	TaskID  string `json:"task_id,omitempty"`
	Attempt int    `json:"attempt,omitempty"`
	Line    string `json:"line"` // without its newline
}

// A LogReader reads what tasks printed, each line once: a reader asked
// again about a task, as a run is followed, returns only what the task
// printed since. An attempt's output is stored whole when it ends; while
// it runs, the run's process keeps what it prints where a reader finds it
// (store.LiveOutput), a fraction of a second later. A LogReader is not
// safe for concurrent use.
type LogReader struct {
	run *Run
	// read is, by task, the number of the last attempt whose output was
	// returned.
	read map[taskKey]int
	// live is, by task, how many lines of the attempt running were
	// returned.
	live      map[taskKey]liveRead
	setupRead bool
}

// A taskKey identifies a task in a store.
type taskKey struct{ run, id string }

// A liveRead counts the lines of a running attempt returned.
type liveRead struct{ attempt, lines int }

// NewLogReader returns a LogReader of the output of the tasks of run.
func NewLogReader(run *Run) *LogReader {
	return &LogReader{run: run, read: make(map[taskKey]int), live: make(map[taskKey]liveRead)}
}

// Setup returns the lines the run's top-level code printed, once they are
// recorded, and only once.
func (lr *LogReader) Setup(ctx context.Context) ([]LogLine, error) {
	if lr.setupRead || lr.run.SetupLogs == "" {
		return nil, nil
	}
	blobs, err := lr.run.Blobs(ctx)
	if err != nil {
		return nil, err
	}
	data, err := blobs.Get(ctx, lr.run.SetupLogs)
	if err != nil {
		return nil, fmt.Errorf("the output of the top-level code: %w", err)
	}
	lr.setupRead = true
	var lines []LogLine
	for line := range strings.SplitSeq(strings.TrimSuffix(string(data), "\n"), "\n") {
		lines = append(lines, LogLine{RunID: lr.run.ID, Line: line})
	}
	return lines, nil
}

// Read returns the lines that t printed and that were not returned yet:
// those of the attempts at t which ended, first attempt first, then those
// of the attempt running. t is the task's record as last read. As
// io.Reader does, Read returns the lines it read before an error too.
func (lr *LogReader) Read(ctx context.Context, t store.Task) ([]LogLine, error) {
	attempts, err := lr.endedAttempts(ctx, t)
	if err != nil {
		return nil, err
	}
	key := taskKey{t.RunID, t.ID}
	var lines []LogLine
	for _, a := range attempts {
		if a.Logs != "" {
			blobs, err := lr.run.Blobs(ctx)
			if err != nil {
				return lines, err
			}
			data, err := blobs.Get(ctx, a.Logs)
			if err != nil {
				return lines, fmt.Errorf("the output of task %s: %w", t.ID, err)
			}
			n := len(lines)
			lines = appendLines(lines, t, a.N, string(data))
			if l := lr.live[key]; l.attempt == a.N {
				// Its first lines were returned as it ran.
				lines = slices.Delete(lines, n, min(n+l.lines, len(lines)))
			}
		}
		lr.read[key] = a.N
		delete(lr.live, key)
	}
	if t.Status != store.TaskRunning {
		return lines, nil
	}
	data, err := lr.run.st.LiveOutput(t.RunID, t.ID, t.Attempt)
	if err != nil {
		return lines, err
	}
	// The last line may be still being written.
	data = data[:bytes.LastIndexByte(data, '\n')+1]
	l := lr.live[key]
	if l.attempt != t.Attempt {
		l = liveRead{attempt: t.Attempt}
	}
	n := len(lines)
	lines = appendLines(lines, t, t.Attempt, string(data))
	lines = slices.Delete(lines, n, min(n+l.lines, len(lines)))
	l.lines += len(lines) - n
	lr.live[key] = l
	return lines, nil
}

// endedAttempts returns the attempts at t that have ended since the
// output of the last was returned, first attempt first.
func (lr *LogReader) endedAttempts(ctx context.Context, t store.Task) ([]store.Attempt, error) {
	n := max(t.Attempt, 1)
	done := n
	if t.Status == store.TaskRunning {
		done--
	}
	last := lr.read[taskKey{t.RunID, t.ID}]
	if done <= last {
		return nil, nil
	}
	if n == 1 || t.Status == store.TaskReused {
		// The task's record holds the output of its last attempt: of its
		// only one, or, for a task reused from another run, whose
		// attempts are that run's, of the one that counted.
		return []store.Attempt{{N: n, Logs: t.Logs}}, nil
	}
	all, err := lr.run.st.Attempts(ctx, t.RunID, t.ID)
	if err != nil {
		return nil, err
	}
	var out []store.Attempt
	for _, a := range all {
		if last < a.N && a.N <= done {
			out = append(out, a)
		}
	}
	return out, nil
}

// appendLines appends the lines of logs, the output of attempt n at task
// t, to lines.
func appendLines(lines []LogLine, t store.Task, n int, logs string) []LogLine {
	if logs == "" {
		return lines
	}
	// Each print call of the task added a newline, which ends a line
	// rather than starts one.
	for line := range strings.SplitSeq(strings.TrimSuffix(logs, "\n"), "\n") {
		lines = append(lines, LogLine{RunID: t.RunID, Step: t.Step, TaskID: t.ID, Attempt: n, Line: line})
	}
	return lines
}

// Follow calls fn with r as it is, then, while the run is running, reads
// r again every interval and calls fn again, until the run has ended or
// ctx is done. running tells fn whether the run was running when r was
// read: whether more may come, such as a task that has not started yet.
// Since r is read before its tasks, once fn has seen the run ended it has
// seen every task's end too.
//
// Follow polls because the runs it follows are written by other
// processes, which have no way to tell it they did. It returns nil once
// fn has seen the run ended, the first error of fn or of reading the run,
// or ctx's error.
func Follow(ctx context.Context, r *Run, interval time.Duration, fn func(running bool) error) error {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		running := r.Status == store.RunRunning
		if err := fn(running); err != nil {
			return err
		}
		if !running {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
		}
		if err := r.Reload(ctx); err != nil {
			return err
		}
	}
}
