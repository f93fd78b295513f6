package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	urfave "github.com/urfave/cli/v2"
	sl "go.starlark.net/starlark"

	"github.com/daggerflow/dagger/builtins"
	"github.com/daggerflow/dagger/history"
	"github.com/daggerflow/dagger/starlark"
	"github.com/daggerflow/dagger/store"
)

func inspectCommand() *urfave.Command {
	return &urfave.Command{
		Name:      "inspect",
		Usage:     "show a recorded run, step, task or artifact",
		ArgsUsage: "RUN[/STEP[/TASK][/ARTIFACT]]",
		Description: "Inspect shows what the store recorded of a run. RUN alone shows the run and\n" +
			"its steps; RUN/STEP the tasks of a foreach step; RUN/STEP/TASK one task, with\n" +
			"its attempts and artifacts; and .../ARTIFACT an artifact's value, as JSON if it\n" +
			"has a JSON form, else as Starlark. RUN is a run ID, a prefix that only one\n" +
			"run ID starts with, or latest. TASK is the foreach index of the task, as its\n" +
			"ID ends: square/3 is task square.3, and inner/0.1, or inner/0/1, inner.0.1.\n" +
			"A step outside any foreach has one task: RUN/STEP shows it, and\n" +
			"RUN/STEP/ARTIFACT is its artifact.",
		Flags: []urfave.Flag{
			&urfave.BoolFlag{Name: "json", Usage: "print JSON; an artifact without a JSON form is an error"},
			&urfave.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the artifact's value to `FILE`: bytes as they are, a string as its text, a file's content, anything else as printed"},
			&urfave.StringFlag{Name: "store", Usage: "read the runs recorded in `DIR`"},
		},
		Action: inspect,
	}
}

// inspect is the action of dagger inspect.
func inspect(c *urfave.Context) error {
	p, err := pathArg(c)
	if err != nil {
		return err
	}
	out := c.String("output")
	if out != "" && p.Artifact == "" {
		return &usageError{cmd: c.Command.HelpName, msg: "-o writes an artifact's value: give RUN/STEP[/TASK]/ARTIFACT"}
	}
	ctx := c.Context
	st, run, err := openRun(ctx, c.String("store"), p.Run)
	if err != nil {
		return err
	}
	defer st.Close()
	defer run.Close()
	v := &viewer{ctx: ctx, st: st, run: run, w: c.App.Writer, json: c.Bool("json")}
	if p.Step == "" {
		return v.showRun()
	}
	task, err := run.Task(p)
	switch {
	case errors.Is(err, history.ErrAmbiguous) && p.Artifact == "":
		// A path that names several tasks shows them all.
		tasks, err := run.Find(p)
		if err != nil {
			return lookupFailed(err)
		}
		what := "step " + p.Step
		if len(p.Index) > 0 {
			what = "tasks " + p.TaskID() + ".*"
		}
		return v.showTasks(what, p.Step, history.ByIndex(tasks))
	case err != nil:
		return lookupFailed(err)
	case p.Artifact == "":
		return v.showTask(task)
	}
	return v.showArtifact(task, p.Artifact, out)
}

// pathArg returns the one argument of dagger inspect and dagger logs,
// parsed.
func pathArg(c *urfave.Context) (history.Path, error) {
	name := c.Command.HelpName
	switch c.NArg() {
	case 0:
		return history.Path{}, &usageError{cmd: name, msg: "no run given: give RUN, a run ID, a prefix of one, or latest"}
	case 1:
	default:
		return history.Path{}, &usageError{cmd: name, msg: fmt.Sprintf("takes one run, step or task, not %d arguments", c.NArg())}
	}
	p, err := history.ParsePath(c.Args().First())
	if err != nil {
		return history.Path{}, &usageError{cmd: name, msg: err.Error()}
	}
	return p, nil
}

// A viewer writes what dagger inspect shows.
type viewer struct {
	ctx  context.Context
	st   *store.Store
	run  *history.Run
	w    io.Writer
	json bool
}

// write writes s, the whole of a view.
func (v *viewer) write(s string) error {
	if _, err := io.WriteString(v.w, s); err != nil {
		return failed(fmt.Errorf("writing the output: %w", err))
	}
	return nil
}

// showRun shows the run and its steps:
//
//	run 1m89nzs2917d of foreach
//	path     /home/ada/flows/foreach.star
//	status   succeeded
//	started  2025-06-01 10:00:00
//	ended    2025-06-01 10:00:00 (20ms)
//	params   count=3
//
//	steps:
//	  start   succeeded (<1ms)
//	  square  3 tasks, 3 succeeded
//	  add     succeeded (2ms)
//	  finish  not run
//
// then, for a run that failed, its error.
func (v *viewer) showRun() error {
	if v.json {
		return failed(writeIndentedJSON(v.w, history.NewRunDetailJSON(v.run)))
	}
	r := v.run.Run
	byStep := make(map[string][]store.Task)
	for _, t := range v.run.Tasks() {
		byStep[t.Step] = append(byStep[t.Step], t)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "run %s of %s\n", r.ID, r.Flow)
	rows := [][]string{
		{"path", r.FlowPath},
		{"status", string(r.Status)},
		{"started", localTime(r.Created)},
		{"ended", endedAt(r.Created, r.Ended)},
	}
	if len(r.Params) > 0 {
		params := make([]string, 0, len(r.Params))
		for _, name := range slices.Sorted(maps.Keys(r.Params)) {
			params = append(params, name+"="+r.Params[name])
		}
		rows = append(rows, []string{"params", strings.Join(params, " ")})
	}
	if r.Origin != "" {
		rows = append(rows, []string{"origin", r.Origin})
	}
	if r.Datastore != "" {
		rows = append(rows, []string{"datastore", r.Datastore})
	}
	writeTable(&b, "", rows)
	b.WriteString("\nsteps:\n")
	rows = nil
	for _, name := range v.run.Steps() {
		rows = append(rows, []string{name, stepSummary(byStep[name])})
	}
	writeTable(&b, "  ", rows)
	writeBlock(&b, "error", r.Error)
	return v.write(b.String())
}

// stepSummary sums up the tasks of a step: "not run"; the status and the
// duration of the one task of a step outside any foreach, such as
// "succeeded (2ms)" or "succeeded (2ms, attempt 2)"; or how many tasks
// ended how, such as "3 tasks, 2 succeeded, 1 failed".
func stepSummary(tasks []store.Task) string {
	switch {
	case len(tasks) == 0:
		return "not run"
	case len(tasks) == 1 && len(tasks[0].Index) == 0:
		t := tasks[0]
		if t.Status == store.TaskRunning {
			return taskStatus(t)
		}
		if t.Attempt > 1 {
			return fmt.Sprintf("%s (%s, attempt %d)", taskStatus(t), elapsed(t.Started, t.Ended), t.Attempt)
		}
		return fmt.Sprintf("%s (%s)", taskStatus(t), elapsed(t.Started, t.Ended))
	}
	return plural(len(tasks), "task") + ", " + statusCounts(tasks)
}

// statusCounts says how many of tasks have each status, such as "2
// succeeded, 1 failed": those that went well first, those still running
// last, and any status the store may add in between.
func statusCounts(tasks []store.Task) string {
	counts := make(map[string]int)
	for _, t := range tasks {
		counts[taskStatus(t)]++
	}
	var parts []string
	add := func(status string) {
		if n, ok := counts[status]; ok {
			parts = append(parts, fmt.Sprintf("%d %s", n, status))
			delete(counts, status)
		}
	}
	for _, s := range []string{"succeeded", "caught", "reused", "failed", "cancelled"} {
		add(s)
	}
	for _, s := range slices.Sorted(maps.Keys(counts)) {
		if s != string(store.TaskRunning) {
			add(s)
		}
	}
	add(string(store.TaskRunning))
	return strings.Join(parts, ", ")
}

// taskStatus returns the status of task t for people: its status in the
// store, but "caught" for a task that succeeded because its step's catch
// option took its failure, as dagger run reports it.
func taskStatus(t store.Task) string {
	return displayStatus(t.Status, t.Error)
}

// displayStatus returns status, that of a task or an attempt that ended
// with the error errMsg, for people, as taskStatus does.
func displayStatus(status store.TaskStatus, errMsg string) string {
	if status == store.TaskSucceeded && errMsg != "" {
		return "caught"
	}
	return string(status)
}

// endedAt returns when something that started at start ended, and how
// long it took, or "-" while it has not ended.
func endedAt(start, end time.Time) string {
	if end.IsZero() {
		return "-"
	}
	return fmt.Sprintf("%s (%s)", localTime(end), elapsed(start, end))
}

// writeBlock writes text, if there is any, under "name:", each line
// indented.
func writeBlock(b *strings.Builder, name, text string) {
	if text == "" {
		return
	}
	fmt.Fprintf(b, "\n%s:\n", name)
	for line := range strings.SplitSeq(strings.TrimRight(text, "\n"), "\n") {
		b.WriteString("  " + line + "\n")
	}
}

// showTasks shows tasks of step, those that what names, sorted by their
// index:
//
//	step square of run 1m89nzs2917d: 3 tasks, 3 succeeded
//
//	TASK      STATUS     ATTEMPT  DURATION  ARTIFACTS
//	square.0  succeeded  1        <1ms      numbers, square
func (v *viewer) showTasks(what, step string, tasks []store.Task) error {
	if v.json {
		return failed(writeIndentedJSON(v.w, history.NewStepTasksJSON(v.run.ID, step, tasks)))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s of run %s: %s, %s\n\n", what, v.run.ID, plural(len(tasks), "task"), statusCounts(tasks))
	rows := [][]string{{"TASK", "STATUS", "ATTEMPT", "DURATION", "ARTIFACTS"}}
	for _, t := range tasks {
		names := strings.Join(slices.Sorted(maps.Keys(t.Artifacts)), ", ")
		rows = append(rows, []string{t.ID, taskStatus(t), strconv.Itoa(t.Attempt), elapsed(t.Started, t.Ended), names})
	}
	writeTable(&b, "", rows)
	return v.write(b.String())
}

// showTask shows task t, its attempts and its artifacts:
//
//	task square.1 of run 1m89nzs2917d
//	status   succeeded
//	started  2025-06-01 10:00:00
//	ended    2025-06-01 10:00:00 (1ms)
//	parents  start
//	next     add
//	logs     -
//
//	attempts:
//	  1  succeeded  1ms
//
//	artifacts:
//	  numbers  sha256:4b1b8a374c69  13 B  [1, 2, 3]
//	  square   sha256:ada5419f184a  3 B   4
//
// then, for a task that failed, its error with its backtrace.
func (v *viewer) showTask(t store.Task) error {
	attempts, err := v.st.Attempts(v.ctx, t.RunID, t.ID)
	if err != nil {
		return failed(err)
	}
	if v.json {
		return failed(writeIndentedJSON(v.w, history.NewTaskDetailJSON(t, attempts)))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "task %s of run %s\n", t.ID, t.RunID)
	rows := [][]string{
		{"status", taskStatus(t)},
		{"started", localTime(t.Started)},
		{"ended", endedAt(t.Started, t.Ended)},
		{"parents", orDash(taskList(t.Parents))},
		{"next", orDash(strings.Join(t.Next, ", "))},
	}
	if t.ForeachLen > 0 {
		rows = append(rows, []string{"foreach", plural(t.ForeachLen, "task")})
	}
	rows = append(rows, []string{"logs", orDash(shortHash(t.Logs))})
	if t.Origin != "" {
		rows = append(rows, []string{"origin", t.Origin})
	}
	writeTable(&b, "", rows)
	if len(attempts) > 0 {
		b.WriteString("\nattempts:\n")
		rows = nil
		for _, a := range attempts {
			rows = append(rows, []string{strconv.Itoa(a.N), displayStatus(a.Status, a.Error), elapsed(a.Started, a.Ended), lastLine(a.Error)})
		}
		writeTable(&b, "  ", rows)
	}
	if len(t.Artifacts) > 0 {
		b.WriteString("\nartifacts:\n")
		rows = nil
		for _, name := range slices.Sorted(maps.Keys(t.Artifacts)) {
			h := t.Artifacts[name]
			size, repr := v.preview(h)
			rows = append(rows, []string{name, shortHash(h), size, repr})
		}
		writeTable(&b, "  ", rows)
	}
	if t.Status == store.TaskSucceeded {
		writeBlock(&b, "caught error", t.Error)
	} else {
		writeBlock(&b, "error", t.Error)
	}
	return v.write(b.String())
}

// listedTasks is how many tasks of one step taskList names one by one.
const listedTasks = 3

// taskList lists the task IDs ids, such as the parents of a join, for
// people: those of a step with at most listedTasks tasks in ids one by
// one, and those of a step with more by the first and last and how many
// there are, so that the join of a foreach of 100 000 tasks takes a line:
//
//	start, body.0 … body.99999 (100000 tasks)
func taskList(ids []string) string {
	var parts []string
	for i := 0; i < len(ids); {
		step, _, _ := strings.Cut(ids[i], ".")
		j := i + 1
		for j < len(ids) && strings.HasPrefix(ids[j], step) && (len(ids[j]) == len(step) || ids[j][len(step)] == '.') {
			j++
		}
		if j-i > listedTasks {
			parts = append(parts, fmt.Sprintf("%s … %s (%d tasks)", ids[i], ids[j-1], j-i))
		} else {
			parts = append(parts, ids[i:j]...)
		}
		i = j
	}
	return strings.Join(parts, ", ")
}

// orDash returns s, or "-" if it is empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// shortHash returns h with only the first 12 digits of its SHA-256, as
// many as people compare by eye.
func shortHash(h store.Hash) string {
	const n = len("sha256:") + 12
	if len(h) <= n {
		return string(h)
	}
	return string(h[:n])
}

// Previews of artifacts in the view of a task.
const (
	// previewMax is the largest encoded artifact previewed: a task may
	// hold artifacts of any size, and its view must stay quick.
	previewMax = 1 << 20
	// previewLen is how many characters of its repr a preview shows.
	previewLen = 50
)

// preview returns the size of blob h, an artifact, and the start of its
// Starlark repr; for an artifact too big to read quickly, a pointer to
// the view of the artifact instead; for one that cannot be read, why.
func (v *viewer) preview(h store.Hash) (size, repr string) {
	blobs, err := v.run.Blobs(v.ctx)
	if err != nil {
		return "?", fmt.Sprintf("(unreadable: %v)", err)
	}
	r, err := blobs.Open(v.ctx, h)
	if err != nil {
		return "?", fmt.Sprintf("(unreadable: %v)", err)
	}
	defer r.Close()
	// Read to the end even past previewMax: the size is worth knowing,
	// and reading costs much less than decoding.
	data, err := io.ReadAll(io.LimitReader(r, previewMax+1))
	n := int64(len(data))
	if err == nil && n > previewMax {
		var rest int64
		rest, err = io.Copy(io.Discard, r)
		n += rest
		data = nil
	}
	if err != nil {
		return "?", fmt.Sprintf("(unreadable: %v)", err)
	}
	if data == nil {
		return byteSize(n), "(too big to preview: inspect the artifact)"
	}
	value, err := starlark.Decode(data)
	if err != nil {
		return byteSize(n), fmt.Sprintf("(undecodable: %v)", err)
	}
	return byteSize(n), truncateRunes(value.String(), previewLen)
}

// truncateRunes returns s, cut to n characters with an ellipsis if longer.
func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

// byteSize returns n bytes for people: 900 B, 1.5 KiB, 12.0 MiB.
func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	size, prefix := float64(n)/unit, 0
	for size >= unit && prefix < len("KMGTPE")-1 {
		size /= unit
		prefix++
	}
	return fmt.Sprintf("%.1f %ciB", size, "KMGTPE"[prefix])
}

// showArtifact prints the value of artifact name of task t, or, with
// out, writes it to the file out.
func (v *viewer) showArtifact(t store.Task, name, out string) error {
	value, err := v.run.Artifact(v.ctx, t, name)
	if err != nil {
		return lookupFailed(err)
	}
	if f, ok := value.(builtins.File); ok && out != "" && !v.json {
		if err := v.writeFile(f, out); err != nil {
			return failed(fmt.Errorf("artifact %s of task %s: %w", name, t.ID, err))
		}
		return nil
	}
	var text []byte
	if out != "" {
		text, err = rawValue(value, v.json)
	} else {
		text, err = history.FormatValue(value, v.json)
		text = append(text, '\n')
	}
	var notJSON *history.NotJSONError
	if errors.As(err, &notJSON) {
		return failed(fmt.Errorf("artifact %s of task %s has no JSON form: %w", name, t.ID, err))
	}
	if err != nil {
		return failed(fmt.Errorf("artifact %s of task %s: %w", name, t.ID, err))
	}
	if out != "" {
		return failed(os.WriteFile(out, text, 0o666))
	}
	_, err = v.w.Write(text)
	if err != nil {
		return failed(fmt.Errorf("writing the output: %w", err))
	}
	return nil
}

// writeFile writes the content of f, streamed from the run's blobs, which
// check it against its hash, to the file out; it leaves no file if the
// content cannot be read whole.
func (v *viewer) writeFile(f builtins.File, out string) (err error) {
	blobs, err := v.run.Blobs(v.ctx)
	if err != nil {
		return err
	}
	src, err := blobs.Open(v.ctx, f.ContentHash())
	if err != nil {
		return fmt.Errorf("the content of %s: %w", f, err)
	}
	defer src.Close() // read-only
	dst, err := os.Create(out)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := dst.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(out)
		}
	}()
	if _, err := io.Copy(dst, src); err != nil {
		return fmt.Errorf("the content of %s: %w", f, err)
	}
	return nil
}

// rawValue returns what dagger inspect -o writes for v: the bytes
// themselves for bytes, the text of a string, and otherwise, or with
// asJSON, what dagger inspect prints.
func rawValue(v sl.Value, asJSON bool) ([]byte, error) {
	if !asJSON {
		switch v := v.(type) {
		case sl.Bytes:
			return []byte(v), nil
		case sl.String:
			return []byte(v), nil
		}
	}
	out, err := history.FormatValue(v, asJSON)
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}
