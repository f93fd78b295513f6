package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"

	urfave "github.com/urfave/cli/v2"

	"github.com/daggerflow/dagger/history"
	"github.com/daggerflow/dagger/store"
)

// defaultRunsLimit is how many runs dagger runs lists without --limit:
// the recent ones, which are those people look for.
const defaultRunsLimit = 20

func runsCommand() *urfave.Command {
	return &urfave.Command{
		Name:      "runs",
		Usage:     "list the runs recorded in the store",
		ArgsUsage: "[FLOW]",
		Description: "Runs lists the runs recorded in the store, newest first: their IDs, flows and\n" +
			"statuses, when they started and how long they took. FLOW, a flow's name,\n" +
			"lists only the runs of the flows of that name; the path of a flow file, only\n" +
			"those of that file. The store is --store, else $DAGGER_HOME, else .daggerflow\n" +
			"in the current directory.",
		Flags: []urfave.Flag{
			&urfave.StringFlag{Name: "status", Usage: "list only the runs whose status is `STATUS`: running, succeeded, failed, cancelled, or dead (recorded running, but its process is gone)"},
			&urfave.IntFlag{Name: "limit", Value: defaultRunsLimit, Usage: "list at most `N` runs; 0 for all"},
			&urfave.BoolFlag{Name: "json", Usage: "print the runs as a JSON array"},
			&urfave.StringFlag{Name: "store", Usage: "read the runs recorded in `DIR`"},
		},
		Action: listRuns,
	}
}

// listRuns is the action of dagger runs.
func listRuns(c *urfave.Context) error {
	name := c.Command.HelpName
	var f store.RunFilter
	switch c.NArg() {
	case 0:
	case 1:
		arg := c.Args().First()
		f.Flow = flowName(arg)
		if isFlowPath(arg) {
			// Flows of the same name in other folders are other flows.
			abs, err := filepath.Abs(arg)
			if err != nil {
				return failed(fmt.Errorf("finding %s: %w", arg, err))
			}
			f.FlowPath = abs
		}
	default:
		return &usageError{cmd: name, msg: fmt.Sprintf("takes at most one flow, not %d arguments", c.NArg())}
	}
	if s := c.String("status"); s != "" {
		f.Status = store.RunStatus(s)
		statuses := []store.RunStatus{store.RunRunning, store.RunSucceeded, store.RunFailed, store.RunCancelled, store.RunDead}
		if !slices.Contains(statuses, f.Status) {
			return &usageError{cmd: name, msg: fmt.Sprintf("unknown status %q: use running, succeeded, failed, cancelled or dead", s)}
		}
	}
	f.Limit = c.Int("limit")
	if f.Limit < 0 {
		return &usageError{cmd: name, msg: fmt.Sprintf("--limit must be 0 or more, not %d", f.Limit)}
	}
	// A store that is not there has no runs.
	var runs []store.Run
	st, dir, err := openStore(c.Context, c.String("store"), false)
	switch {
	case errors.Is(err, history.ErrNoStore):
	case err != nil:
		return failed(err)
	default:
		defer st.Close()
		if runs, err = st.Runs(c.Context, f); err != nil {
			return failed(err)
		}
	}
	w := c.App.Writer
	if c.Bool("json") {
		list := make([]history.RunJSON, len(runs))
		for i, r := range runs {
			list[i] = history.NewRunJSON(r)
		}
		return failed(writeIndentedJSON(w, list))
	}
	if len(runs) == 0 {
		// On stderr, so that stdout stays a table, however empty; the
		// store is named because the wrong one is the likely mistake.
		what := "no runs in"
		if f.Flow != "" || f.Status != "" {
			what = "no runs match in"
		}
		fmt.Fprintf(c.App.ErrWriter, "%s %s\n", what, dir)
		return nil
	}
	if err := writeRuns(w, runs); err != nil {
		return failed(fmt.Errorf("writing the runs: %w", err))
	}
	return nil
}

// flowName returns the name of the flow arg names: arg itself, or, for
// the path of a flow file, the file name without ".star", as runs record
// it.
func flowName(arg string) string {
	return strings.TrimSuffix(filepath.Base(arg), ".star")
}

// isFlowPath reports whether arg, which dagger runs takes, is the path
// of a flow file rather than a flow's name: it ends in ".star" or holds a
// path separator. A flow's name is the name of its file without ".star",
// which does neither.
func isFlowPath(arg string) bool {
	return strings.HasSuffix(arg, ".star") || strings.ContainsRune(arg, '/') || strings.ContainsRune(arg, filepath.Separator)
}

// writeRuns writes runs as a table for people:
//
//	ID            FLOW   STATUS     STARTED              DURATION  ORIGIN
//	1m89nzrdhjb0  hello  succeeded  2025-06-01 10:00:00  97ms
func writeRuns(w io.Writer, runs []store.Run) error {
	rows := [][]string{{"ID", "FLOW", "STATUS", "STARTED", "DURATION", "ORIGIN"}}
	for _, r := range runs {
		rows = append(rows, []string{r.ID, r.Flow, string(r.Status), localTime(r.Created), elapsed(r.Created, r.Ended), r.Origin})
	}
	var b strings.Builder
	writeTable(&b, "", rows)
	_, err := io.WriteString(w, b.String())
	return err
}

// localTime writes t, to the second, in the local time zone.
func localTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format(time.DateTime)
}

// elapsed returns how long what started at start and ended at end took,
// rounded, or "-" while it has not ended.
func elapsed(start, end time.Time) string {
	if start.IsZero() || end.IsZero() {
		return "-"
	}
	return round(end.Sub(start))
}

// openStore opens the store of the commands that use an existing one, dir
// if given, else the project's, as dagger run chooses it, without
// creating it: looking at runs must not leave an empty store behind
// wherever dagger was started. With write false, it is opened read-only,
// so that a store one cannot write can be read; with true, for
// reading and writing. The error for a store that is not there wraps
// history.ErrNoStore. The directory is returned either way, for messages.
func openStore(ctx context.Context, dir string, write bool) (*store.Store, string, error) {
	dir, err := storeDir(dir)
	if err != nil {
		return nil, "", err
	}
	open := history.Open
	if write {
		open = history.OpenExisting
	}
	st, err := open(ctx, dir)
	return st, dir, err
}

// openRun opens the store named by the --store flag dir and loads the run
// that ref, "latest" or a unique prefix of a run ID, identifies. The
// caller closes the store. A run that is not there, or a prefix that
// several runs share, is an error with exit code 2, worded by the store.
func openRun(ctx context.Context, dir, ref string) (*store.Store, *history.Run, error) {
	st, _, err := openStore(ctx, dir, false)
	if errors.Is(err, history.ErrNoStore) {
		return nil, nil, &exitError{code: exitInvalid, err: fmt.Errorf("run %q: not found: %w", ref, err)}
	}
	if err != nil {
		return nil, nil, failed(err)
	}
	run, err := history.Load(ctx, st, ref)
	if err != nil {
		st.Close()
		return nil, nil, lookupFailed(err)
	}
	return st, run, nil
}

// lookupFailed returns err with its exit code: 2 for what the user asked
// for and the store does not have, a run, step, task or artifact that is
// not there or several that match, and 1 for a failure to read the store.
func lookupFailed(err error) error {
	if errors.Is(err, history.ErrNotFound) || errors.Is(err, history.ErrAmbiguous) {
		return &exitError{code: exitInvalid, err: err}
	}
	return failed(err)
}

// writeIndentedJSON writes v as indented JSON, as dagger show --json does.
func writeIndentedJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // the output is no web page
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("writing JSON: %w", err)
	}
	return nil
}
