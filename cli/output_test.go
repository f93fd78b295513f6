package cli

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/daggerflow/dagger/exec"
)

// flushNow writes the batch, as the timer does once flushDelay passed.
func (p *textPrinter) flushNow() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.flush()
}

// A writeLog records each write.
type writeLog struct {
	mu     sync.Mutex
	writes []string
	wrote  chan struct{} // receives after each write
}

func (w *writeLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.writes = append(w.writes, string(p))
	w.mu.Unlock()
	select {
	case w.wrote <- struct{}{}:
	default:
	}
	return len(p), nil
}

// TestPrintersBatch checks that the lines of many events are written in
// one write, that a batch is written without waiting for another event,
// and that close writes what is kept.
func TestPrintersBatch(t *testing.T) {
	lines := func(n int) []exec.Event {
		var es []exec.Event
		for i := range n {
			es = append(es, exec.Event{Kind: exec.TaskOutput, Step: "a", TaskID: "a", Line: fmt.Sprint("line ", i)})
		}
		return es
	}
	for _, name := range []string{"text", "json"} {
		t.Run(name, func(t *testing.T) {
			w := &writeLog{wrote: make(chan struct{}, 1)}
			var p printer = newTextPrinter(w, "f", 0)
			if name == "json" {
				p = newJSONPrinter(w)
			}
			for _, e := range lines(1000) {
				p.event(e)
			}
			// The timer writes the lines printed so far, in few writes:
			// one per batchSize bytes.
			<-w.wrote
			w.mu.Lock()
			n := len(w.writes)
			w.mu.Unlock()
			if n > 2 {
				t.Errorf("1000 lines took %d writes, want at most 2", n)
			}
			p.event(exec.Event{Kind: exec.TaskOutput, TaskID: "a", Line: "last"})
			if err := p.close(); err != nil {
				t.Fatal(err)
			}
			all := strings.Join(w.writes, "")
			if got := strings.Count(all, "\n"); got != 1001 {
				t.Errorf("%d lines written, want 1001", got)
			}
			if !strings.Contains(all, "last") {
				t.Errorf("close did not write the last line: %q", all[len(all)-100:])
			}
		})
	}
}

// TestTextPrinterFolds checks that on a terminal a wide foreach prints
// the ✓ lines of its first tasks, counts the others on the progress line,
// sums them up once the step has no task running, and prints every
// failure.
func TestTextPrinterFolds(t *testing.T) {
	var events []exec.Event
	for i := range 14 {
		id := fmt.Sprint("body.", i)
		events = append(events, exec.Event{Kind: exec.TaskStarted, Step: "body", TaskID: id})
	}
	for i := range 14 {
		e := exec.Event{Kind: exec.TaskFinished, Step: "body", TaskID: fmt.Sprint("body.", i), Status: "succeeded", Duration: time.Duration(i+1) * time.Millisecond}
		if i == 12 {
			e.Status, e.Error = "failed", "Traceback\nError: twelve"
		}
		events = append(events, e)
	}
	events = append(events,
		exec.Event{Kind: exec.TaskStarted, Step: "join", TaskID: "join"},
		exec.Event{Kind: exec.TaskFinished, Step: "join", TaskID: "join", Status: "succeeded", Duration: time.Millisecond},
		exec.Event{Kind: exec.RunFinished, RunID: "1m89nkx8sze6", Status: "succeeded", Duration: time.Second})

	var b strings.Builder
	p := newTextPrinter(&b, "f", -1)
	p.delay = time.Hour // the lines are written by close, in one batch
	var progress []string
	for _, e := range events {
		p.event(e)
		p.mu.Lock()
		progress = append(progress, p.progress())
		p.mu.Unlock()
	}
	if err := p.close(); err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for i := range 10 {
		fmt.Fprintf(&want, "✓ body.%d (%dms)\n", i, i+1)
	}
	want.WriteString("✗ body.12 (13ms) failed: Error: twelve\n" +
		"✓ body: 3 more tasks succeeded (11ms to 14ms each)\n" +
		"✓ join (1ms)\n" +
		"run 1m89nkx8sze6 succeeded in 1s: 15 tasks\n")
	if diff := gocmp.Diff(want.String(), b.String()); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
	// After the 11th task finished, and before the last did.
	if got, want := progress[14+10], "running 3 tasks, 11 done; body: 11 succeeded, 0 failed, 3 running"; got != want {
		t.Errorf("progress line = %q, want %q", got, want)
	}
}

// TestProgressWidth checks that the progress line fits the terminal, for
// a line that wrapped could not be erased.
func TestProgressWidth(t *testing.T) {
	p := newTextPrinter(&strings.Builder{}, "f", 20)
	for i := range 1000 {
		p.running[fmt.Sprint(i)] = true
	}
	if got, want := p.progress(), "running 1000 tasks…"; got != want {
		t.Errorf("progress() = %q, want %q", got, want)
	}
}

// TestTextPrinterFoldsSteps checks that a foreach of two steps per element
// sums up each step once, when the join starts, although the tasks of one
// step start while the other has none running.
func TestTextPrinterFoldsSteps(t *testing.T) {
	var b strings.Builder
	p := newTextPrinter(&b, "f", -1)
	p.delay = time.Hour
	for i := range 30 {
		for _, step := range []string{"a", "b"} {
			id := fmt.Sprint(step, ".", i)
			p.event(exec.Event{Kind: exec.TaskStarted, Step: step, TaskID: id})
			p.event(exec.Event{Kind: exec.TaskFinished, Step: step, TaskID: id, Status: "succeeded", Duration: time.Millisecond})
		}
	}
	p.event(exec.Event{Kind: exec.TaskStarted, Step: "join", TaskID: "join"})
	if err := p.close(); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"✓ a: 20 more tasks succeeded (1ms each)\n", "✓ b: 20 more tasks succeeded (1ms each)\n"} {
		if strings.Count(out, want) != 1 {
			t.Errorf("the output has %q %d times, want once:\n%s", want, strings.Count(out, want), out)
		}
	}
	if n := strings.Count(out, "more task"); n != 2 {
		t.Errorf("%d summing-up lines, want 2:\n%s", n, out)
	}
}
