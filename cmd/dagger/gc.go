package main

import (
	"os"
	"runtime"
	"runtime/debug"
)

// startingHeap is how large the heap may grow before the first garbage
// collection.
const startingHeap = 64 << 20

// holdFirstGC holds the first garbage collection off until the heap
// reaches startingHeap, as the Go compiler does (cmd/compile's
// AdjustStartingHeap), then leaves the collector to its defaults.
//
// Most dagger commands are short, and much of what they allocate stays
// live until they exit: check loads a flow whose syntax trees and graph
// it keeps to the end, and collections before then, from Go's first heap
// goal of 4 MiB on, find little garbage, while they cost a check of a
// 10 000-step flow a fifth of its time. The price is memory: a command
// that makes garbage, such as a run whose tasks print much, holds up to
// startingHeap before its first collection, where it held 4 MiB, and
// then collects as usual. A GOGC or GOMEMLIMIT the user set is left
// alone.
func holdFirstGC() {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	// With collection off, the memory limit alone starts the first one.
	gcPercent := debug.SetGCPercent(-1)
	memoryLimit := debug.SetMemoryLimit(startingHeap)
	// A finalizer runs after the collection that found its object
	// unreachable: the first. The object is large enough to escape the
	// allocator of tiny objects, which may keep it alive with others.
	runtime.SetFinalizer(new([32]byte), func(*[32]byte) {
		debug.SetGCPercent(gcPercent)
		debug.SetMemoryLimit(memoryLimit)
	})
}
