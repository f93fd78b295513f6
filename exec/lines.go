package exec

import (
	"sync"
	"time"

	"github.com/daggerflow/dagger/store"
)

// A lineBatch gathers the lines an attempt at a task prints, and reports
// them together: to OnEvent, as TaskOutput events that share one lock and
// one reading of the clock, and to the live log in one call. Reported one
// at a time, a line cost more in locks, clock readings and lookups than
// the task spent printing it.
//
// A batch is reported once it holds maxBatchLines lines, at most delay
// after its first line was printed, before any other event of the attempt,
// and when the executor returns, so that the attempt's lines come before
// its end is reported. mu is held while a batch is reported, so that
// batches come in order.
type lineBatch struct {
	s     *scheduler
	spec  *TaskSpec
	delay time.Duration // outputDelay, but in tests

	mu     sync.Mutex
	lines  *[]string          // that wait; from s.lineBufs, and back there when closed
	timer  *time.Timer        // reports the lines that wait; nil when none is due
	live   *store.LiveAttempt // the attempt's live output, once it printed
	closed bool               // the executor returned
	// abandoned is set, with emitMu held too, once the scheduler gave up
	// on the attempt, which then reports nothing more.
	abandoned bool
}

// maxBatchLines bounds the lines of a batch, and so the memory a task that
// prints fast holds in it, and how long OnEvent runs with the locks held:
// enough lines that what a batch costs, a timer and two locks, is little
// for each.
const maxBatchLines = 256

func (s *scheduler) newLineBatch(spec *TaskSpec) *lineBatch {
	return &lineBatch{s: s, spec: spec, delay: outputDelay}
}

// print is the attempt's print function.
func (b *lineBatch) print(line string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		// A program the task started prints after the executor returned:
		// nothing comes after the line to batch it with.
		b.send([]string{line})
		return
	}
	if b.lines == nil {
		b.lines = b.s.lineBuffer()
	}
	*b.lines = append(*b.lines, line)
	switch {
	case len(*b.lines) >= maxBatchLines:
		b.report()
	case b.timer == nil:
		// A timer armed for lines reported since reports those that came
		// after them sooner: the delay is still kept.
		b.timer = time.AfterFunc(b.delay, b.flush)
	}
}

// flush reports the lines that wait, when the delay has passed.
func (b *lineBatch) flush() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.timer = nil
	b.report()
}

// emit reports the lines that wait, then e, another event of the attempt.
func (b *lineBatch) emit(e Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.report()
	b.s.emitUnless(&b.abandoned, e)
}

// close reports the lines that wait, once the executor returned.
func (b *lineBatch) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	b.report()
	b.closed = true
	if b.lines != nil {
		b.s.lineBufs.Put(b.lines)
		b.lines = nil
	}
}

// abandon reports the lines that wait, printed before the scheduler gave
// up on the attempt, and stops the attempt's reports.
func (b *lineBatch) abandon() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.report()
	b.s.emitMu.Lock()
	defer b.s.emitMu.Unlock()
	b.abandoned = true
}

// report reports the lines that wait, with mu held.
func (b *lineBatch) report() {
	if b.lines == nil || len(*b.lines) == 0 {
		return
	}
	b.send(*b.lines)
	clear(*b.lines) // for the collector: the lines are reported
	*b.lines = (*b.lines)[:0]
}

// send reports lines to the live log and to OnEvent, with mu held.
func (b *lineBatch) send(lines []string) {
	spec := b.spec
	if b.live == nil {
		b.live = b.s.live.Attempt(spec.TaskID, spec.Attempt)
	}
	b.live.Add(lines...)
	b.s.emitLines(&b.abandoned, Event{Kind: TaskOutput, Step: spec.Step, TaskID: spec.TaskID, Attempt: spec.Attempt}, lines...)
}

// lineBuffer returns an empty slice for the lines of a batch: one that
// the batch of an attempt that ended had, rather than one grown anew for
// each attempt that prints.
func (s *scheduler) lineBuffer() *[]string {
	if lines, ok := s.lineBufs.Get().(*[]string); ok {
		return lines
	}
	lines := make([]string, 0, maxBatchLines)
	return &lines
}
