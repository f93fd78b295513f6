package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/daggerflow/dagger/exec"
)

// A printer writes the events of a run as they come. exec.Run calls event
// one call at a time.
type printer interface {
	event(exec.Event)
	// err returns the first error writing the output; the printer
	// writes nothing after it.
	err() error
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
// with the backtrace, on stderr. On a terminal, a last line tells how many
// tasks are running and done, and is rewritten as they do.
type textPrinter struct {
	w       io.Writer
	flow    string          // the flow's name
	live    bool            // keep the progress line
	running map[string]bool // tasks started and not finished, by ID
	done    int             // tasks finished, whatever their status
	shown   bool            // the progress line is on the screen
	werr    error
}

func newTextPrinter(w io.Writer, flow string, live bool) *textPrinter {
	return &textPrinter{w: w, flow: flow, live: live, running: make(map[string]bool)}
}

func (p *textPrinter) err() error { return p.werr }

func (p *textPrinter) event(e exec.Event) {
	switch e.Kind {
	case exec.RunStarted:
		p.printf("run %s of %s", e.RunID, p.flow)
	case exec.SetupOutput:
		p.printf("[setup] %s", e.Line)
	case exec.TaskStarted:
		p.running[e.TaskID] = true
	case exec.TaskOutput:
		p.printf("%s| %s", e.TaskID, e.Line)
	case exec.TaskWaiting:
		if e.Line != "" {
			p.printf("… %s waiting: %s", e.TaskID, e.Line)
		}
	case exec.TaskRetrying:
		delete(p.running, e.TaskID)
		p.printf("↻ %s (%s) attempt %d failed, retrying: %s", e.TaskID, round(e.Duration), e.Attempt, lastLine(e.Error))
	case exec.TaskFinished:
		delete(p.running, e.TaskID) // a reused task, or one cancelled while it waited to retry, was not running
		p.done++
		switch e.Status {
		case "succeeded":
			p.printf("✓ %s (%s)", e.TaskID, round(e.Duration))
		case "reused":
			p.printf("✓ %s (reused)", e.TaskID)
		case "caught":
			p.printf("✓ %s (%s) failed, caught: %s", e.TaskID, round(e.Duration), lastLine(e.Error))
		case "failed":
			p.printf("✗ %s (%s) failed: %s", e.TaskID, round(e.Duration), lastLine(e.Error))
		default:
			p.printf("✗ %s (%s) %s", e.TaskID, round(e.Duration), e.Status)
		}
	case exec.RunFinished:
		p.live = false // the run's last line is not rewritten
		if e.Status == "succeeded" {
			p.printf("run %s succeeded in %s: %s", e.RunID, round(e.Duration), plural(p.done, "task"))
		} else {
			p.clear()
		}
	}
	p.progress()
}

// printf writes a line, above the progress line.
func (p *textPrinter) printf(format string, args ...any) {
	p.clear()
	p.write(fmt.Sprintf(format, args...) + "\n")
}

// progress writes the progress line, without its newline, so that the
// next line overwrites it.
func (p *textPrinter) progress() {
	if !p.live {
		return
	}
	p.clear()
	p.write(fmt.Sprintf("running %s, %d done", plural(len(p.running), "task"), p.done))
	p.shown = true
}

// clear erases the progress line, if it is shown.
func (p *textPrinter) clear() {
	if p.shown {
		p.write("\r\x1b[K") // to the start of the line, and erase it
		p.shown = false
	}
}

func (p *textPrinter) write(s string) {
	if p.werr == nil {
		_, p.werr = io.WriteString(p.w, s)
	}
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
	enc  *json.Encoder
	werr error
}

func newJSONPrinter(w io.Writer) *jsonPrinter {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // the output is no web page; lines stay as printed
	return &jsonPrinter{enc: enc}
}

func (p *jsonPrinter) err() error { return p.werr }

func (p *jsonPrinter) event(e exec.Event) {
	if p.werr == nil {
		p.werr = p.enc.Encode(e)
	}
}
