package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// The queries of this file serve readers that must not hold a whole run in
// memory, such as a web page of a run of 100 000 tasks: a page of a step's
// tasks, the few columns that statistics need, and the tasks that changed
// since a reader last looked. They only read.

// TaskOrder is the order of a page of tasks.
type TaskOrder string

// The orders of TaskPage.
const (
	// ByIndex orders tasks by their foreach index, as people count them.
	ByIndex TaskOrder = "index"
	// ByStatus groups tasks by status (in the order of their names), by
	// index within each.
	ByStatus TaskOrder = "status"
	// ByDuration puts the longest tasks first, then those still running,
	// each in the order they started.
	ByDuration TaskOrder = "duration"
)

// indexOrder orders by the index column, a JSON array such as [12] or
// [0,12], compared as numbers for up to four nested foreach levels, then
// by start. The first number is read by CAST, which stops at the comma or
// bracket after it, and json_extract, ten times slower over 100 000 rows,
// reads the others only for the indices that have them. Its first term is
// that of the index tasks_by_index.
const indexOrder = `CAST(substr(idx, 2) AS INTEGER),
	CASE WHEN instr(idx, ',') THEN json_extract(idx, '$[1]') END,
	CASE WHEN instr(idx, ',') THEN json_extract(idx, '$[2]') END,
	CASE WHEN instr(idx, ',') THEN json_extract(idx, '$[3]') END, seq`

// TaskPage returns, with their artifacts, at most limit tasks of step of
// run runID (a full ID) in the given order, after skipping offset of
// them, and how many tasks the step has. limit 0 means no limit.
func (s *Store) TaskPage(ctx context.Context, runID, step string, order TaskOrder, offset, limit int) ([]Task, int, error) {
	// SQLite's planner would rather sort a step's tasks than walk the
	// index of their order and read each task where it is: told to, it
	// reads a page at offset 0 at once, rather than after sorting 100 000.
	var by, index string
	switch order {
	case ByIndex, "":
		by, index = indexOrder, " INDEXED BY tasks_by_index"
	case ByStatus:
		by = "status, " + indexOrder
	case ByDuration:
		by, index = "ended IS NULL, ended - started DESC, seq", " INDEXED BY tasks_by_duration"
	default:
		return nil, 0, fmt.Errorf("store: unknown task order %q: want index, status or duration", order)
	}
	if limit <= 0 {
		limit = -1 // SQLite's "no limit"
	}
	var ts []Task
	var total int
	err := s.read(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, "SELECT count(*) FROM tasks WHERE run_id = ? AND step = ?", runID, step).Scan(&total)
		if err != nil {
			return err
		}
		q := "SELECT " + taskColumns + " FROM tasks" + index + " WHERE run_id = ? AND step = ? ORDER BY " + by + " LIMIT ? OFFSET ?"
		if ts, err = scanTasks(ctx, tx, q, runID, step, limit, max(offset, 0)); err != nil {
			return err
		}
		return addArtifacts(ctx, tx, runID, ts)
	})
	if err != nil {
		return nil, 0, fmt.Errorf("store: tasks of step %s of run %s: %w", step, runID, err)
	}
	return ts, total, nil
}

// TasksByID returns, with their artifacts, the tasks of run runID (a full
// ID) whose IDs are given, in the order they started; IDs of no task are
// left out.
func (s *Store) TasksByID(ctx context.Context, runID string, ids []string) ([]Task, error) {
	var ts []Task
	err := s.read(ctx, func(tx *sql.Tx) error {
		const batch = 500 // below SQLite's limit on parameters
		for len(ids) > 0 {
			n := min(len(ids), batch)
			args := []any{runID}
			for _, id := range ids[:n] {
				args = append(args, id)
			}
			q := "SELECT " + taskColumns + " FROM tasks WHERE run_id = ? AND id IN (?" + strings.Repeat(", ?", n-1) + ") ORDER BY seq"
			page, err := scanTasks(ctx, tx, q, args...)
			if err != nil {
				return err
			}
			ts = append(ts, page...)
			ids = ids[n:]
		}
		return addArtifacts(ctx, tx, runID, ts)
	})
	if err != nil {
		return nil, fmt.Errorf("store: tasks of run %s: %w", runID, err)
	}
	return ts, nil
}

// A TaskChange is a task that TasksChanged returns, with the position
// of its record among those of the run, which a reader passes back.
type TaskChange struct {
	Task
	Seq int64
}

// TasksChanged returns, without their artifacts, the tasks of run runID
// (a full ID) that were first recorded after the task at position seq
// (0 for all), and those recorded running now, in the order they
// started. A reader that remembers the greatest position it was given,
// and which tasks were running, learns of every change by asking about
// those that no longer are with TasksByID.
func (s *Store) TasksChanged(ctx context.Context, runID string, seq int64) ([]TaskChange, error) {
	var out []TaskChange
	err := s.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, "SELECT seq, "+taskColumns+" FROM tasks WHERE run_id = ? AND (seq > ? OR status = ?) ORDER BY seq",
			runID, seq, TaskRunning)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var c TaskChange
			if c.Task, err = scanTask(rows, &c.Seq); err != nil {
				return err
			}
			out = append(out, c)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("store: tasks of run %s: %w", runID, err)
	}
	return out, nil
}

// A TaskState is the little of a task that statistics need.
type TaskState struct {
	Step           string
	Status         TaskStatus
	Attempt        int
	Started, Ended time.Time
	ForeachLen     int
	// Caught says that the task succeeded because its catch option took
	// its failure.
	Caught bool
}

// TaskStates calls fn with the state of each task of run runID (a full
// ID), in the order they started, reading a few columns of each and
// holding none: how statistics of a run of any width are computed in one
// pass.
func (s *Store) TaskStates(ctx context.Context, runID string, fn func(TaskState) error) error {
	err := s.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, "SELECT step, status, attempt, started, ended, foreach_len, error != '' AND status = 'succeeded' FROM tasks WHERE run_id = ? ORDER BY seq", runID)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var t TaskState
			var started, ended sql.NullInt64
			if err := rows.Scan(&t.Step, &t.Status, &t.Attempt, &started, &ended, &t.ForeachLen, &t.Caught); err != nil {
				return err
			}
			t.Started, t.Ended = fromNullTime(started), fromNullTime(ended)
			if err := fn(t); err != nil {
				return err
			}
		}
		return rows.Err()
	})
	if err != nil {
		return fmt.Errorf("store: tasks of run %s: %w", runID, err)
	}
	return nil
}

// addArtifacts reads the artifacts of ts, tasks of run runID.
func addArtifacts(ctx context.Context, tx *sql.Tx, runID string, ts []Task) error {
	if len(ts) == 0 {
		return nil
	}
	at := make(map[string]int, len(ts))
	for i, t := range ts {
		at[t.ID] = i
	}
	const batch = 500
	for start := 0; start < len(ts); start += batch {
		page := ts[start:min(start+batch, len(ts))]
		args := []any{runID}
		for _, t := range page {
			args = append(args, t.ID)
		}
		q := "SELECT task_id, name, hash FROM artifacts WHERE run_id = ? AND task_id IN (?" + strings.Repeat(", ?", len(page)-1) + ")"
		if err := scanArtifacts(ctx, tx, ts, at, q, args); err != nil {
			return err
		}
	}
	return nil
}

// A Child is a task that took another's output, as Children lists it.
type Child struct {
	ID, Step string
	Status   TaskStatus
}

// Children returns, by foreach index (see ByIndex), at most limit of the tasks
// of run runID (a full ID) whose parents include task id, skipping offset
// of them, and how many there are. steps are the steps id went to (its
// Next), where its children are: a foreach's may be a whole step of
// 100 000 tasks, so they come a page at a time.
func (s *Store) Children(ctx context.Context, runID, id string, steps []string, offset, limit int) ([]Child, int, error) {
	if len(steps) == 0 {
		return nil, 0, nil
	}
	// parents is a JSON array of IDs, which hold no quote or escape.
	needle, err := json.Marshal(id)
	if err != nil {
		return nil, 0, err
	}
	if limit <= 0 {
		limit = -1
	}
	args := []any{runID, string(needle)}
	for _, st := range steps {
		args = append(args, st)
	}
	where := " FROM tasks INDEXED BY tasks_by_index WHERE run_id = ? AND instr(parents, ?) > 0 AND step IN (?" + strings.Repeat(", ?", len(steps)-1) + ")"
	var out []Child
	var total int
	err = s.read(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, "SELECT count(*)"+where, args...).Scan(&total); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, "SELECT id, step, status"+where+" ORDER BY "+indexOrder+" LIMIT ? OFFSET ?", append(args, limit, max(offset, 0))...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var c Child
			if err := rows.Scan(&c.ID, &c.Step, &c.Status); err != nil {
				return err
			}
			out = append(out, c)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, 0, fmt.Errorf("store: children of task %s of run %s: %w", id, runID, err)
	}
	return out, total, nil
}
