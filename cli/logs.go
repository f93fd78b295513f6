package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	urfave "github.com/urfave/cli/v2"

	"github.com/daggerflow/dagger/store"
)

// pollInterval is how often dagger logs --follow reads the store: often
// enough to feel live, seldom enough to cost nothing.
const pollInterval = 200 * time.Millisecond

func logsCommand() *urfave.Command {
	return &urfave.Command{
		Name:      "logs",
		Usage:     "print what the tasks of a run printed",
		ArgsUsage: "RUN[/STEP[/TASK]]",
		Description: "Logs prints what the tasks of a recorded run printed, each line after its\n" +
			"task's ID and \"| \", as dagger run prints them, task after task in the order\n" +
			"they started: every task of the run, those of STEP, or one task, addressed as\n" +
			"dagger inspect addresses it. A task that was retried prints the output of each\n" +
			"attempt. With --follow, dagger watches a run that is still running and prints\n" +
			"the output of each task when it ends, until the run ends or is interrupted.",
		Flags: []urfave.Flag{
			&urfave.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep printing the output of tasks as they end, until the run ends"},
			&urfave.BoolFlag{Name: "json", Usage: "print each line as a JSON object on a line of its own"},
			&urfave.StringFlag{Name: "store", Usage: "read the runs recorded in `DIR`"},
		},
		Action: printLogs,
	}
}

// printLogs is the action of dagger logs.
func printLogs(c *urfave.Context) error {
	p, err := pathArg(c)
	if err != nil {
		return err
	}
	if p.artifact != "" {
		return &usageError{cmd: c.Command.HelpName, msg: fmt.Sprintf("%s is an artifact: give RUN[/STEP[/TASK]]", p.artifact)}
	}
	ctx := c.Context
	follow := c.Bool("follow")
	if follow {
		// An interrupt ends the watch, which is how it ends for a run
		// that dagger left recorded as running when interrupted twice.
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
	}
	st, r, err := openRun(ctx, c.String("store"), p.run)
	if err != nil {
		return err
	}
	defer st.Close()
	h, err := loadHistory(ctx, st, r)
	if err != nil {
		return failed(err)
	}
	lw := &logWriter{st: st, w: c.App.Writer, json: c.Bool("json"), printed: make(map[string]int)}
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	for {
		watching := follow && h.run.Status == store.RunRunning
		tasks := h.tasks
		if p.step != "" {
			if tasks, err = h.stepTasks(p.step); err != nil {
				return err
			}
			matches := withIndex(tasks, p.index)
			// A task that is not there may yet start in a run watched.
			if len(matches) == 0 && len(p.index) > 0 && !watching {
				return noTaskError(h.run, p, tasks)
			}
			tasks = matches
		}
		for _, t := range tasks {
			if err := lw.task(ctx, t); err != nil {
				return stopped(ctx, err)
			}
		}
		// The run was read before its tasks: if it had ended, every task
		// printed had too.
		if !watching {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		if err := h.reload(ctx, st); err != nil {
			return stopped(ctx, failed(err))
		}
	}
}

// stopped returns err, or nil if it is only that ctx was cancelled: an
// interrupt is how dagger logs --follow is stopped.
func stopped(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// A logWriter prints the output of tasks, each attempt's once.
type logWriter struct {
	st   *store.Store
	w    io.Writer
	json bool // print JSON lines, not text
	// printed is, by task ID, the number of the last attempt whose
	// output was printed.
	printed map[string]int
}

// logLineJSON is a line of output as dagger logs --json prints it, with
// the fields of dagger run --json's task_output events.
type logLineJSON struct {
	RunID   string `json:"run_id"`
	Step    string `json:"step"`
	TaskID  string `json:"task_id"`
	Attempt int    `json:"attempt"`
	Line    string `json:"line"`
}

// task prints the output of the attempts at t that have ended and were
// not printed yet.
func (lw *logWriter) task(ctx context.Context, t store.Task) error {
	attempts, err := lw.endedAttempts(ctx, t)
	if err != nil {
		return failed(err)
	}
	for _, a := range attempts {
		if a.Logs != "" {
			data, err := lw.st.Blobs().Get(ctx, a.Logs)
			if err != nil {
				return failed(fmt.Errorf("the output of task %s: %w", t.ID, err))
			}
			if err := lw.print(t, a.N, string(data)); err != nil {
				return failed(fmt.Errorf("writing the output: %w", err))
			}
		}
		lw.printed[t.ID] = a.N
	}
	return nil
}

// endedAttempts returns the attempts at t that have ended since the
// output of the last was printed, first attempt first.
func (lw *logWriter) endedAttempts(ctx context.Context, t store.Task) ([]store.Attempt, error) {
	n := max(t.Attempt, 1)
	done := n
	if t.Status == store.TaskRunning {
		done--
	}
	last := lw.printed[t.ID]
	if done <= last {
		return nil, nil
	}
	if n == 1 || t.Status == store.TaskReused {
		// The task's record holds the output of its last attempt: of its
		// only one, or, for a task reused from another run, whose
		// attempts are that run's, of the one that counted.
		return []store.Attempt{{N: n, Logs: t.Logs}}, nil
	}
	all, err := lw.st.Attempts(ctx, t.RunID, t.ID)
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

// print prints logs, the output of attempt n at task t, line by line.
func (lw *logWriter) print(t store.Task, n int, logs string) error {
	if logs == "" {
		return nil
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // lines stay as printed
	// Each print call of the task added a newline, which ends a line
	// rather than starts one.
	for line := range strings.SplitSeq(strings.TrimSuffix(logs, "\n"), "\n") {
		if !lw.json {
			fmt.Fprintf(&b, "%s| %s\n", t.ID, line)
			continue
		}
		if err := enc.Encode(logLineJSON{RunID: t.RunID, Step: t.Step, TaskID: t.ID, Attempt: n, Line: line}); err != nil {
			return err
		}
	}
	_, err := io.WriteString(lw.w, b.String())
	return err
}
