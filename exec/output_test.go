package exec

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// recorder is the standard output of a runner, as its driver reads it.
type recorder struct {
	mu     sync.Mutex
	text   strings.Builder
	writes int
	err    error // what every write returns, if set
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return 0, r.err
	}
	r.writes++
	return r.text.Write(p)
}

func (r *recorder) state() (string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.text.String(), r.writes
}

// TestTaskOutput checks how a runner writes what its task prints: in
// order, a batch of lines in one write, the lines that wait written
// a delay after they were printed even while the task runs on, and
// the first write that fails reported once.
func TestTaskOutput(t *testing.T) {
	for _, test := range []struct {
		name   string
		lines  int
		close  bool  // the task ends; else it runs on, and the lines wait
		err    error // every write fails with it
		writes int   // writes of the output, at most
		fails  []string
	}{
		{name: "a batch", lines: 1000, close: true, writes: 1},
		{name: "more than the buffer", lines: 10000, close: true, writes: 2}, // 80 000 bytes
		{name: "waiting", lines: 3, writes: 3},                               // the timer may fire between two
		{name: "failing", lines: 3, close: true, err: errors.New("broken pipe"), fails: []string{"broken pipe"}},
	} {
		t.Run(test.name, func(t *testing.T) {
			out := &recorder{err: test.err}
			var fails []string
			// A task that ends does so before its lines would wait too
			// long, however slow this machine.
			delay := time.Hour
			if !test.close {
				delay = time.Millisecond
			}
			o := newTaskOutput(out, delay, func(err error) { fails = append(fails, err.Error()) })
			var want strings.Builder
			for i := range test.lines {
				line := fmt.Sprintf("%07d", i)
				o.print(line)
				want.WriteString(line + "\n")
			}
			if test.close {
				o.close()
			} else {
				// The timer writes them: poll, well past the delay.
				for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
					if text, _ := out.state(); text == want.String() {
						break
					}
				}
			}
			text, writes := out.state()
			if test.err != nil {
				want.Reset()
			}
			if diff := cmp.Diff(want.String(), text); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
			if writes > max(test.writes, 1) {
				t.Errorf("%d writes, want at most %d", writes, max(test.writes, 1))
			}
			o.mu.Lock() // the timer's flush may report too
			defer o.mu.Unlock()
			if diff := cmp.Diff(test.fails, fails); diff != "" {
				t.Errorf("failures (-want +got):\n%s", diff)
			}
		})
	}
}
