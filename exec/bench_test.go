package exec

import (
	"context"
	"strconv"
	"testing"

	"github.com/daggerflow/dagger/builtins"
	"github.com/daggerflow/dagger/starlark"
	"github.com/daggerflow/dagger/store"
)

// BenchmarkForeach runs a foreach of n tasks, each setting one artifact,
// and a join that sums them, in process; ns/task is the figure to watch.
func BenchmarkForeach(b *testing.B) {
	for _, n := range []int{1000, 10000, 100000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			path := "../testdata/bench/foreach.star"
			set := builtins.Standard()
			flow, err := starlark.Load(path, set)
			if err != nil {
				b.Fatal(err)
			}
			st, err := store.Open(context.Background(), b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			params := map[string]string{"n": strconv.Itoa(n)}
			for b.Loop() {
				if _, err := Run(context.Background(), st, flow, Options{Params: params}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n+3), "ns/task")
		})
	}
}
