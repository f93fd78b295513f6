package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// A task's output is recorded whole, in its logs blob, when the task ends.
// Until then, a LiveLog keeps what it printed in a file of the store's
// live folder, for a process that follows the run, such as dagger logs
// --follow, to show lines as they are printed: live/RUN/TASK@ATTEMPT.
//
// The files are a view for followers, not a record: they are not synced,
// the file of an attempt is removed once the attempt's record is
// committed, and the folder of a run once the run ends. What a process
// that died was printing stays there, the only trace of it.
const liveDir = "live"

// liveFlushDelay is how long a line waits to be written to its file: a
// task that ends sooner never writes one, and a task that prints many
// lines writes them in a few writes. The scheduler adds a task's lines in
// batches, each within 50 ms of its first line: a line is written within
// 200 ms of its printing.
const liveFlushDelay = 150 * time.Millisecond

// A LiveLog keeps the output of the running tasks of a run where other
// processes can read it as it comes (see Store.LiveOutput). Its methods,
// and those of its LiveAttempts, may be called concurrently; a nil LiveLog
// keeps nothing.
//
// A LiveLog that fails to write a file stops keeping output: followers
// then see each task's output when the task ends, as the record has it,
// and the run goes on.
type LiveLog struct {
	dir      string        // of the run
	delay    time.Duration // liveFlushDelay, but in tests
	mu       sync.Mutex
	attempts map[liveKey]*LiveAttempt // handed out and not ended
	due      []*LiveAttempt           // attempts with lines pending
	free     [][]byte                 // buffers no attempt holds, for reuse
	timer    *time.Timer              // writes pending; nil when nothing is due
	made     bool                     // the run's folder
	stopped  bool                     // by Close, or a failed write
}

// A LiveLog keeps the buffers of pending lines that attempts are done
// with, written or ended, for others to reuse: a buffer grown anew for
// each attempt, most of them ended before their lines are due, made
// as much garbage again as the tasks printed. maxFree and maxFreeSize
// bound the memory they keep.
const (
	maxFree     = 64
	maxFreeSize = 64 << 10
)

// A LiveAttempt is the output of one attempt at a task in a LiveLog. A
// task that prints holds one, so that adding its lines looks nothing up;
// a nil LiveAttempt keeps nothing.
type LiveAttempt struct {
	l   *LiveLog
	key liveKey
	// Guarded by l.mu.
	pending []byte // not yet written; not empty when the attempt is due
	written bool   // the attempt has a file
	ended   bool   // by End: the attempt keeps nothing more
}

// A liveKey names an attempt at a task.
type liveKey struct {
	task    string
	attempt int
}

func (k liveKey) file() string { return k.task + "@" + strconv.Itoa(k.attempt) }

// LiveLog returns the LiveLog of run runID. Close it when the run ends.
func (s *Store) LiveLog(runID string) *LiveLog {
	return &LiveLog{
		dir:      filepath.Join(s.dir, liveDir, runID),
		delay:    liveFlushDelay,
		attempts: make(map[liveKey]*LiveAttempt),
	}
}

// Attempt returns the output of attempt at task taskID, until End.
func (l *LiveLog) Attempt(taskID string, attempt int) *LiveAttempt {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	k := liveKey{taskID, attempt}
	a := l.attempts[k]
	if a == nil {
		a = &LiveAttempt{l: l, key: k}
		l.attempts[k] = a
	}
	return a
}

// Add keeps lines, printed by the attempt in this order.
func (a *LiveAttempt) Add(lines ...string) {
	if a == nil || len(lines) == 0 {
		return
	}
	l := a.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped || a.ended {
		return
	}
	if len(a.pending) == 0 {
		l.due = append(l.due, a)
		if n := len(l.free); a.pending == nil && n > 0 {
			a.pending, l.free = l.free[n-1], l.free[:n-1]
		}
	}
	for _, line := range lines {
		a.pending = append(append(a.pending, line...), '\n')
	}
	if l.timer == nil {
		l.timer = time.AfterFunc(l.delay, l.Flush)
	}
}

// End forgets the attempt at taskID, whose record, output included, is
// committed.
func (l *LiveLog) End(taskID string, attempt int) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	k := liveKey{taskID, attempt}
	a := l.attempts[k]
	if a == nil {
		return
	}
	delete(l.attempts, k)
	a.ended = true
	l.release(a)
	if a.written {
		// A file left behind is only shown again for a task that is
		// recorded running, which this one no longer is.
		_ = os.Remove(filepath.Join(l.dir, k.file()))
	}
}

// Close stops keeping output and removes the run's files: its tasks'
// records hold their output.
func (l *LiveLog) Close() {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.timer != nil {
		l.timer.Stop()
	}
	l.stopped = true
	if l.made {
		// As in End, a file left behind does no harm.
		_ = os.RemoveAll(l.dir)
	}
}

// Flush writes the output kept now, rather than liveFlushDelay after it
// was added.
func (l *LiveLog) Flush() {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.timer = nil
	if l.stopped {
		return
	}
	for i, a := range l.due {
		// An attempt that ended since it was due has nothing pending.
		if len(a.pending) > 0 {
			if err := l.append(a.key, a.pending); err != nil {
				l.stopped = true
				return
			}
			a.written = true
			l.release(a)
		}
		l.due[i] = nil
	}
	l.due = l.due[:0]
}

// release takes the buffer of pending lines of a, written or dropped,
// for reuse.
func (l *LiveLog) release(a *LiveAttempt) {
	if c := cap(a.pending); c > 0 && c <= maxFreeSize && len(l.free) < maxFree {
		l.free = append(l.free, a.pending[:0])
	}
	a.pending = nil
}

func (l *LiveLog) append(k liveKey, data []byte) error {
	if !l.made {
		if err := os.MkdirAll(l.dir, 0o777); err != nil {
			return err
		}
		l.made = true
	}
	f, err := os.OpenFile(filepath.Join(l.dir, k.file()), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o666)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	return errors.Join(err, f.Close())
}

// LiveOutput returns what attempt at task taskID of run runID printed
// while it ran, as far as its LiveLog wrote it: whole lines, each ending in
// a newline, and perhaps a part of the last. It is empty for an attempt
// that printed nothing yet, or whose record is committed.
func (s *Store) LiveOutput(runID, taskID string, attempt int) ([]byte, error) {
	data, err := os.ReadFile(filepath.Join(s.dir, liveDir, runID, liveKey{taskID, attempt}.file()))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: live output of task %s/%s: %w", runID, taskID, err)
	}
	return data, nil
}

// RecordSetup records logs, the blob of what the top-level code of run id
// printed.
func (s *Store) RecordSetup(ctx context.Context, id string, logs Hash) error {
	if err := checkHash(string(logs)); err != nil {
		return fmt.Errorf("store: record setup of run %s: %w", id, err)
	}
	err := s.write(ctx, true, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE runs SET setup_logs = ? WHERE id = ?", logs, id)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err == nil && n == 0 {
			err = ErrNotFound
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("store: record setup of run %s: %w", id, err)
	}
	return nil
}
