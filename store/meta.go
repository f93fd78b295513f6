package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// ErrNotFound is wrapped by errors reporting that a run, task or attempt does
// not exist.
var ErrNotFound = errors.New("not found")

// ErrAmbiguous is wrapped by the error of Store.Run when a run ID prefix
// matches several runs.
var ErrAmbiguous = errors.New("ambiguous run ID prefix")

// RunStatus is the state of a run.
type RunStatus string

// The run statuses. A run is running until FinishRun records one of the
// others.
const (
	RunRunning   RunStatus = "running"
	RunSucceeded RunStatus = "succeeded"
	RunFailed    RunStatus = "failed"
	RunCancelled RunStatus = "cancelled"
)

// TaskStatus is the state of a task or of one attempt at it.
type TaskStatus string

// The task statuses. A task is running from StartTask until FinishTasks or
// CommitTask records one of the others.
const (
	TaskRunning   TaskStatus = "running"
	TaskSucceeded TaskStatus = "succeeded"
	TaskFailed    TaskStatus = "failed"
	TaskReused    TaskStatus = "reused" // copied from an earlier run by resume
	TaskCancelled TaskStatus = "cancelled"
)

// Run is the record of one execution of a flow. The store returns times in
// UTC, and nil for empty maps.
type Run struct {
	// ID is assigned by CreateRun: 12 characters of 0-9 and a-z (without i,
	// l, o and u) that sort by creation time.
	ID string
	// Flow is the name of the flow: its file name without ".star".
	Flow string
	// FlowPath is the absolute path of the flow file, or "" for a flow
	// that a program loaded from elsewhere, such as its embedded files.
	FlowPath string
	// CodeHash is the blob holding the code package the run executed.
	CodeHash Hash
	// Params maps parameter names to values as JSON text.
	Params map[string]string
	Status RunStatus
	// Origin is the ID of the run this one resumes, or "".
	Origin string
	// Created is set by CreateRun, Ended by FinishRun; it is zero while the
	// run is running.
	Created, Ended time.Time
	// Error describes why the run failed or was cancelled.
	Error string
	// Datastore is the URL of the datastore that holds the run's blobs
	// (its code, artifacts, foreach elements and logs), or "" for this
	// store's own blobs.
	Datastore string
	// Executor says how the run's tasks ran, as the program that started
	// the run recorded it for whoever resumes it: "" for this process or
	// subprocesses of it; `dagger kubernetes run` records its settings.
	Executor string
	// Driver names the process that ran the run, which CreateRun records,
	// for the store to tell a run that is running from one whose process
	// died (RunDead).
	Driver string
	// SetupLogs is the blob of what the flow's top-level code printed, as
	// RecordSetup recorded it, or "" for nothing.
	SetupLogs Hash
}

// RunFilter selects runs. Zero fields select everything.
type RunFilter struct {
	Flow string
	// FlowPath, if set, keeps the runs of the flow file with this
	// absolute path.
	FlowPath string
	Status   RunStatus
	// Limit is the maximum number of runs returned; 0 means no limit.
	Limit int
}

// Task is the record of one step execution within a run. The store returns
// times in UTC, and nil for empty lists and maps.
type Task struct {
	RunID string
	// ID identifies the task within its run, for example "train.3.1"; the
	// store does not interpret it.
	ID   string
	Step string
	// Parents are the IDs of the tasks this one consumed the output of.
	Parents []string
	// Index holds the positions of the task in the foreach fan-outs
	// enclosing it, outermost first; it is nil outside any foreach.
	Index  []int
	Status TaskStatus
	// Attempt is the number of the latest attempt, starting at 1.
	Attempt        int
	Started, Ended time.Time
	// Next is the step or steps chosen by the task's transition; for a
	// switch, the alternative taken.
	Next []string
	// ForeachLen is the number of elements the task fanned out to with
	// foreach, or 0.
	ForeachLen int
	// Foreach is the blob listing the elements the task fanned out to, ""
	// if it did not fan out; the engine reads it back to fan out again when
	// it resumes the run.
	Foreach Hash
	// Artifacts maps the name of every artifact visible in the task's
	// context when it finished to the blob holding its value.
	Artifacts map[string]Hash
	// Logs is the blob holding the output of the task, or "".
	Logs Hash
	// Error is the error message, with its Starlark backtrace, of a failed
	// task.
	Error string
	// Origin is, for a reused task, the ID of the run it was copied from.
	Origin string
}

// Attempt is the record of one attempt at running a task. A task is retried
// by starting it again with the next attempt number. The store returns
// times in UTC.
type Attempt struct {
	RunID, TaskID string
	// N numbers the attempts of a task from 1.
	N              int
	Status         TaskStatus
	Started, Ended time.Time
	Error          string
	Logs           Hash
}

// CreateRun records a new run, assigning its ID and creation time and
// setting its status to running; it ignores the ID, Status, Created, Ended
// and Error fields of r. It returns the run as recorded. The small blobs
// stored before, such as the code package, are stored durably with the run.
// A run whose blobs are in a datastore names it in r.Datastore.
func (s *Store) CreateRun(ctx context.Context, r Run) (Run, error) {
	if err := checkOptionalHash(r.CodeHash); err != nil {
		return Run{}, fmt.Errorf("store: create run of %s: %w", r.Flow, err)
	}
	if r.Flow == "" {
		return Run{}, errors.New("store: create run: empty flow name")
	}
	params, err := marshalJSON(r.Params, len(r.Params))
	if err != nil {
		return Run{}, fmt.Errorf("store: create run of %s: %w", r.Flow, err)
	}
	s.keepReserve()
	r.Created = time.Now().UTC()
	r.Status, r.Ended, r.Error = RunRunning, time.Time{}, ""
	r.Driver = thisDriver()
	// The code package, a large one in a file of its own, must survive a
	// crash before the run that needs it is recorded; small blobs are
	// written with the record.
	if err := s.flushFiles(ctx); err != nil {
		return Run{}, fmt.Errorf("store: create run of %s: %w", r.Flow, err)
	}
	err = s.write(ctx, true, func(tx *sql.Tx) error {
		// A run created by another process in the same millisecond may,
		// rarely, have drawn the same ID; draw again.
		for range 10 {
			r.ID = s.ids.next(r.Created)
			res, err := tx.ExecContext(ctx, `INSERT INTO runs
				(id, flow, flow_path, code_hash, params, status, origin, created, ended, error, datastore, executor, driver)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, '', ?, ?, ?)
				ON CONFLICT (id) DO NOTHING`,
				r.ID, r.Flow, r.FlowPath, r.CodeHash, params, r.Status, r.Origin, r.Created.UnixNano(), s.relDatastore(r.Datastore), r.Executor, r.Driver)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil || n == 1 {
				return err
			}
		}
		return errors.New("no unused run ID found")
	})
	if err != nil {
		return Run{}, fmt.Errorf("store: create run of %s: %w", r.Flow, err)
	}
	return r, nil
}

// FinishRun records that run id ended with the given status, which must not
// be RunRunning, and error message.
func (s *Store) FinishRun(ctx context.Context, id string, status RunStatus, errMsg string) error {
	switch status {
	case RunSucceeded, RunFailed, RunCancelled:
	default:
		return fmt.Errorf("store: finish run %s: invalid final status %q", id, status)
	}
	finish := func(tx *sql.Tx) error {
		now := time.Now().UnixNano()
		res, err := tx.ExecContext(ctx, "UPDATE runs SET status = ?, ended = ?, error = ? WHERE id = ?",
			status, now, errMsg, id)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err == nil && n == 0 {
			err = ErrNotFound
		}
		if err != nil {
			return err
		}
		return endTasks(ctx, tx, id, status, now)
	}
	// The records queued before, a task's start say, are written first,
	// for the run's end to find, and end, the tasks they start. That they
	// could not be must not keep the run's end from being recorded.
	queued := s.enqueue(ctx, commitRequest{})
	err := s.write(ctx, true, finish)
	if errors.Is(err, ErrDiskFull) && s.giveUpReserve() {
		// How the run ended matters more than the small blobs pending
		// with it, which no record needs yet, and which stay pending.
		err = diskFull(s.dir, s.writeTx(ctx, true, false, finish))
	}
	if err != nil {
		return fmt.Errorf("store: finish run %s: %w", id, errors.Join(err, queued))
	}
	return nil
}

// endTasks records ended the tasks, and attempts, of run id still recorded
// running, whose end the run's driver could not record (a full disk, say),
// so that a finished run has no running task: they end failed, or
// cancelled in a cancelled run. Their error sends to the run's, which says
// why.
func endTasks(ctx context.Context, tx *sql.Tx, id string, status RunStatus, now int64) error {
	ended := TaskFailed
	if status == RunCancelled {
		ended = TaskCancelled
	}
	const why = "the run ended before the end of this task could be recorded; the run's error says why"
	for _, q := range []string{
		"UPDATE tasks SET status = ?, ended = ?, error = ? WHERE run_id = ? AND status = ?",
		"UPDATE attempts SET status = ?, ended = ?, error = ? WHERE run_id = ? AND status = ?",
	} {
		if _, err := tx.ExecContext(ctx, q, ended, now, why, id, TaskRunning); err != nil {
			return err
		}
	}
	return nil
}

// inStore starts the recorded URL of a datastore inside the store's
// folder, which is kept relative to it, so that a store that is moved or
// copied keeps its runs' blobs.
const inStore = "store:"

// relDatastore returns the URL of a datastore as the store records it.
func (s *Store) relDatastore(u string) string {
	if rest, ok := strings.CutPrefix(u, s.dirURL()); ok && rest != "" {
		return inStore + rest
	}
	return u
}

// absDatastore returns the URL of a datastore the store recorded.
func (s *Store) absDatastore(u string) string {
	if rest, ok := strings.CutPrefix(u, inStore); ok {
		return s.dirURL() + rest
	}
	return u
}

// LocalDatastore returns the URL of a file datastore in the store's folder,
// which it makes if needed: for runs whose tasks run in other processes,
// which never open the store. The store records it relative to itself.
func (s *Store) LocalDatastore() (string, error) {
	if err := os.MkdirAll(filepath.Join(s.dir, "datastore"), 0o777); err != nil {
		return "", fmt.Errorf("store: %w", err)
	}
	return s.dirURL() + "datastore", nil
}

// dirURL returns the file URL of the store's folder, with a final slash.
func (s *Store) dirURL() string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(s.dir) + "/"}).String()
}

const runColumns = "id, flow, flow_path, code_hash, params, status, origin, created, ended, error, datastore, executor, driver, setup_logs"

// maxCandidates is how many matching runs the error for an ambiguous run ID
// prefix lists.
const maxCandidates = 5

// Run returns the run identified by ref: "latest" for the most recently
// created run, or a full run ID or any prefix of one that no other run ID
// shares. Prefixes are case-insensitive.
func (s *Store) Run(ctx context.Context, ref string) (Run, error) {
	var runs []Run
	var err error
	if ref == "latest" {
		runs, err = s.queryRuns(ctx, "SELECT "+runColumns+" FROM runs ORDER BY id DESC LIMIT 1")
	} else if prefix := strings.ToLower(ref); isIDPrefix(prefix) {
		runs, err = s.queryRuns(ctx, "SELECT "+runColumns+" FROM runs WHERE id >= ? AND id < ? ORDER BY id LIMIT ?",
			prefix, idPrefixEnd(prefix), maxCandidates+1)
	}
	switch {
	case err != nil:
		return Run{}, fmt.Errorf("store: run %q: %w", ref, err)
	case len(runs) == 0:
		return Run{}, fmt.Errorf("store: run %q: %w", ref, ErrNotFound)
	case len(runs) > 1:
		var b strings.Builder
		for i, r := range runs[:min(len(runs), maxCandidates)] {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s (%s, %s)", r.ID, r.Flow, r.Created.Local().Format(time.DateTime))
		}
		if len(runs) > maxCandidates {
			b.WriteString(", ...")
		}
		return Run{}, fmt.Errorf("store: run %q: %w: matches %s", ref, ErrAmbiguous, b.String())
	}
	return runs[0], nil
}

// Runs returns the runs selected by f, newest first.
func (s *Store) Runs(ctx context.Context, f RunFilter) ([]Run, error) {
	q := "SELECT " + runColumns + " FROM runs"
	var conds []string
	var args []any
	if f.Flow != "" {
		conds = append(conds, "flow = ?")
		args = append(args, f.Flow)
	}
	if f.FlowPath != "" {
		conds = append(conds, "flow_path = ?")
		args = append(args, f.FlowPath)
	}
	// A dead run is recorded running: which is which is known only once
	// read.
	live := f.Status == RunRunning || f.Status == RunDead
	switch {
	case live:
		conds = append(conds, "status = ?")
		args = append(args, RunRunning)
	case f.Status != "":
		conds = append(conds, "status = ?")
		args = append(args, f.Status)
	}
	if len(conds) > 0 {
		q += " WHERE " + strings.Join(conds, " AND ")
	}
	q += " ORDER BY id DESC"
	if f.Limit > 0 && !live {
		q += " LIMIT ?"
		args = append(args, f.Limit)
	}
	runs, err := s.queryRuns(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list runs: %w", err)
	}
	if live {
		runs = slices.DeleteFunc(runs, func(r Run) bool { return r.Status != f.Status })
		if f.Limit > 0 && len(runs) > f.Limit {
			runs = runs[:f.Limit]
		}
	}
	return runs, nil
}

func (s *Store) queryRuns(ctx context.Context, query string, args ...any) ([]Run, error) {
	rows, err := s.rdb.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var runs []Run
	var m *machine
	for rows.Next() {
		var (
			r              Run
			params         sql.NullString
			created, ended sql.NullInt64
		)
		if err := rows.Scan(&r.ID, &r.Flow, &r.FlowPath, &r.CodeHash, &params, &r.Status, &r.Origin, &created, &ended, &r.Error, &r.Datastore, &r.Executor, &r.Driver, &r.SetupLogs); err != nil {
			return nil, err
		}
		if err := unmarshalJSON(params, &r.Params); err != nil {
			return nil, fmt.Errorf("run %s: params: %w", r.ID, err)
		}
		r.Created, r.Ended = fromNullTime(created), fromNullTime(ended)
		r.Datastore = s.absDatastore(r.Datastore)
		if r.Status == RunRunning {
			if m == nil {
				mm := thisMachine() // read only when a run may be dead
				m = &mm
			}
			if m.judge(r.Driver) == gone {
				r.Status = RunDead
			}
		}
		runs = append(runs, r)
	}
	return runs, rows.Err()
}

const upsertTaskSQL = `INSERT INTO tasks
	(run_id, id, step, parents, idx, status, attempt, started, ended, next, foreach_len, foreach, logs, error, origin)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (run_id, id) DO UPDATE SET
		step = excluded.step, parents = excluded.parents, idx = excluded.idx,
		status = excluded.status, attempt = excluded.attempt,
		started = excluded.started, ended = excluded.ended, next = excluded.next,
		foreach_len = excluded.foreach_len, foreach = excluded.foreach, logs = excluded.logs,
		error = excluded.error, origin = excluded.origin`

const upsertAttemptSQL = `INSERT INTO attempts
	(run_id, task_id, n, status, started, ended, error, logs)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (run_id, task_id, n) DO UPDATE SET
		status = excluded.status, started = excluded.started, ended = excluded.ended,
		error = excluded.error, logs = excluded.logs`

// StartTask records that attempt t.Attempt at task t has started: the task
// becomes running, losing the results of any earlier attempt, and the
// attempt is recorded as running. Only the identity, Step, Parents, Index,
// Attempt and Started fields of t are used. Attempt 1 must be the task's
// first record, as it is in a run: there is nothing earlier to lose, and
// its start looks for nothing, which saves a fifth of what recording a
// small task costs.
//
// Like CommitTask, StartTask batches concurrent calls, and records are
// written in the order of the calls. The record is not made durable by
// itself but by the next durable write, such as that of CommitTask: after a
// crash, a task that was merely running is as good as never started.
func (s *Store) StartTask(ctx context.Context, t Task) error {
	return s.startTask(ctx, t, true)
}

// QueueStartTask is StartTask for a caller that need not wait for the
// record: it returns once the record is queued, to be written with the next
// batch and before any later record of the task, such as its CommitTask.
// An engine running many short tasks saves the wait for a batch in each.
// The record is not visible to readers before it is written, and an error
// writing it (a task of an unknown run, say) fails the task's CommitTask
// too, as that record has the same fault.
func (s *Store) QueueStartTask(ctx context.Context, t Task) error {
	return s.startTask(ctx, t, false)
}

func (s *Store) startTask(ctx context.Context, t Task, wait bool) error {
	t = Task{
		RunID:   t.RunID,
		ID:      t.ID,
		Step:    t.Step,
		Parents: t.Parents,
		Index:   t.Index,
		Status:  TaskRunning,
		Attempt: t.Attempt,
		Started: t.Started,
	}
	a := Attempt{RunID: t.RunID, TaskID: t.ID, N: t.Attempt, Status: TaskRunning, Started: t.Started}
	err := checkTask(t, false)
	if err == nil {
		req := commitRequest{rec: &taskRecord{task: t, attempt: a, first: t.Attempt == 1}}
		if wait {
			err = s.enqueue(ctx, req)
		} else {
			_, err = s.queue(ctx, req)
		}
	}
	if err != nil {
		return fmt.Errorf("store: start task %s/%s: %w", t.RunID, t.ID, err)
	}
	return nil
}

// FinishTasks records that the tasks ts and attempts as have finished,
// replacing earlier records of the same tasks and attempts. It first
// flushes the blob files, and then records all of them in one durable
// transaction with the pending small blobs, so that a task recorded as
// finished never refers to blobs a crash could lose. The tasks need not have
// been started: resume records reused tasks this way.
//
// See CommitTask for recording tasks that finish concurrently.
func (s *Store) FinishTasks(ctx context.Context, ts []Task, as []Attempt) error {
	if err := checkFinished(ts, as); err != nil {
		return fmt.Errorf("store: finish tasks: %w", err)
	}
	if err := s.flushFiles(ctx); err != nil {
		return fmt.Errorf("store: finish tasks: %w", err)
	}
	if err := s.recordFinished(ctx, ts, as); err != nil {
		return fmt.Errorf("store: finish tasks: %w", err)
	}
	return nil
}

func checkFinished(ts []Task, as []Attempt) error {
	for _, t := range ts {
		if err := checkTask(t, true); err != nil {
			return fmt.Errorf("task %s/%s: %w", t.RunID, t.ID, err)
		}
	}
	for _, a := range as {
		if err := checkAttempt(a); err != nil {
			return fmt.Errorf("task %s/%s attempt %d: %w", a.RunID, a.TaskID, a.N, err)
		}
	}
	return nil
}

func (s *Store) recordFinished(ctx context.Context, ts []Task, as []Attempt) error {
	return s.write(ctx, true, func(tx *sql.Tx) error {
		w := s.taskWriter(ctx, tx)
		for _, t := range ts {
			if err := w.task(t, true); err != nil {
				return err
			}
		}
		for _, a := range as {
			if err := w.attempt(a); err != nil {
				return err
			}
		}
		return nil
	})
}

// taskWriter writes checked task and attempt records in a transaction.
type taskWriter struct {
	ctx             context.Context
	upsertTask      *sql.Stmt
	deleteArtifacts *sql.Stmt
	insertArtifact  *sql.Stmt
	upsertAttempt   *sql.Stmt
}

func (s *Store) taskWriter(ctx context.Context, tx *sql.Tx) *taskWriter {
	return &taskWriter{
		ctx:             ctx,
		upsertTask:      tx.StmtContext(ctx, s.upsertTask),
		deleteArtifacts: tx.StmtContext(ctx, s.deleteArtifacts),
		insertArtifact:  tx.StmtContext(ctx, s.insertArtifact),
		upsertAttempt:   tx.StmtContext(ctx, s.upsertAttempt),
	}
}

// task writes t and its artifacts, replacing those recorded before if
// dropArtifacts is set.
func (w *taskWriter) task(t Task, dropArtifacts bool) error {
	parents, err := marshalJSON(t.Parents, len(t.Parents))
	if err != nil {
		return err
	}
	index, err := marshalJSON(t.Index, len(t.Index))
	if err != nil {
		return err
	}
	next, err := marshalJSON(t.Next, len(t.Next))
	if err != nil {
		return err
	}
	if _, err := w.upsertTask.ExecContext(w.ctx, t.RunID, t.ID, t.Step, parents, index, t.Status, t.Attempt,
		nullTime(t.Started), nullTime(t.Ended), next, t.ForeachLen, nullHash(t.Foreach), t.Logs, t.Error, t.Origin); err != nil {
		return fmt.Errorf("task %s/%s: %w", t.RunID, t.ID, err)
	}
	if dropArtifacts {
		if _, err := w.deleteArtifacts.ExecContext(w.ctx, t.RunID, t.ID); err != nil {
			return fmt.Errorf("task %s/%s: %w", t.RunID, t.ID, err)
		}
	}
	for name, h := range t.Artifacts {
		if _, err := w.insertArtifact.ExecContext(w.ctx, t.RunID, t.ID, name, h); err != nil {
			return fmt.Errorf("task %s/%s: artifact %s: %w", t.RunID, t.ID, name, err)
		}
	}
	return nil
}

func (w *taskWriter) attempt(a Attempt) error {
	if _, err := w.upsertAttempt.ExecContext(w.ctx, a.RunID, a.TaskID, a.N, a.Status,
		nullTime(a.Started), nullTime(a.Ended), a.Error, a.Logs); err != nil {
		return fmt.Errorf("task %s/%s attempt %d: %w", a.RunID, a.TaskID, a.N, err)
	}
	return nil
}

const taskColumns = "run_id, id, step, parents, idx, status, attempt, started, ended, next, foreach_len, foreach, logs, error, origin"

// Tasks returns the tasks of run runID (a full ID) in the order they
// started.
func (s *Store) Tasks(ctx context.Context, runID string) ([]Task, error) {
	var ts []Task
	err := s.read(ctx, func(tx *sql.Tx) error {
		var err error
		ts, err = queryTasks(ctx, tx, runID, "")
		if err != nil || len(ts) > 0 {
			return err
		}
		return checkExists(ctx, tx, "SELECT 1 FROM runs WHERE id = ?", runID)
	})
	if err != nil {
		return nil, fmt.Errorf("store: tasks of run %s: %w", runID, err)
	}
	return ts, nil
}

// Task returns task taskID of run runID (a full ID).
func (s *Store) Task(ctx context.Context, runID, taskID string) (Task, error) {
	var ts []Task
	err := s.read(ctx, func(tx *sql.Tx) error {
		if taskID == "" {
			return ErrNotFound
		}
		var err error
		ts, err = queryTasks(ctx, tx, runID, taskID)
		if err == nil && len(ts) == 0 {
			err = ErrNotFound
		}
		return err
	})
	if err != nil {
		return Task{}, fmt.Errorf("store: task %s/%s: %w", runID, taskID, err)
	}
	return ts[0], nil
}

// queryTasks returns, with their artifacts, the tasks of run runID in start
// order, or only task taskID if it is not empty.
func queryTasks(ctx context.Context, tx *sql.Tx, runID, taskID string) ([]Task, error) {
	taskQuery := "SELECT " + taskColumns + " FROM tasks WHERE run_id = ? ORDER BY seq"
	artifactQuery := "SELECT task_id, name, hash FROM artifacts WHERE run_id = ?"
	args := []any{runID}
	if taskID != "" {
		taskQuery = "SELECT " + taskColumns + " FROM tasks WHERE run_id = ? AND id = ?"
		artifactQuery += " AND task_id = ?"
		args = append(args, taskID)
	}

	ts, err := scanTasks(ctx, tx, taskQuery, args...)
	if err != nil || len(ts) == 0 {
		return nil, err
	}
	byID := make(map[string]int, len(ts))
	for i, t := range ts {
		byID[t.ID] = i
	}
	return ts, scanArtifacts(ctx, tx, ts, byID, artifactQuery, args)
}

// scanTasks returns the tasks that query, which selects taskColumns,
// returns, without their artifacts.
func scanTasks(ctx context.Context, tx *sql.Tx, query string, args ...any) ([]Task, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ts []Task
	for rows.Next() {
		t, err := scanTask(rows)
		if err != nil {
			return nil, err
		}
		ts = append(ts, t)
	}
	return ts, rows.Err()
}

// scanTask reads a row of taskColumns, after the columns of dest, if any.
func scanTask(rows *sql.Rows, dest ...any) (Task, error) {
	var (
		t                    Task
		parents, index, next sql.NullString
		foreach              sql.NullString
		started, ended       sql.NullInt64
	)
	dest = append(dest, &t.RunID, &t.ID, &t.Step, &parents, &index, &t.Status, &t.Attempt,
		&started, &ended, &next, &t.ForeachLen, &foreach, &t.Logs, &t.Error, &t.Origin)
	if err := rows.Scan(dest...); err != nil {
		return Task{}, err
	}
	t.Foreach = Hash(foreach.String)
	if err := errors.Join(unmarshalJSON(parents, &t.Parents), unmarshalJSON(index, &t.Index), unmarshalJSON(next, &t.Next)); err != nil {
		return Task{}, fmt.Errorf("task %s/%s: %w", t.RunID, t.ID, err)
	}
	t.Started, t.Ended = fromNullTime(started), fromNullTime(ended)
	return t, nil
}

// scanArtifacts adds the artifacts that query returns to ts, whose
// indices by task ID are in at.
func scanArtifacts(ctx context.Context, tx *sql.Tx, ts []Task, at map[string]int, query string, args []any) error {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var taskID, name string
		var h Hash
		if err := rows.Scan(&taskID, &name, &h); err != nil {
			return err
		}
		t := &ts[at[taskID]]
		if t.Artifacts == nil {
			t.Artifacts = make(map[string]Hash)
		}
		t.Artifacts[name] = h
	}
	return rows.Err()
}

// Attempts returns the attempts at task taskID of run runID (a full ID),
// first attempt first.
func (s *Store) Attempts(ctx context.Context, runID, taskID string) ([]Attempt, error) {
	var as []Attempt
	err := s.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT run_id, task_id, n, status, started, ended, error, logs
			FROM attempts WHERE run_id = ? AND task_id = ? ORDER BY n`, runID, taskID)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var a Attempt
			var started, ended sql.NullInt64
			if err := rows.Scan(&a.RunID, &a.TaskID, &a.N, &a.Status, &started, &ended, &a.Error, &a.Logs); err != nil {
				return err
			}
			a.Started, a.Ended = fromNullTime(started), fromNullTime(ended)
			as = append(as, a)
		}
		if err := rows.Err(); err != nil || len(as) > 0 {
			return err
		}
		return checkExists(ctx, tx, "SELECT 1 FROM tasks WHERE run_id = ? AND id = ?", runID, taskID)
	})
	if err != nil {
		return nil, fmt.Errorf("store: attempts at task %s/%s: %w", runID, taskID, err)
	}
	return as, nil
}

// checkExists returns ErrNotFound if query returns no row.
func checkExists(ctx context.Context, tx *sql.Tx, query string, args ...any) error {
	var one int
	err := tx.QueryRowContext(ctx, query, args...).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

// checkTask returns an error if t cannot be recorded as started or, if
// finished is set, as finished.
func checkTask(t Task, finished bool) error {
	switch {
	case t.RunID == "":
		return errors.New("empty run ID")
	case t.ID == "":
		return errors.New("empty task ID")
	case t.Step == "":
		return errors.New("empty step name")
	case t.ForeachLen < 0:
		return fmt.Errorf("negative foreach length %d", t.ForeachLen)
	}
	if finished {
		if !isFinal(t.Status) {
			return fmt.Errorf("invalid final status %q", t.Status)
		}
		if t.Attempt < 0 {
			return fmt.Errorf("invalid attempt number %d", t.Attempt)
		}
	} else if t.Attempt < 1 {
		return fmt.Errorf("invalid attempt number %d", t.Attempt)
	}
	if err := checkOptionalHash(t.Logs); err != nil {
		return fmt.Errorf("logs: %w", err)
	}
	if err := checkOptionalHash(t.Foreach); err != nil {
		return fmt.Errorf("foreach: %w", err)
	}
	for name, h := range t.Artifacts {
		if err := checkHash(string(h)); err != nil {
			return fmt.Errorf("artifact %s: %w", name, err)
		}
	}
	return errors.Join(checkTime(t.Started), checkTime(t.Ended))
}

func checkAttempt(a Attempt) error {
	switch {
	case a.RunID == "":
		return errors.New("empty run ID")
	case a.TaskID == "":
		return errors.New("empty task ID")
	case a.N < 1:
		return fmt.Errorf("invalid attempt number %d", a.N)
	case !isFinal(a.Status):
		return fmt.Errorf("invalid final status %q", a.Status)
	}
	if err := checkOptionalHash(a.Logs); err != nil {
		return fmt.Errorf("logs: %w", err)
	}
	return errors.Join(checkTime(a.Started), checkTime(a.Ended))
}

func isFinal(st TaskStatus) bool {
	switch st {
	case TaskSucceeded, TaskFailed, TaskReused, TaskCancelled:
		return true
	}
	return false
}

// checkTime returns an error for times that cannot be stored as int64
// nanoseconds since 1970: those before 1678 or after 2262.
func checkTime(t time.Time) error {
	if !t.IsZero() && (t.Before(time.Unix(0, math.MinInt64)) || t.After(time.Unix(0, math.MaxInt64))) {
		return fmt.Errorf("time %v out of range", t)
	}
	return nil
}

func nullTime(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixNano(), Valid: true}
}

// nullHash stores the empty Hash as NULL.
func nullHash(h Hash) sql.NullString {
	return sql.NullString{String: string(h), Valid: h != ""}
}

func fromNullTime(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}

// marshalJSON encodes v, of length n, for a JSON column, storing NULL for
// empty values.
func marshalJSON(v any, n int) (sql.NullString, error) {
	if n == 0 {
		return sql.NullString{}, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return sql.NullString{}, err
	}
	return sql.NullString{String: string(b), Valid: true}, nil
}

func unmarshalJSON(s sql.NullString, v any) error {
	if !s.Valid {
		return nil
	}
	return json.Unmarshal([]byte(s.String), v)
}
