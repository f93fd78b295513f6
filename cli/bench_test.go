package cli

import (
	"fmt"
	"testing"

	"github.com/daggerflow/dagger/builtins"
	"github.com/daggerflow/dagger/internal/s3test"
)

// BenchmarkProcessForeach runs a foreach of 1 000 tasks, and its join,
// with the process executor: a subprocess per task, each reading its
// inputs from and writing its artifact to the datastore. It reports the
// time per task with the store's own file datastore and with one on an
// S3-protocol server on loopback (gofakes3, in this process).
//
//	go test -run '^$' -bench ProcessForeach -benchtime 1x ./cli
func BenchmarkProcessForeach(b *testing.B) {
	b.Chdir(repoRoot)
	b.Setenv(mainEnv, "1") // see TestMain
	s3 := s3test.Start(b)
	for _, datastore := range []struct{ name, url string }{{"file", ""}, {"s3", s3.URL("bench")}} {
		b.Run(datastore.name, func(b *testing.B) {
			if datastore.url != "" {
				s3.SetEnv(b)
			}
			const n = 1000
			args := []string{"--executor", "process", "-p", "n=1000", "testdata/bench/foreach.star"}
			if datastore.url != "" {
				args = append(args, "--datastore", datastore.url)
			}
			for b.Loop() {
				r := runWith(b, builtins.Standard(), append([]string{"run", "--store", b.TempDir()}, args...)...)
				if r.code != exitOK {
					b.Fatalf("exit %d\n%s", r.code, r.stderr)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N*n), "ms/task")
		})
	}
}

// BenchmarkPrint runs 200 tasks that print 1 000 lines each, in process,
// and the same tasks quiet: the difference of their ns/line is the cost of
// a printed line, from the task's print to the text on the output.
//
//	go test -run '^$' -bench Print ./cli
func BenchmarkPrint(b *testing.B) {
	b.Chdir(repoRoot)
	const lines = 200 * 1000
	for _, quiet := range []bool{true, false} {
		b.Run(fmt.Sprint("quiet=", quiet), func(b *testing.B) {
			for b.Loop() {
				r := runWith(b, builtins.Standard(), "run", "--store", b.TempDir(), "-p", fmt.Sprint("quiet=", quiet), "testdata/bench/lines.star")
				if r.code != exitOK {
					b.Fatalf("exit %d\n%s", r.code, r.stderr)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*lines), "ns/line")
		})
	}
}
