package store

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestLiveLog checks that the output of a running attempt can be read
// once written, that an attempt whose record is committed, and a run that
// ended, leave no file, and that a task's attempts are kept apart.
func TestLiveLog(t *testing.T) {
	s := openTestStore(t)
	l := s.LiveLog("run1")
	l.delay = time.Hour // lines are written by Flush
	read := func(task string, attempt int) string {
		t.Helper()
		data, err := s.LiveOutput("run1", task, attempt)
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	l.Attempt("body.1", 1).Add("one")
	if got := read("body.1", 1); got != "" {
		t.Errorf("before the lines are written: %q, want nothing", got)
	}
	l.Flush()
	l.Attempt("body.1", 1).Add("two")
	l.Attempt("body.1", 2).Add("again")
	l.Attempt("body.10", 1).Add("ten")
	l.Flush()
	for _, tt := range []struct {
		task    string
		attempt int
		want    string
	}{
		{"body.1", 1, "one\ntwo\n"},
		{"body.1", 2, "again\n"},
		{"body.10", 1, "ten\n"},
		{"body.2", 1, ""},
	} {
		if got := read(tt.task, tt.attempt); got != tt.want {
			t.Errorf("%s@%d: %q, want %q", tt.task, tt.attempt, got, tt.want)
		}
	}
	l.End("body.1", 1)
	if got := read("body.1", 1); got != "" {
		t.Errorf("after End: %q, want nothing", got)
	}
	l.End("body.1", 2)
	l.End("body.10", 1)
	// A task that ends before its lines are written writes none.
	l.Attempt("quick", 1).Add("gone")
	l.End("quick", 1)
	l.Flush()
	if _, err := os.Stat(filepath.Join(s.Dir(), liveDir, "run1", "quick@1")); !os.IsNotExist(err) {
		t.Errorf("the file of a task that ended at once: %v, want none", err)
	}
	// No file is left; nor is the run's folder once the run ends.
	l.Close()
	if _, err := os.Stat(filepath.Join(s.Dir(), liveDir, "run1")); !os.IsNotExist(err) {
		t.Errorf("the run's folder after Close: %v, want none", err)
	}
	l.Attempt("late", 1).Add("after close")
	l.Flush()
	if got := read("late", 1); got != "" {
		t.Errorf("after Close: %q, want nothing", got)
	}
}

// TestLiveAttempt checks the lines added through an attempt's handle:
// kept in order, apart from those of the attempts whose buffers it reuses,
// and dropped once the attempt ended.
func TestLiveAttempt(t *testing.T) {
	s := openTestStore(t)
	l := s.LiveLog("run1")
	defer l.Close()
	l.delay = time.Hour // lines are written by Flush
	read := func(task string) string {
		t.Helper()
		data, err := s.LiveOutput("run1", task, 1)
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	a := l.Attempt("a", 1)
	a.Add("one", "two")
	a.Add()
	a.Add("three")
	l.Flush() // a's buffer is free: b reuses it
	b := l.Attempt("b", 1)
	b.Add("bee")
	l.End("b", 1) // b's is free again, with its line dropped
	b.Add("after its end")
	c := l.Attempt("c", 1)
	c.Add("sea")
	if l.Attempt("a", 1) != a {
		t.Error("Attempt gave a second handle for the same attempt")
	}
	a.Add("four")
	l.Flush()
	for _, tt := range []struct{ task, want string }{
		{"a", "one\ntwo\nthree\nfour\n"},
		{"b", ""},
		{"c", "sea\n"},
	} {
		if got := read(tt.task); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.task, got, tt.want)
		}
	}
}

// TestRecordSetup checks that a run's setup output is recorded with it.
func TestRecordSetup(t *testing.T) {
	s := openTestStore(t)
	ctx := t.Context()
	r, err := s.CreateRun(ctx, Run{Flow: "f"})
	if err != nil {
		t.Fatal(err)
	}
	h, err := s.Blobs().Put(ctx, []byte("set up\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RecordSetup(ctx, r.ID, h); err != nil {
		t.Fatal(err)
	}
	got, err := s.Run(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.SetupLogs != h {
		t.Errorf("SetupLogs = %q, want %q", got.SetupLogs, h)
	}
	if err := s.RecordSetup(ctx, "nosuchrun", h); err == nil {
		t.Error("RecordSetup of an unknown run succeeded")
	}
}
