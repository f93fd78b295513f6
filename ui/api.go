package ui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"

	sl "go.starlark.net/starlark"

	"github.com/daggerflow/dagger/dag"
	"github.com/daggerflow/dagger/history"
	"github.com/daggerflow/dagger/store"
)

// Paging of the tasks of a step.
const (
	defaultPage = 100
	maxPage     = 1000
	// maxRuns is how many runs /api/runs lists without limit=.
	defaultRuns = 100
	// maxText is how much of an artifact's value ?view=1 gives as text.
	maxText = 64 << 10
)

func (s *Server) routes() {
	s.mux.HandleFunc("GET /api/runs", s.listRuns)
	s.mux.HandleFunc("GET /api/runs/{path...}", s.runPath)
	s.mux.HandleFunc("GET /api/tasks/{run}/{task}", s.taskByID)
	s.mux.HandleFunc("GET /api/tasks/{run}/{task}/{artifact}", s.taskByID)
	s.mux.HandleFunc("GET /api/logs/{run}", s.logs)
	s.mux.HandleFunc("GET /api/logs/{run}/{task}", s.logs)
	s.mux.HandleFunc("GET /api/children/{run}/{task}", s.children)
	s.mux.HandleFunc("GET /api/stats/{run}", s.stats)
	s.mux.HandleFunc("GET /api/graph/{run}", s.graph)
	s.mux.HandleFunc("GET /api/source/{run}", s.source)
	s.mux.HandleFunc("GET /api/events", s.events)
	s.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeErrorCode(w, http.StatusNotFound, "no such API: "+r.URL.Path)
	})
}

// listRuns serves /api/runs?flow=&status=&limit=: the runs, newest first,
// as "dagger runs --json" lists them.
func (s *Server) listRuns(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.RunFilter{Flow: q.Get("flow"), Status: store.RunStatus(q.Get("status")), Limit: defaultRuns}
	statuses := []store.RunStatus{"", store.RunRunning, store.RunSucceeded, store.RunFailed, store.RunCancelled, store.RunDead}
	if !slices.Contains(statuses, f.Status) {
		writeError(w, &badRequest{fmt.Sprintf("unknown status %q: use running, succeeded, failed, cancelled or dead", f.Status)})
		return
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			writeError(w, &badRequest{fmt.Sprintf("limit must be a number, 0 for all, not %q", l)})
			return
		}
		f.Limit = n
	}
	runs, err := s.st.Runs(r.Context(), f)
	if err != nil {
		writeError(w, err)
		return
	}
	out := make([]history.RunJSON, len(runs))
	for i, run := range runs {
		out[i] = history.NewRunJSON(run)
	}
	writeJSON(w, out)
}

// loadRun reads the head of run ref, and closes it when the request ends.
func (s *Server) loadRun(ctx context.Context, ref string) (*history.Run, error) {
	if ref == "" || !isRef(ref) {
		return nil, &badRequest{fmt.Sprintf("%q is not a run ID, a prefix of one, or latest", ref)}
	}
	run, err := history.LoadHead(ctx, s.st, ref)
	if err != nil {
		return nil, err
	}
	context.AfterFunc(ctx, func() { run.Close() })
	return run, nil
}

// isRef reports whether ref may name a run: letters and digits only.
func isRef(ref string) bool {
	for _, c := range ref {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// runPath serves /api/runs/RUN[/STEP[/TASK][/ARTIFACT]], the paths of
// "dagger inspect": the run with its steps; a page of the step's tasks;
// a task with its attempts; an artifact's value.
func (s *Server) runPath(w http.ResponseWriter, r *http.Request) {
	p, err := history.ParsePath(r.PathValue("path"))
	if err != nil {
		writeError(w, &badRequest{err.Error()})
		return
	}
	run, err := s.loadRun(r.Context(), p.Run)
	if err != nil {
		writeError(w, err)
		return
	}
	switch {
	case p.Step == "":
		s.runDetail(w, r, run)
	case p.Index == nil && p.Artifact == "":
		s.stepTasks(w, r, run, p.Step)
	default:
		s.task(w, r, run, history.TaskID(p.Step, p.Index), p.Artifact)
	}
}

// runDetail serves the run with a summary of each step, in
// history.RunDetailJSON, counted in one pass over its tasks.
func (s *Server) runDetail(w http.ResponseWriter, r *http.Request, run *history.Run) {
	stats, err := s.stepStats(r.Context(), run)
	if err != nil {
		writeError(w, err)
		return
	}
	d := history.RunDetailJSON{RunJSON: history.NewRunJSON(run.Run), Steps: make([]history.StepJSON, len(stats))}
	for i, st := range stats {
		d.Steps[i] = history.StepJSON{Name: st.Name, Tasks: st.Tasks, Statuses: st.Statuses}
	}
	writeJSON(w, d)
}

// A StepPage is a page of the tasks of a step: history.StepTasksJSON,
// with where the page is among the step's tasks.
type StepPage struct {
	history.StepTasksJSON
	Total  int    `json:"total"`  // how many tasks the step has
	Offset int    `json:"offset"` // of the first task of the page
	Limit  int    `json:"limit"`
	Sort   string `json:"sort"` // index, status or duration
}

// stepTasks serves a page of the tasks of step: ?offset=&limit=&sort=.
func (s *Server) stepTasks(w http.ResponseWriter, r *http.Request, run *history.Run, step string) {
	q := r.URL.Query()
	offset, err1 := intParam(q.Get("offset"), 0)
	limit, err2 := intParam(q.Get("limit"), defaultPage)
	if err := errors.Join(err1, err2); err != nil {
		writeError(w, err)
		return
	}
	limit = min(max(limit, 1), maxPage)
	order := store.TaskOrder(q.Get("sort"))
	if order == "" {
		order = store.ByIndex
	}
	if !slices.Contains([]store.TaskOrder{store.ByIndex, store.ByStatus, store.ByDuration}, order) {
		writeError(w, &badRequest{fmt.Sprintf("unknown sort %q: use index, status or duration", order)})
		return
	}
	tasks, total, err := s.st.TaskPage(r.Context(), run.ID, step, order, offset, limit)
	if err != nil {
		writeError(w, err)
		return
	}
	if total == 0 && !slices.Contains(run.Steps(), step) {
		writeErrorCode(w, http.StatusNotFound, fmt.Sprintf("run %s has no step %s; steps: %s", run.ID, step, strings.Join(run.Steps(), ", ")))
		return
	}
	writeJSON(w, StepPage{
		StepTasksJSON: history.NewStepTasksJSON(run.ID, step, tasks),
		Total:         total, Offset: offset, Limit: limit, Sort: string(order),
	})
}

// intParam reads a number of 0 or more, def if s is "".
func intParam(s string, def int) (int, error) {
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, &badRequest{fmt.Sprintf("%q: want a number of 0 or more", s)}
	}
	return n, nil
}

// taskByID serves /api/tasks/RUN/TASK[/ARTIFACT], TASK a task's ID, such
// as square.3: what /api/runs/RUN/STEP/TASK serves, for a client that
// holds IDs, as parents are listed.
func (s *Server) taskByID(w http.ResponseWriter, r *http.Request) {
	id, artifact := r.PathValue("task"), r.PathValue("artifact")
	if !isTaskID(id) || (artifact != "" && !isName(artifact)) {
		writeError(w, &badRequest{fmt.Sprintf("%q is not a task ID or %q not an artifact's name", id, artifact)})
		return
	}
	run, err := s.loadRun(r.Context(), r.PathValue("run"))
	if err != nil {
		writeError(w, err)
		return
	}
	s.task(w, r, run, id, artifact)
}

// task serves task id of run, with its attempts, or its artifact.
func (s *Server) task(w http.ResponseWriter, r *http.Request, run *history.Run, id, artifact string) {
	t, err := s.st.Task(r.Context(), run.ID, id)
	if errors.Is(err, store.ErrNotFound) {
		writeErrorCode(w, http.StatusNotFound, fmt.Sprintf("run %s has no task %s", run.ID, id))
		return
	}
	if err != nil {
		writeError(w, err)
		return
	}
	if artifact != "" {
		s.artifact(w, r, run, t, artifact)
		return
	}
	attempts, err := s.st.Attempts(r.Context(), run.ID, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		writeError(w, err)
		return
	}
	writeJSON(w, history.NewTaskDetailJSON(t, attempts))
}

// An ArtifactView is an artifact's value for people, as ?view=1 gives it.
type ArtifactView struct {
	Name string `json:"name"`
	Type string `json:"type"` // the value's Starlark type, such as "int" or "bytes"
	// JSON is the value's JSON form, or null if it has none.
	JSON json.RawMessage `json:"json"`
	// Text is the value as "dagger inspect" prints it: its JSON form
	// indented, else Starlark, such as b"..." or set([1]); cut at 64 KiB.
	Text      string `json:"text"`
	Truncated bool   `json:"truncated"`
	// Download says that the value, bytes, is best downloaded: the
	// artifact's path without ?view=1 gives it as a file.
	Download bool `json:"download"`
	Size     int  `json:"size,omitempty"` // of bytes
}

// artifact serves the value of artifact name of t: as JSON if it has a
// JSON form, bytes as a file to download, any other value as its
// Starlark form in text; with ?view=1, an ArtifactView.
func (s *Server) artifact(w http.ResponseWriter, r *http.Request, run *history.Run, t store.Task, name string) {
	v, err := run.Artifact(r.Context(), t, name)
	if err != nil {
		writeError(w, err)
		return
	}
	b, isBytes := v.(sl.Bytes)
	if r.URL.Query().Get("view") != "" {
		writeJSON(w, viewOf(name, v))
		return
	}
	if isBytes {
		filename := fmt.Sprintf("%s-%s-%s.bin", run.ID, t.ID, name)
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": filename}))
		_, _ = w.Write([]byte(b))
		return
	}
	if data, err := history.JSON(v); err == nil {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(append(data, '\n'))
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte(v.String() + "\n"))
}

// viewOf returns value v of artifact name for people.
func viewOf(name string, v sl.Value) ArtifactView {
	view := ArtifactView{Name: name, Type: v.Type(), JSON: json.RawMessage("null")}
	if data, err := history.JSON(v); err == nil {
		view.JSON = data
	}
	if b, ok := v.(sl.Bytes); ok {
		view.Download, view.Size = true, len(b)
	}
	text, err := history.FormatValue(v, false)
	if err != nil {
		text = []byte(v.String())
	}
	if len(text) > maxText {
		text, view.Truncated = text[:maxText], true
	}
	view.Text = strings.ToValidUTF8(string(text), "\uFFFD")
	if len(view.JSON) > maxText {
		view.JSON, view.Truncated = json.RawMessage("null"), true
	}
	return view
}

// Children is a page of the tasks that took a task's output, as
// /api/children/RUN/TASK serves them.
type Children struct {
	RunID  string `json:"run_id"`
	TaskID string `json:"task_id"`
	// Total is how many children the task has: for a foreach, as many as
	// it fanned out to.
	Total  int     `json:"total"`
	Offset int     `json:"offset"`
	Tasks  []Child `json:"tasks"` // by foreach index, as a step's tasks by default
}

// A Child is a task that took another's output.
type Child struct {
	ID     string           `json:"id"`
	Step   string           `json:"step"`
	Status store.TaskStatus `json:"status"`
}

// children serves /api/children/RUN/TASK?offset=&limit=: the tasks whose
// parents include TASK, a page at a time (100 unless limit says, at most
// 1 000), looked for in the steps TASK went to.
func (s *Server) children(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("task")
	if !isTaskID(id) {
		writeError(w, &badRequest{fmt.Sprintf("%q is not a task ID", id)})
		return
	}
	q := r.URL.Query()
	offset, err1 := intParam(q.Get("offset"), 0)
	limit, err2 := intParam(q.Get("limit"), defaultPage)
	if err := errors.Join(err1, err2); err != nil {
		writeError(w, err)
		return
	}
	run, err := s.loadRun(r.Context(), r.PathValue("run"))
	if err != nil {
		writeError(w, err)
		return
	}
	t, err := s.st.Task(r.Context(), run.ID, id)
	if errors.Is(err, store.ErrNotFound) {
		writeErrorCode(w, http.StatusNotFound, fmt.Sprintf("run %s has no task %s", run.ID, id))
		return
	}
	if err != nil {
		writeError(w, err)
		return
	}
	cs, total, err := s.st.Children(r.Context(), run.ID, t.ID, t.Next, offset, min(max(limit, 1), maxPage))
	if err != nil {
		writeError(w, err)
		return
	}
	out := Children{RunID: run.ID, TaskID: t.ID, Total: total, Offset: offset, Tasks: make([]Child, len(cs))}
	for i, c := range cs {
		out.Tasks[i] = Child{ID: c.ID, Step: c.Step, Status: c.Status}
	}
	writeJSON(w, out)
}

// isTaskID reports whether id may be a task's ID: a step's name, then
// indices after dots.
func isTaskID(id string) bool {
	step, index, _ := strings.Cut(id, ".")
	if !isName(step) {
		return false
	}
	for part := range strings.SplitSeq(index, ".") {
		if index == "" {
			break
		}
		if _, err := strconv.Atoi(part); err != nil || part == "" || part[0] < '0' || part[0] > '9' {
			return false
		}
	}
	return true
}

// isName reports whether s is an identifier, as step and artifact names
// are.
func isName(s string) bool {
	if s == "" {
		return false
	}
	p, err := history.ParsePath("r/s/" + s)
	return err == nil && p.Artifact == s
}

// logs serves /api/logs/RUN[/TASK]: the lines the run's top-level code
// printed, or those task TASK printed, in each attempt, and, while it
// runs, so far, as history.LogLine.
func (s *Server) logs(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("task")
	if id != "" && !isTaskID(id) {
		writeError(w, &badRequest{fmt.Sprintf("%q is not a task ID", id)})
		return
	}
	run, err := s.loadRun(r.Context(), r.PathValue("run"))
	if err != nil {
		writeError(w, err)
		return
	}
	lr := history.NewLogReader(run)
	var lines []history.LogLine
	if id == "" {
		lines, err = lr.Setup(r.Context())
	} else {
		var t store.Task
		if t, err = s.st.Task(r.Context(), run.ID, id); err == nil {
			lines, err = lr.Read(r.Context(), t)
		}
	}
	if err != nil {
		writeError(w, err)
		return
	}
	if lines == nil {
		lines = []history.LogLine{}
	}
	writeJSON(w, lines)
}

// graph serves /api/graph/RUN: the structure of the flow the run ran, as
// "dagger show --json" prints a flow's.
func (s *Server) graph(w http.ResponseWriter, r *http.Request) {
	run, err := s.loadRun(r.Context(), r.PathValue("run"))
	if err != nil {
		writeError(w, err)
		return
	}
	g, err := run.Graph(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = dag.WriteJSON(w, g)
}

// Source is the code a run ran, as /api/source/RUN gives it.
type Source struct {
	RunID string            `json:"run_id"`
	Flow  string            `json:"flow"`  // the flow file's name in Files
	Files map[string]string `json:"files"` // by path in the package
}

// source serves /api/source/RUN: the files of the run's code package.
func (s *Server) source(w http.ResponseWriter, r *http.Request) {
	run, err := s.loadRun(r.Context(), r.PathValue("run"))
	if err != nil {
		writeError(w, err)
		return
	}
	pkg, err := run.Code(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	files := make(map[string]string, len(pkg.Files))
	for name, text := range pkg.Files {
		files[name] = strings.ToValidUTF8(text, "\uFFFD")
	}
	writeJSON(w, Source{RunID: run.ID, Flow: pkg.Flow, Files: files})
}
