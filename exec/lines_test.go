package exec

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/daggerflow/dagger/store"
)

// TestLineBatch checks how the lines an attempt prints are reported: in
// order; a batch at once when it is full; the lines that wait once the
// delay has passed, before another event of the attempt and when the
// executor returns; a line printed after that at once; and nothing once
// the attempt is abandoned, but what it printed before. The live log gets
// the same lines.
func TestLineBatch(t *testing.T) {
	var full []string
	for i := range maxBatchLines {
		full = append(full, fmt.Sprint(i))
	}
	tests := []struct {
		name  string
		delay time.Duration
		do    func(b *lineBatch)
		want  []string // the events reported, as "kind line"
		live  []string // the lines of the live log
	}{{
		name:  "waiting",
		delay: time.Hour,
		do:    func(b *lineBatch) { b.print("a"); b.print("b") },
		live:  []string{},
	}, {
		name:  "full",
		delay: time.Hour,
		do: func(b *lineBatch) {
			for _, line := range append(full, "next") {
				b.print(line)
			}
		},
		want: outputEvents(full...),
		live: full,
	}, {
		name:  "after the delay",
		delay: time.Millisecond,
		do: func(b *lineBatch) {
			b.print("a")
			b.print("b")
			// The timer reports them: wait for it, well past the delay.
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
				b.mu.Lock()
				reported := len(*b.lines) == 0
				b.mu.Unlock()
				if reported {
					break
				}
			}
		},
		want: outputEvents("a", "b"),
		live: []string{"a", "b"},
	}, {
		name:  "before another event",
		delay: time.Hour,
		do: func(b *lineBatch) {
			b.print("a")
			b.emit(Event{Kind: TaskWaiting, Line: "no node fits"})
			b.print("b")
		},
		want: append(outputEvents("a"), "task_waiting no node fits"),
		live: []string{"a"},
	}, {
		name:  "closed",
		delay: time.Hour,
		do: func(b *lineBatch) {
			b.print("a")
			b.print("b")
			b.close()
			b.print("late")
		},
		want: outputEvents("a", "b", "late"),
		live: []string{"a", "b", "late"},
	}, {
		name:  "abandoned",
		delay: time.Hour,
		do: func(b *lineBatch) {
			b.print("a")
			b.abandon()
			b.print("b")
			b.emit(Event{Kind: TaskWaiting, Line: "no node fits"})
			b.close()
		},
		want: outputEvents("a"),
		live: []string{"a", "b"},
	}}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			st, err := store.Open(t.Context(), t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			var (
				mu  sync.Mutex
				got []string
			)
			s := &scheduler{run: store.Run{ID: "run1"}, live: st.LiveLog("run1"), opts: Options{OnEvent: func(e Event) {
				mu.Lock()
				defer mu.Unlock()
				got = append(got, fmt.Sprint(e.Kind, " ", e.Line))
			}}}
			defer s.live.Close()
			b := s.newLineBatch(&TaskSpec{Step: "hello", TaskID: "hello", Attempt: 1})
			b.delay = test.delay
			test.do(b)
			mu.Lock()
			defer mu.Unlock()
			if diff := cmp.Diff(test.want, got); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			s.live.Flush()
			data, err := st.LiveOutput("run1", "hello", 1)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(test.live, strings.Fields(string(data))); diff != "" {
				t.Errorf("live output (-want +got):\n%s", diff)
			}
		})
	}
}

// outputEvents returns TaskOutput events of lines, as TestLineBatch
// writes them.
func outputEvents(lines ...string) []string {
	var out []string
	for _, line := range lines {
		out = append(out, "task_output "+line)
	}
	return out
}
