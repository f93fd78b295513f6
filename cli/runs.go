package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	urfave "github.com/urfave/cli/v2"

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
			"statuses, when they started and how long they took. FLOW, a flow's name or\n" +
			"the path of its file, lists only the runs of that flow. The store is --store,\n" +
			"else $DAGGER_HOME, else .daggerflow in the current directory.",
		Flags: []urfave.Flag{
			&urfave.StringFlag{Name: "status", Usage: "list only the runs whose status is `STATUS`: running, succeeded, failed or cancelled"},
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
		f.Flow = flowName(c.Args().First())
	default:
		return &usageError{cmd: name, msg: fmt.Sprintf("takes at most one flow, not %d arguments", c.NArg())}
	}
	if s := c.String("status"); s != "" {
		f.Status = store.RunStatus(s)
		statuses := []store.RunStatus{store.RunRunning, store.RunSucceeded, store.RunFailed, store.RunCancelled}
		if !slices.Contains(statuses, f.Status) {
			return &usageError{cmd: name, msg: fmt.Sprintf("unknown status %q: use running, succeeded, failed or cancelled", s)}
		}
	}
	f.Limit = c.Int("limit")
	if f.Limit < 0 {
		return &usageError{cmd: name, msg: fmt.Sprintf("--limit must be 0 or more, not %d", f.Limit)}
	}
	st, dir, err := openStore(c.Context, c.String("store"))
	if err != nil {
		return failed(err)
	}
	var runs []store.Run
	if st != nil {
		defer st.Close()
		if runs, err = st.Runs(c.Context, f); err != nil {
			return failed(err)
		}
	}
	w := c.App.Writer
	if c.Bool("json") {
		list := make([]runJSON, len(runs))
		for i, r := range runs {
			list[i] = newRunJSON(r)
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

// openStore opens the store of the read commands: dir if given, else the
// project's, as dagger run chooses it. It returns a nil Store, and no
// error, when the directory does not exist, rather than create it:
// looking at runs must not leave an empty store behind wherever dagger
// was started. The directory is returned either way, for messages.
func openStore(ctx context.Context, dir string) (*store.Store, string, error) {
	dir, err := storeDir(dir)
	if err != nil {
		return nil, "", err
	}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, dir, nil
	}
	st, err := store.Open(ctx, dir)
	if err != nil {
		return nil, dir, err
	}
	return st, dir, nil
}

// openRun opens the store named by the --store flag dir and finds the run
// that ref, "latest" or a unique prefix of a run ID, identifies. The
// caller closes the store. A run that is not there, or a prefix that
// several runs share, is an error with exit code 2, worded by the store.
func openRun(ctx context.Context, dir, ref string) (*store.Store, store.Run, error) {
	st, dir, err := openStore(ctx, dir)
	if err != nil {
		return nil, store.Run{}, failed(err)
	}
	if st == nil {
		return nil, store.Run{}, &exitError{code: exitInvalid, err: fmt.Errorf("run %q: not found: there is no store in %s", ref, dir)}
	}
	r, err := st.Run(ctx, ref)
	if err != nil {
		st.Close()
		code := exitFailed
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrAmbiguous) {
			code = exitInvalid
		}
		return nil, store.Run{}, &exitError{code: code, err: err}
	}
	return st, r, nil
}

// runJSON is a run as dagger runs --json and dagger inspect --json print
// it. Every field is always there: strings that do not apply are empty,
// and ended is null while the run is running.
type runJSON struct {
	ID       string                     `json:"id"`
	Flow     string                     `json:"flow"`
	FlowPath string                     `json:"flow_path"`
	Status   store.RunStatus            `json:"status"`
	Params   map[string]json.RawMessage `json:"params"`
	Origin   string                     `json:"origin"`
	Created  time.Time                  `json:"created"`
	Ended    *time.Time                 `json:"ended"`
	Error    string                     `json:"error"`
}

// newRunJSON returns r as JSON shows it.
func newRunJSON(r store.Run) runJSON {
	// The store keeps each value as JSON text; printing it raw makes it a
	// JSON value, not a string of JSON.
	params := make(map[string]json.RawMessage, len(r.Params))
	for name, v := range r.Params {
		params[name] = json.RawMessage(v)
	}
	return runJSON{
		ID:       r.ID,
		Flow:     r.Flow,
		FlowPath: r.FlowPath,
		Status:   r.Status,
		Params:   params,
		Origin:   r.Origin,
		Created:  r.Created,
		Ended:    optionalTime(r.Ended),
		Error:    r.Error,
	}
}

// optionalTime returns nil for the zero time, which JSON writes as null.
func optionalTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
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
