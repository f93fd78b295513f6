package starlark

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/daggerflow/dagger/builtins"
)

// BenchmarkLoad loads a chain of 10 000 steps, as bench/run.sh generates
// it, with every check of dagger check: parsing, the graph's checks, and
// resolving and compiling, which run side by side. ns/step should stay
// flat as flows grow.
//
//	go test -run '^$' -bench Load ./starlark
func BenchmarkLoad(b *testing.B) {
	const n = 10000
	var src strings.Builder
	src.WriteString("def start(ctx):\n    next_step(s1)\n")
	for i := 1; i <= n-3; i++ {
		fmt.Fprintf(&src, "def s%d(ctx):\n    ctx.v%d = %d\n    next_step(s%d)\n", i, i, i, i+1)
	}
	fmt.Fprintf(&src, "def s%d(ctx):\n    next_step(finish)\ndef finish(ctx):\n    pass\n", n-2)
	path := filepath.Join(b.TempDir(), "linear.star")
	if err := os.WriteFile(path, []byte(src.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	set := builtins.Standard()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load(path, set); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/step")
}
