package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// committer batches the records of StartTask and CommitTask, and the
// transactions of Sync. While one batch is being written, the next
// accumulates, so that the cost of a transaction, and of flushing blobs and
// the database to disk, is shared by all the tasks that start or finish in
// the meantime.
type committer struct {
	mu      sync.Mutex
	queue   []*commitRequest
	writing bool // a goroutine is writing batches
	closed  bool
	writers sync.WaitGroup
}

// taskRecord is a task and its latest attempt, to be recorded. Attempt
// number 0 stands for no attempt.
type taskRecord struct {
	task    Task
	attempt Attempt
	// first says that the record is the task's first: the start of its
	// first attempt, or its end merged with that start by coalesce. Only
	// the end of an attempt records artifacts, so a task whose first
	// record is written has none of an earlier attempt to drop.
	first bool
}

// commitRequest asks for rec to be written or, if rec is nil, for a durable
// transaction, which writes the pending small blobs.
type commitRequest struct {
	ctx     context.Context
	rec     *taskRecord
	durable bool
	done    chan error // buffered, so that the writer never waits for a caller
}

var errClosed = errors.New("store is closed")

// CommitTask records that task t and its attempt a have finished, like
// FinishTasks, and returns once the records and the blobs they refer to are
// durable. Concurrent calls are batched, so that any number of tasks that
// finish at about the same time share one flush of the blobs and one
// transaction; records are written in the order of the calls. The attempt
// is not recorded if a.N is 0, as for a task reused from another run.
//
// If ctx is done first, CommitTask returns its error and the task may or may
// not be recorded. If the blobs cannot be flushed or the database cannot be
// written, all calls in the batch fail, but a record that violates a
// constraint, such as a task of an unknown run, fails alone.
func (s *Store) CommitTask(ctx context.Context, t Task, a Attempt) error {
	var as []Attempt
	if a.N != 0 {
		as = []Attempt{a}
	}
	err := checkFinished([]Task{t}, as)
	if err == nil {
		err = s.enqueue(ctx, commitRequest{rec: &taskRecord{task: t, attempt: a}, durable: true})
	}
	if err != nil {
		return fmt.Errorf("store: commit task %s/%s: %w", t.RunID, t.ID, err)
	}
	return nil
}

// enqueue has req written in a batch and waits until it is.
func (s *Store) enqueue(ctx context.Context, r commitRequest) error {
	req, err := s.queue(ctx, r)
	if err != nil {
		return err
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// queue adds req to the queue of the next batch, in call order.
func (s *Store) queue(ctx context.Context, r commitRequest) (*commitRequest, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	req := &r
	req.ctx, req.done = ctx, make(chan error, 1)
	c := &s.commits
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errClosed
	}
	c.queue = append(c.queue, req)
	if !c.writing {
		c.writing = true
		c.writers.Go(s.writeBatches)
	}
	return req, nil
}

// writeBatches writes batches until the queue is empty.
func (s *Store) writeBatches() {
	c := &s.commits
	for {
		c.mu.Lock()
		batch := c.queue
		c.queue = nil
		if len(batch) == 0 {
			c.writing = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		s.writeBatch(batch)
	}
}

func (s *Store) writeBatch(batch []*commitRequest) {
	// The batch belongs to no single caller, and a caller that gives up
	// must not undo the work of the others: the writes are not cancelled.
	// They are bounded by the busy timeout, and Close waits for them.
	ctx := context.Background()

	live := batch[:0]
	durable := false
	for _, req := range batch {
		if err := req.ctx.Err(); err != nil {
			req.done <- err
			continue
		}
		live = append(live, req)
		durable = durable || req.durable
	}
	if len(live) == 0 {
		return
	}
	if durable {
		if err := s.flushFiles(ctx); err != nil {
			for _, req := range live {
				req.done <- err
			}
			return
		}
	}
	err := s.write(ctx, durable, func(tx *sql.Tx) error {
		w := s.taskWriter(ctx, tx)
		for _, rec := range coalesce(live) {
			if err := w.record(rec); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil || len(live) == 1 || !isConstraintViolation(err) {
		for _, req := range live {
			req.done <- err
		}
		return
	}
	// A record in the batch is wrong, a task of an unknown run say. Write
	// the records one by one so that only the culprit fails. The pending
	// blobs go with the first durable one.
	for _, req := range live {
		req.done <- s.write(ctx, req.durable, func(tx *sql.Tx) error {
			return s.taskWriter(ctx, tx).record(req.rec)
		})
	}
}

// coalesce returns the records of batch to write in one transaction, in
// order, but with the start of an attempt and its end, when both are in
// the batch, written once: the end, in the place of the start. The
// transaction ends in the same state, the task keeping its place in start
// order, and a task that starts and ends between two batches, as most
// in-process tasks do, costs one write of each row instead of two.
func coalesce(batch []*commitRequest) []*taskRecord {
	type key struct{ run, task string }
	recs := make([]*taskRecord, 0, len(batch))
	starts := make(map[key]int) // task -> place in recs of its start, while it is the task's last record
	for _, req := range batch {
		rec := req.rec
		if rec == nil {
			continue
		}
		k := key{rec.task.RunID, rec.task.ID}
		i, started := starts[k]
		delete(starts, k)
		switch {
		case started && rec.attempt.N == recs[i].attempt.N && rec.task.Status != TaskRunning:
			recs[i] = &taskRecord{task: rec.task, attempt: rec.attempt, first: recs[i].first}
		case rec.task.Status == TaskRunning:
			starts[k] = len(recs)
			recs = append(recs, rec)
		default:
			recs = append(recs, rec)
		}
	}
	return recs
}

func isConstraintViolation(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code()&0xff == sqlite3.SQLITE_CONSTRAINT
}

// record writes rec, if not nil.
func (w *taskWriter) record(rec *taskRecord) error {
	if rec == nil {
		return nil
	}
	if err := w.task(rec.task, !rec.first); err != nil {
		return err
	}
	if rec.attempt.N == 0 {
		return nil
	}
	return w.attempt(rec.attempt)
}

// close makes later StartTask and CommitTask calls fail and waits for the
// batches of earlier ones to be written.
func (c *committer) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.writers.Wait()
}
