package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	urfave "github.com/urfave/cli/v2"

	"github.com/daggerflow/dagger/history"
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
			"attempt. The lines the flow's top-level code printed come first, after\n" +
			"\"[setup] \", unless STEP is given. With --follow, dagger watches a run that is\n" +
			"still running and prints what its tasks print as they print it, until the run\n" +
			"ends or is interrupted.",
		Flags: []urfave.Flag{
			&urfave.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep printing what tasks print, until the run ends"},
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
	if p.Artifact != "" {
		return &usageError{cmd: c.Command.HelpName, msg: fmt.Sprintf("%s is an artifact: give RUN[/STEP[/TASK]]", p.Artifact)}
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
	st, run, err := openRun(ctx, c.String("store"), p.Run)
	if err != nil {
		return err
	}
	defer st.Close()
	defer run.Close()
	lw := &logWriter{r: history.NewLogReader(run), w: c.App.Writer, json: c.Bool("json")}
	// show prints the output of the tasks p names that ended since it
	// last did.
	show := func(running bool) error {
		if p.Step == "" {
			lines, err := lw.r.Setup(ctx)
			if werr := lw.print(lines); werr != nil {
				return fmt.Errorf("writing the output: %w", werr)
			}
			if err != nil {
				return err
			}
		}
		tasks, err := run.Find(p)
		// A task that is not there may yet start in a run watched.
		if err != nil && !(running && errors.Is(err, history.ErrNoTask)) {
			return lookupFailed(err)
		}
		for _, t := range tasks {
			if err := lw.task(ctx, t); err != nil {
				return err
			}
		}
		return nil
	}
	if follow {
		err = history.Follow(ctx, run, pollInterval, show)
	} else {
		err = show(false)
	}
	var exit *exitError
	if errors.As(err, &exit) {
		return err
	}
	// Reading or printing failed, or an interrupt stopped the watch.
	return stopped(ctx, failed(err))
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
	r    *history.LogReader
	w    io.Writer
	json bool // print JSON lines, not text
}

// task prints the output of the attempts at t that have ended and were
// not printed yet.
func (lw *logWriter) task(ctx context.Context, t store.Task) error {
	lines, err := lw.r.Read(ctx, t)
	// The lines read before an error are printed first.
	if werr := lw.print(lines); werr != nil {
		return fmt.Errorf("writing the output: %w", werr)
	}
	return err
}

// print prints lines, each after its task's ID, or as JSON.
func (lw *logWriter) print(lines []history.LogLine) error {
	if len(lines) == 0 {
		return nil
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // lines stay as printed
	for _, l := range lines {
		switch {
		case lw.json:
			if err := enc.Encode(l); err != nil {
				return err
			}
		case l.TaskID == "":
			fmt.Fprintf(&b, "[setup] %s\n", l.Line)
		default:
			fmt.Fprintf(&b, "%s| %s\n", l.TaskID, l.Line)
		}
	}
	_, err := io.WriteString(lw.w, b.String())
	return err
}
