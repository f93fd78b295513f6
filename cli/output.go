package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/daggerflow/dagger/exec"
)

// A printer writes the events of a run as they come. exec.Run calls event
// one call at a time.
//
// A printer writes in batches, for a run that prints many lines is slowed
// by a write per line: what events print is kept for at most flushDelay,
// or until batchSize bytes wait, and written at once.
type printer interface {
	event(exec.Event)
	// close writes what is kept, and returns the first error writing
	// the output; the printer writes nothing after it.
	close() error
}

// flushDelay bounds how long a printed line waits to be written, and so
// how often the progress line is redrawn: often enough to look live.
const flushDelay = 100 * time.Millisecond

// batchSize is how many bytes wait to be written before a batch is
// written anyway, to bound the memory output waits in.
const batchSize = 64 << 10

// A batcher keeps output and writes it in batches. Its methods but close
// are called with mu held, by the printer's event or by the timer that
// writes a batch once flushDelay has passed.
type batcher struct {
	mu    sync.Mutex
	w     io.Writer
	buf   []byte
	delay time.Duration // flushDelay, but in tests
	timer *time.Timer   // writes the batch; nil when none is due
	flush func()        // writes buf as one batch
	werr  error
}

// due has the batch written within flushDelay, or now if it is large.
func (b *batcher) due() {
	switch {
	case len(b.buf) >= batchSize:
		b.flush()
	case b.timer == nil:
		b.timer = time.AfterFunc(b.delay, func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			b.timer = nil
			b.flush()
		})
	}
}

// close writes what is kept, and returns the first error writing.
func (b *batcher) close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stop()
}

// stop writes what is kept and cancels the timer.
func (b *batcher) stop() error {
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	b.flush()
	return b.werr
}

// write writes p, unless an earlier write failed.
func (b *batcher) write(p []byte) {
	if b.werr == nil && len(p) > 0 {
		_, b.werr = b.w.Write(p)
	}
}

// A textPrinter writes a run for people to read:
//
//	run 0kv1xq8z3m2t of hello
//	[setup] a line printed by the flow's top-level code
//	hello| a line printed by task hello
//	✓ hello (2ms)
//	… square.3 waiting: unschedulable: 0/3 nodes are available: 3 Insufficient memory
//	↻ flaky (1ms) attempt 1 failed, retrying: Error in fail: not yet
//	✓ risky (2ms) failed, caught: Error: floored division by zero
//	✓ start (reused)
//	✗ boom (3ms) failed: Error in fail: oops
//	✗ slow (1.2s) cancelled
//	run 0kv1xq8z3m2t succeeded in 15ms: 3 tasks
//
// A failed run ends with its last task; dagger run prints why it failed,
// with the backtrace, on stderr.
//
// On a terminal, a last line tells how many tasks are running and done,
// and is rewritten as they do. There, a foreach step prints the ✓ lines
// of its first foldAfter tasks only: the others that succeed are counted
// on the progress line, and summed up in one line once a task outside any
// foreach starts, or the run ends, such as
//
//	✓ body: 9992 more tasks succeeded (1ms to 30ms each)
//
// A task that fails is always printed.
type textPrinter struct {
	batcher
	flow    string                // the flow's name
	live    bool                  // keep the progress line
	width   int                   // of the terminal; -1 if unknown
	running map[string]bool       // tasks started and not finished, by ID
	steps   map[string]*stepCount // of the steps of foreach tasks, by name
	order   []string              // the keys of steps, in the order they came
	done    int                   // tasks finished, whatever their status
	shown   bool                  // the progress line is on the screen
	redraw  bool                  // the progress line changed since shown
	out     []byte                // the last batch written, whose memory the next reuses
}

// foldAfter is how many ✓ lines a foreach step prints on a terminal.
const foldAfter = 10

// A stepCount counts the tasks of a foreach step, for the progress line.
type stepCount struct {
	running, succeeded, failed int
	printed                    int // ✓ lines printed
	// Tasks that succeeded or were reused, not printed, and not yet
	// summed up in a line; and the least and most time one took.
	folded, reused int
	least, most    time.Duration
}

// newTextPrinter returns a printer of text to w; with width, not 0, the
// width of the terminal w is, it keeps a progress line.
func newTextPrinter(w io.Writer, flow string, width int) *textPrinter {
	p := &textPrinter{flow: flow, live: width != 0, width: width, running: make(map[string]bool), steps: make(map[string]*stepCount)}
	p.w, p.delay, p.flush = w, flushDelay, p.flushBatch
	return p
}

func (p *textPrinter) event(e exec.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch e.Kind {
	case exec.RunStarted:
		p.printf("run %s of %s", e.RunID, p.flow)
	case exec.SetupOutput:
		p.printf("[setup] %s", e.Line)
	case exec.TaskStarted:
		if e.TaskID == e.Step {
			// Outside any foreach: the foreach steps before it are done,
			// whereas a task of the next step of an element, or of a
			// nested foreach, may start while its step runs on.
			p.summarize()
		}
		p.running[e.TaskID] = true
		if c := p.count(e); c != nil {
			c.running++
		}
	case exec.TaskOutput:
		// The commonest event, printed without fmt's cost.
		p.buf = append(append(append(append(p.buf, e.TaskID...), "| "...), e.Line...), '\n')
	case exec.TaskWaiting:
		if e.Line != "" {
			p.printf("… %s waiting: %s", e.TaskID, e.Line)
		}
	case exec.TaskRetrying:
		p.stopped(e)
		p.printf("↻ %s (%s) attempt %d failed, retrying: %s", e.TaskID, round(e.Duration), e.Attempt, lastLine(e.Error))
	case exec.TaskFinished:
		p.stopped(e)
		p.done++
		p.finished(e)
	case exec.RunFinished:
		p.summarize()
		if e.Status == "succeeded" {
			p.printf("run %s succeeded in %s: %s", e.RunID, round(e.Duration), plural(p.done, "task"))
		}
		// The progress line is erased, not drawn again.
		p.redraw = p.shown
		p.live = false
		p.stop()
		return
	}
	p.redraw = p.live
	p.due()
}

// count returns the count of the step of e's task, if it is a foreach
// task on a terminal.
func (p *textPrinter) count(e exec.Event) *stepCount {
	if !p.live || e.Step == "" || e.TaskID == e.Step {
		return nil
	}
	c := p.steps[e.Step]
	if c == nil {
		c = &stepCount{}
		p.steps[e.Step] = c
		p.order = append(p.order, e.Step)
	}
	return c
}

// stopped notes that the task of e no longer runs. A task reused, or
// cancelled while it waited to retry, was not running.
func (p *textPrinter) stopped(e exec.Event) {
	if !p.running[e.TaskID] {
		return
	}
	delete(p.running, e.TaskID)
	if c := p.count(e); c != nil {
		c.running--
	}
}

// finished prints the line of a task that finished, or counts it.
func (p *textPrinter) finished(e exec.Event) {
	c := p.count(e)
	switch e.Status {
	case "succeeded", "reused":
		if c != nil {
			c.succeeded++
			if c.printed >= foldAfter {
				p.fold(c, e)
				return
			}
			c.printed++
		}
		if e.Status == "reused" {
			p.printf("✓ %s (reused)", e.TaskID)
		} else {
			p.printf("✓ %s (%s)", e.TaskID, round(e.Duration))
		}
		return
	}
	if c != nil {
		c.failed++
	}
	switch e.Status {
	case "caught":
		p.printf("✓ %s (%s) failed, caught: %s", e.TaskID, round(e.Duration), lastLine(e.Error))
	case "failed":
		p.printf("✗ %s (%s) failed: %s", e.TaskID, round(e.Duration), lastLine(e.Error))
	default:
		p.printf("✗ %s (%s) %s", e.TaskID, round(e.Duration), e.Status)
	}
}

// fold counts a task that finished without printing its line.
func (p *textPrinter) fold(c *stepCount, e exec.Event) {
	if e.Status == "reused" {
		c.reused++
		return
	}
	if c.folded == 0 || e.Duration < c.least {
		c.least = e.Duration
	}
	c.most = max(c.most, e.Duration)
	c.folded++
}

// summarize prints the line that sums up the tasks folded of each step
// that has no task running.
func (p *textPrinter) summarize() {
	for _, name := range p.order {
		c := p.steps[name]
		if c.running > 0 {
			continue
		}
		if c.folded > 0 {
			span := round(c.least)
			if c.most != c.least {
				span += " to " + round(c.most)
			}
			p.printf("✓ %s: %s succeeded (%s each)", name, plural(c.folded, "more task"), span)
		}
		if c.reused > 0 {
			p.printf("✓ %s: %s reused", name, plural(c.reused, "more task"))
		}
		c.folded, c.reused = 0, 0
	}
}

// printf adds a line to the batch.
func (p *textPrinter) printf(format string, args ...any) {
	p.buf = fmt.Appendf(p.buf, format, args...)
	p.buf = append(p.buf, '\n')
}

// flushBatch writes the lines kept in one write: on a terminal, it erases
// the progress line before them and draws it again after them.
func (p *textPrinter) flushBatch() {
	if len(p.buf) == 0 && !p.redraw {
		return
	}
	out := p.out[:0]
	if p.shown {
		out = append(out, "\r\x1b[K"...) // to the start of the line, and erase it
		p.shown = false
	}
	out = append(out, p.buf...)
	p.buf = p.buf[:0]
	if p.live {
		out = append(out, p.progress()...)
		p.shown = true
	}
	p.redraw = false
	p.write(out)
	p.out = out
}

// progress returns the progress line, without its newline, so that the
// next batch overwrites it. It is cut to the terminal's width, since a
// line that wrapped could not be erased.
func (p *textPrinter) progress() string {
	var b strings.Builder
	fmt.Fprintf(&b, "running %s, %d done", plural(len(p.running), "task"), p.done)
	for _, name := range p.order {
		if c := p.steps[name]; c.printed >= foldAfter && c.running > 0 {
			fmt.Fprintf(&b, "; %s: %d succeeded, %d failed, %d running", name, c.succeeded, c.failed, c.running)
		}
	}
	line := b.String()
	if p.width > 1 && utf8.RuneCountInString(line) >= p.width {
		line = string([]rune(line)[:p.width-2]) + "…"
	}
	return line
}

// round rounds d for people to read: to the millisecond under a second,
// to the tenth of a second under a minute, else to the second.
func round(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return "<1ms"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// lastLine returns the last line of an error: the message of a Starlark
// backtrace, whose calls come before it.
func lastLine(msg string) string {
	msg = strings.TrimRight(msg, "\n")
	return msg[strings.LastIndexByte(msg, '\n')+1:]
}

// A jsonPrinter writes each event as a JSON object on a line of its own.
type jsonPrinter struct {
	batcher
	enc *json.Encoder // adds to the batch
}

func newJSONPrinter(w io.Writer) *jsonPrinter {
	p := &jsonPrinter{}
	p.w, p.delay = w, flushDelay
	p.flush = func() {
		p.write(p.buf)
		p.buf = p.buf[:0]
	}
	p.enc = json.NewEncoder((*batchAppender)(&p.batcher))
	p.enc.SetEscapeHTML(false) // the output is no web page; lines stay as printed
	return p
}

// A batchAppender adds what is written to it to the batch.
type batchAppender batcher

func (b *batchAppender) Write(data []byte) (int, error) {
	b.buf = append(b.buf, data...)
	return len(data), nil
}

func (p *jsonPrinter) event(e exec.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.enc.Encode(e); err != nil && p.werr == nil {
		p.werr = err
	}
	if e.Kind == exec.RunFinished {
		p.stop()
		return
	}
	p.due()
}
