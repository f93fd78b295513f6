package exec

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/daggerflow/dagger/builtins"
	"github.com/daggerflow/dagger/starlark"
	"github.com/daggerflow/dagger/store"
)

// BenchmarkArtifact runs testdata/bench/big.star, which stores one bytes
// artifact and reads it in the next step, each time on a new store, and
// again with save=false, which only builds the value. MB/s counts the
// artifact twice, written and read, over the difference of the two: the
// figure to hold against dd's writing (with fsync) and reading of as
// much. The 1 GiB case takes seconds: run it with -benchtime 1x.
func BenchmarkArtifact(b *testing.B) {
	flow, err := starlark.Load("../testdata/bench/big.star", builtins.Standard())
	if err != nil {
		b.Fatal(err)
	}
	for _, mib := range []int{64, 512, 1024} {
		b.Run(strconv.Itoa(mib)+"MiB", func(b *testing.B) {
			var saving, building time.Duration
			for b.Loop() {
				building += runBig(b, flow, mib, false)
				saving += runBig(b, flow, mib, true)
			}
			size := float64(mib) * (1 << 20)
			b.ReportMetric(2*size/1e6/(saving-building).Seconds(), "MB/s")
			b.ReportMetric(float64(saving.Milliseconds())/float64(b.N), "ms/save")
			b.ReportMetric(float64(building.Milliseconds())/float64(b.N), "ms/build")
			b.ReportMetric(0, "ns/op") // the sum of both runs, which says nothing
		})
	}
}

// runBig runs big.star on a new store and returns how long the run took.
func runBig(b *testing.B, flow *starlark.Flow, mib int, save bool) time.Duration {
	b.StopTimer()
	defer b.StartTimer()
	st, err := store.Open(context.Background(), b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	params := map[string]string{"mib": strconv.Itoa(mib), "save": strconv.FormatBool(save)}
	start := time.Now()
	if _, err := Run(context.Background(), st, flow, Options{Params: params}); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}
