package main

import (
	"math"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestHoldFirstGC(t *testing.T) {
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	holdFirstGC()
	if p := debug.SetGCPercent(-1); p != -1 {
		t.Fatalf("GC percent before the first collection: %d, want -1 (off)", p)
	}
	if l := debug.SetMemoryLimit(-1); l != startingHeap {
		t.Errorf("memory limit before the first collection: %d, want %d", l, startingHeap)
	}
	runtime.GC()
	// The finalizer that restores the defaults runs on a goroutine of its
	// own after the collection.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		runtime.GC()
		if debug.SetMemoryLimit(-1) == math.MaxInt64 {
			break
		}
	}
	if p := debug.SetGCPercent(100); p != 100 {
		t.Errorf("GC percent after the first collection: %d, want 100", p)
	}
	if l := debug.SetMemoryLimit(-1); l != math.MaxInt64 {
		t.Errorf("memory limit after the first collection: %d, want none", l)
	}
}
