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

	"github.com/daggerflow/dagger/dag"
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
			&urfave.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the artifact's value to `FILE`: bytes as they are, a string as its text, anything else as printed"},
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
	if out != "" && p.artifact == "" {
		return &usageError{cmd: c.Command.HelpName, msg: "-o writes an artifact's value: give RUN/STEP[/TASK]/ARTIFACT"}
	}
	ctx := c.Context
	st, r, err := openRun(ctx, c.String("store"), p.run)
	if err != nil {
		return err
	}
	defer st.Close()
	h, err := loadHistory(ctx, st, r)
	if err != nil {
		return failed(err)
	}
	v := &viewer{ctx: ctx, st: st, h: h, w: c.App.Writer, json: c.Bool("json")}
	if p.step == "" {
		return v.showRun()
	}
	tasks, err := h.stepTasks(p.step)
	if err != nil {
		return err
	}
	if len(tasks) == 0 {
		return &exitError{code: exitInvalid, err: fmt.Errorf("step %s of run %s has no tasks: it has not run", p.step, r.ID)}
	}
	matches := byIndex(withIndex(tasks, p.index))
	if len(matches) == 0 {
		return noTaskError(r, p, tasks)
	}
	// The one task whose index is the whole of p.index, if there is one:
	// only a step outside any foreach has a task without an index.
	var task *store.Task
	if len(matches) == 1 && len(matches[0].Index) == len(p.index) {
		task = &matches[0]
	}
	switch {
	case p.artifact == "" && task == nil:
		what := "step " + p.step
		if len(p.index) > 0 {
			what = "tasks " + p.taskName() + ".*"
		}
		return v.showTasks(what, p.step, matches)
	case p.artifact == "":
		return v.showTask(*task)
	case task == nil:
		return &exitError{code: exitInvalid, err: fmt.Errorf("run %s has %s of %s: name one, as %s/%s",
			r.ID, plural(len(matches), "task"), p.taskName(), taskPath(r.ID, matches[0]), p.artifact)}
	}
	return v.showArtifact(*task, p.artifact, out)
}

// A runPath is what dagger inspect and dagger logs are given to show:
// RUN[/STEP[/TASK][/ARTIFACT]].
type runPath struct {
	run  string // "latest", or a run ID or a prefix of one
	step string // "" for the whole run
	// index holds the foreach indices given after the step, which the
	// index of the tasks shown starts with; nil for all the step's tasks.
	index    []int
	artifact string
}

// pathArg returns the one argument of dagger inspect and dagger logs,
// parsed.
func pathArg(c *urfave.Context) (runPath, error) {
	name := c.Command.HelpName
	switch c.NArg() {
	case 0:
		return runPath{}, &usageError{cmd: name, msg: "no run given: give RUN, a run ID, a prefix of one, or latest"}
	case 1:
	default:
		return runPath{}, &usageError{cmd: name, msg: fmt.Sprintf("takes one run, step or task, not %d arguments", c.NArg())}
	}
	p, err := parsePath(c.Args().First())
	if err != nil {
		return runPath{}, &usageError{cmd: name, msg: err.Error()}
	}
	return p, nil
}

// parsePath parses RUN[/STEP[/TASK][/ARTIFACT]], where TASK is the index
// of a task in its foreach fan-outs, in one element ("0.1") or in several
// ("0/1"). An element that starts with a digit is an index, since
// artifact names are identifiers; only the last element may be an
// artifact. Trailing slashes, as shells complete paths, are ignored.
func parsePath(s string) (runPath, error) {
	elems := strings.Split(strings.TrimRight(s, "/"), "/")
	if slices.Contains(elems, "") {
		return runPath{}, fmt.Errorf("%q: want RUN[/STEP[/TASK][/ARTIFACT]]", s)
	}
	p := runPath{run: elems[0]}
	rest := elems[1:]
	if len(rest) > 0 {
		p.step, rest = rest[0], rest[1:]
	}
	for i, e := range rest {
		if isDigit(e[0]) {
			index, err := parseIndex(e)
			if err != nil {
				return runPath{}, fmt.Errorf("%q: %w", s, err)
			}
			p.index = append(p.index, index...)
			continue
		}
		if i < len(rest)-1 {
			return runPath{}, fmt.Errorf("%q: %s is not a task index, and only the last element can be an artifact", s, e)
		}
		p.artifact = e
	}
	return p, nil
}

// parseIndex parses a task index, such as "3" or "0.1".
func parseIndex(s string) ([]int, error) {
	var index []int
	for part := range strings.SplitSeq(s, ".") {
		n, err := strconv.Atoi(part)
		if err != nil || part == "" || !isDigit(part[0]) {
			return nil, fmt.Errorf("bad task index %s: want numbers joined by dots, such as 3 or 0.1", s)
		}
		index = append(index, n)
	}
	return index, nil
}

// isDigit reports whether c is an ASCII digit.
func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// taskName returns the task ID that p's step and index make, such as
// "square.3", for messages.
func (p runPath) taskName() string {
	return formatTaskID(p.step, p.index)
}

// formatTaskID returns the ID of the task of step with the given foreach
// index, as the engine names it: the step, then each index after a dot.
func formatTaskID(step string, index []int) string {
	var b strings.Builder
	b.WriteString(step)
	for _, i := range index {
		b.WriteByte('.')
		b.WriteString(strconv.Itoa(i))
	}
	return b.String()
}

// taskPath returns the path that dagger inspect takes for task t of run
// runID, in its canonical form: the run, the step, and the index as the
// task's ID ends, such as 1m89nzs2917d/inner/0.1.
func taskPath(runID string, t store.Task) string {
	p := runID + "/" + t.Step
	if rest, ok := strings.CutPrefix(t.ID, t.Step+"."); ok && len(t.Index) > 0 {
		p += "/" + rest
	}
	return p
}

// A history is a run as the store recorded it.
type history struct {
	run   store.Run
	tasks []store.Task // in the order they started
	// flowSteps are the steps of the flow, in source order, as the code
	// the run saved defines them; nil if that code cannot be read.
	flowSteps []string
}

// loadHistory reads the tasks of run r from st.
func loadHistory(ctx context.Context, st *store.Store, r store.Run) (*history, error) {
	tasks, err := st.Tasks(ctx, r.ID)
	if err != nil {
		return nil, err
	}
	return &history{run: r, tasks: tasks, flowSteps: flowSteps(ctx, st, r)}, nil
}

// reload reads the run and its tasks again, as they are now.
func (h *history) reload(ctx context.Context, st *store.Store) error {
	r, err := st.Run(ctx, h.run.ID)
	if err != nil {
		return err
	}
	tasks, err := st.Tasks(ctx, r.ID)
	if err != nil {
		return err
	}
	h.run, h.tasks = r, tasks
	return nil
}

// flowSteps returns the names of the steps of the flow that run r ran, in
// source order, read from the code the run saved, without running or
// checking any of it; nil if the code cannot be read. The order of the
// source is the one people know the flow by, and it names the steps that
// have not run too. Without it, the tasks' order does.
func flowSteps(ctx context.Context, st *store.Store, r store.Run) []string {
	data, err := st.Blobs().Get(ctx, r.CodeHash)
	if err != nil {
		return nil
	}
	pkg, err := starlark.DecodePackage(data)
	if err != nil {
		return nil
	}
	f, err := dag.Parse(pkg.Flow, pkg.Files[pkg.Flow])
	if err != nil {
		return nil
	}
	// Extract returns the graph as far as it can read it, even with
	// errors, which were the run's concern, not the reader's.
	g, _ := dag.Extract(f, func(string) bool { return false })
	names := make([]string, len(g.Steps))
	for i, s := range g.Steps {
		names[i] = s.Name
	}
	return names
}

// steps returns the names of the run's steps: those of the flow, in
// source order, then those of tasks that are not the flow's, in the order
// they started.
func (h *history) steps() []string {
	names := slices.Clone(h.flowSteps)
	for _, t := range h.tasks {
		if !slices.Contains(names, t.Step) {
			names = append(names, t.Step)
		}
	}
	return names
}

// stepTasks returns the tasks of step, in the order they started. A step
// the run does not have is an error that names those it has.
func (h *history) stepTasks(step string) ([]store.Task, error) {
	steps := h.steps()
	if !slices.Contains(steps, step) {
		return nil, &exitError{code: exitInvalid, err: fmt.Errorf("run %s has no step %s; steps: %s", h.run.ID, step, listNames(steps))}
	}
	var tasks []store.Task
	for _, t := range h.tasks {
		if t.Step == step {
			tasks = append(tasks, t)
		}
	}
	return tasks, nil
}

// withIndex returns the tasks whose foreach index starts with index.
func withIndex(tasks []store.Task, index []int) []store.Task {
	var out []store.Task
	for _, t := range tasks {
		if len(t.Index) >= len(index) && slices.Equal(t.Index[:len(index)], index) {
			out = append(out, t)
		}
	}
	return out
}

// noTaskError reports that no task of p's step, whose tasks are tasks,
// has p's index.
func noTaskError(r store.Run, p runPath, tasks []store.Task) error {
	ids := make([]string, len(tasks))
	for i, t := range byIndex(tasks) {
		ids[i] = t.ID
	}
	return &exitError{code: exitInvalid, err: fmt.Errorf("run %s has no task %s; tasks of %s: %s", r.ID, p.taskName(), p.step, listNames(ids))}
}

// byIndex returns tasks sorted by their foreach index.
func byIndex(tasks []store.Task) []store.Task {
	return slices.SortedStableFunc(slices.Values(tasks), func(a, b store.Task) int {
		return slices.Compare(a.Index, b.Index)
	})
}

// maxListed is how many names a message lists.
const maxListed = 10

// listNames returns names for a message, the first few of many.
func listNames(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	if len(names) > maxListed {
		return fmt.Sprintf("%s, ... (%d in all)", strings.Join(names[:maxListed], ", "), len(names))
	}
	return strings.Join(names, ", ")
}

// A viewer writes what dagger inspect shows.
type viewer struct {
	ctx  context.Context
	st   *store.Store
	h    *history
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

// runDetailJSON is a run as dagger inspect --json prints it.
type runDetailJSON struct {
	runJSON
	Steps []stepJSON `json:"steps"`
}

// stepJSON sums up the tasks of a step.
type stepJSON struct {
	Name     string                   `json:"name"`
	Tasks    int                      `json:"tasks"`
	Statuses map[store.TaskStatus]int `json:"statuses"`
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
	r := v.h.run
	byStep := make(map[string][]store.Task)
	for _, t := range v.h.tasks {
		byStep[t.Step] = append(byStep[t.Step], t)
	}
	if v.json {
		d := runDetailJSON{runJSON: newRunJSON(r), Steps: []stepJSON{}}
		for _, name := range v.h.steps() {
			s := stepJSON{Name: name, Tasks: len(byStep[name]), Statuses: make(map[store.TaskStatus]int)}
			for _, t := range byStep[name] {
				s.Statuses[t.Status]++
			}
			d.Steps = append(d.Steps, s)
		}
		return failed(writeIndentedJSON(v.w, d))
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
	writeTable(&b, "", rows)
	b.WriteString("\nsteps:\n")
	rows = nil
	for _, name := range v.h.steps() {
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

// taskJSON is a task as dagger inspect --json prints it. Every field is
// always there: strings that do not apply are empty, lists and objects
// empty, and times null while they are unknown.
type taskJSON struct {
	RunID     string                `json:"run_id"`
	ID        string                `json:"id"`
	Step      string                `json:"step"`
	Index     []int                 `json:"index"`
	Status    store.TaskStatus      `json:"status"`
	Attempt   int                   `json:"attempt"`
	Started   *time.Time            `json:"started"`
	Ended     *time.Time            `json:"ended"`
	Parents   []string              `json:"parents"`
	Next      []string              `json:"next"`
	Foreach   int                   `json:"foreach"`
	Artifacts map[string]store.Hash `json:"artifacts"`
	Logs      store.Hash            `json:"logs"`
	Error     string                `json:"error"`
	Origin    string                `json:"origin"`
}

// newTaskJSON returns t as JSON shows it.
func newTaskJSON(t store.Task) taskJSON {
	return taskJSON{
		RunID:     t.RunID,
		ID:        t.ID,
		Step:      t.Step,
		Index:     nonNil(t.Index),
		Status:    t.Status,
		Attempt:   t.Attempt,
		Started:   optionalTime(t.Started),
		Ended:     optionalTime(t.Ended),
		Parents:   nonNil(t.Parents),
		Next:      nonNil(t.Next),
		Foreach:   t.ForeachLen,
		Artifacts: nonNilMap(t.Artifacts),
		Logs:      t.Logs,
		Error:     t.Error,
		Origin:    t.Origin,
	}
}

// nonNil returns s, or an empty slice, which JSON writes as [], not null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// nonNilMap returns m, or an empty map, which JSON writes as {}, not null.
func nonNilMap[K comparable, V any](m map[K]V) map[K]V {
	if m == nil {
		return map[K]V{}
	}
	return m
}

// stepTasksJSON is the tasks of a step as dagger inspect --json prints
// them.
type stepTasksJSON struct {
	RunID string     `json:"run_id"`
	Step  string     `json:"step"`
	Tasks []taskJSON `json:"tasks"`
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
		list := make([]taskJSON, len(tasks))
		for i, t := range tasks {
			list[i] = newTaskJSON(t)
		}
		return failed(writeIndentedJSON(v.w, stepTasksJSON{RunID: v.h.run.ID, Step: step, Tasks: list}))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s of run %s: %s, %s\n\n", what, v.h.run.ID, plural(len(tasks), "task"), statusCounts(tasks))
	rows := [][]string{{"TASK", "STATUS", "ATTEMPT", "DURATION", "ARTIFACTS"}}
	for _, t := range tasks {
		names := strings.Join(slices.Sorted(maps.Keys(t.Artifacts)), ", ")
		rows = append(rows, []string{t.ID, taskStatus(t), strconv.Itoa(t.Attempt), elapsed(t.Started, t.Ended), names})
	}
	writeTable(&b, "", rows)
	return v.write(b.String())
}

// taskDetailJSON is one task, with its attempts, as dagger inspect --json
// prints it.
type taskDetailJSON struct {
	taskJSON
	Attempts []attemptJSON `json:"attempts"`
}

// attemptJSON is an attempt at a task.
type attemptJSON struct {
	N       int              `json:"n"`
	Status  store.TaskStatus `json:"status"`
	Started *time.Time       `json:"started"`
	Ended   *time.Time       `json:"ended"`
	Error   string           `json:"error"`
	Logs    store.Hash       `json:"logs"`
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
		d := taskDetailJSON{taskJSON: newTaskJSON(t), Attempts: make([]attemptJSON, len(attempts))}
		for i, a := range attempts {
			d.Attempts[i] = attemptJSON{N: a.N, Status: a.Status, Started: optionalTime(a.Started), Ended: optionalTime(a.Ended), Error: a.Error, Logs: a.Logs}
		}
		return failed(writeIndentedJSON(v.w, d))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "task %s of run %s\n", t.ID, t.RunID)
	rows := [][]string{
		{"status", taskStatus(t)},
		{"started", localTime(t.Started)},
		{"ended", endedAt(t.Started, t.Ended)},
		{"parents", orDash(strings.Join(t.Parents, ", "))},
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
	r, err := v.st.Blobs().Open(v.ctx, h)
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
	h, ok := t.Artifacts[name]
	if !ok {
		names := slices.Sorted(maps.Keys(t.Artifacts))
		return &exitError{code: exitInvalid, err: fmt.Errorf("task %s of run %s has no artifact %s; artifacts: %s", t.ID, t.RunID, name, listNames(names))}
	}
	data, err := v.st.Blobs().Get(v.ctx, h)
	if err != nil {
		return failed(fmt.Errorf("artifact %s of task %s: %w", name, t.ID, err))
	}
	value, err := starlark.Decode(data)
	if err != nil {
		return failed(fmt.Errorf("artifact %s of task %s: %w", name, t.ID, err))
	}
	var text []byte
	if out != "" {
		text, err = rawValue(value, v.json)
	} else {
		text, err = formatValue(value, v.json)
		text = append(text, '\n')
	}
	var notJSON *notJSONError
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
