package history

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/daggerflow/dagger/store"
)

// A LogLine is a line that an attempt at a task printed. Its JSON form,
// as "dagger logs --json" prints it, has the fields of the task_output
// events of "dagger run --json".
type LogLine struct {
	RunID   string `json:"run_id"`
	Step    string `json:"step"`
	TaskID  string `json:"task_id"`
	Attempt int    `json:"attempt"`
	Line    string `json:"line"` // without its newline
}

// A LogReader reads what tasks printed, each attempt's output once: a
// reader asked again about a task, as a run is followed, returns only
// what the attempts that ended since printed. An attempt's output is
// stored whole when it ends, so the output of an attempt still running
// waits for its end. A LogReader is not safe for concurrent use.
type LogReader struct {
	run *Run
	// read is, by task, the number of the last attempt whose output was
	// returned.
	read map[taskKey]int
}

// A taskKey identifies a task in a store.
type taskKey struct{ run, id string }

// NewLogReader returns a LogReader of the output of the tasks of run.
func NewLogReader(run *Run) *LogReader {
	return &LogReader{run: run, read: make(map[taskKey]int)}
}

// Read returns the lines that the attempts at t which ended, and whose
// output was not returned yet, printed, first attempt first. t is the
// task's record as last read: Read returns the output of the attempts
// that had ended then. As io.Reader does, Read returns the lines it read
// before an error too.
func (lr *LogReader) Read(ctx context.Context, t store.Task) ([]LogLine, error) {
	attempts, err := lr.endedAttempts(ctx, t)
	if err != nil {
		return nil, err
	}
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
			lines = appendLines(lines, t, a.N, string(data))
		}
		lr.read[taskKey{t.RunID, t.ID}] = a.N
	}
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
