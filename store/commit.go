package store

import (
	"context"
	"fmt"
	"sync"
)

// committer batches the tasks passed to CommitTask. While one batch is being
// written, the next accumulates, so the cost of flushing blobs and the
// database is shared by all the tasks that finish in the meantime.
type committer struct {
	mu      sync.Mutex
	queue   []*commitRequest
	writing bool // a goroutine is writing batches
	closed  bool
	writers sync.WaitGroup
}

type commitRequest struct {
	ctx     context.Context
	task    Task
	attempt Attempt
	done    chan error // buffered, so that writing never waits for a caller
}

// CommitTask records that task t and its attempt a have finished, like
// FinishTasks, and returns once the records and the blobs they refer to are
// durable. Concurrent calls are batched, so that any number of tasks that
// finish at about the same time share one flush of the blobs and one
// transaction. The attempt is not recorded if a.N is 0, as for a task reused
// from another run.
//
// If ctx is done first, CommitTask returns its error and the task may or may
// not be recorded. A batch that fails as a whole, because the blobs cannot
// be flushed, fails all its calls; otherwise each call fails only for its
// own task.
func (s *Store) CommitTask(ctx context.Context, t Task, a Attempt) error {
	var as []Attempt
	if a.N != 0 {
		as = []Attempt{a}
	}
	if err := checkFinished([]Task{t}, as); err != nil {
		return fmt.Errorf("store: commit task: %w", err)
	}
	req := &commitRequest{ctx: ctx, task: t, attempt: a, done: make(chan error, 1)}

	c := &s.commits
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return fmt.Errorf("store: commit task %s/%s: store is closed", t.RunID, t.ID)
	}
	c.queue = append(c.queue, req)
	if !c.writing {
		c.writing = true
		c.writers.Go(s.writeBatches)
	}
	c.mu.Unlock()

	select {
	case err := <-req.done:
		if err != nil {
			return fmt.Errorf("store: commit task %s/%s: %w", t.RunID, t.ID, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("store: commit task %s/%s: %w", t.RunID, t.ID, ctx.Err())
	}
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
	// They are bounded by the busy timeout and by Close, which waits.
	ctx := context.Background()

	live := batch[:0]
	for _, req := range batch {
		if err := req.ctx.Err(); err != nil {
			req.done <- err
			continue
		}
		live = append(live, req)
	}
	if len(live) == 0 {
		return
	}
	ts := make([]Task, 0, len(live))
	var as []Attempt
	for _, req := range live {
		ts = append(ts, req.task)
		if req.attempt.N != 0 {
			as = append(as, req.attempt)
		}
	}

	if err := s.blobs.flush(ctx); err != nil {
		for _, req := range live {
			req.done <- err
		}
		return
	}
	err := s.recordFinished(ctx, ts, as)
	if err == nil || len(live) == 1 {
		for _, req := range live {
			req.done <- err
		}
		return
	}
	// Something in the batch is wrong, a task of an unknown run say.
	// Record the tasks one by one so that only the culprit fails.
	for _, req := range live {
		var as []Attempt
		if req.attempt.N != 0 {
			as = []Attempt{req.attempt}
		}
		req.done <- s.recordFinished(ctx, []Task{req.task}, as)
	}
}

// close makes later CommitTask calls fail and waits for the batches of
// earlier ones to be written.
func (c *committer) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.writers.Wait()
}
