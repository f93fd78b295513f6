package ui_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/daggerflow/dagger/store"
	"github.com/daggerflow/dagger/ui"
)

// BenchmarkUI measures the pages and the API on a store of 1 000 runs, one
// of them a run of examples/foreach.star over 100 000 numbers, recorded
// by running it, as dagger run does (which the log says took how long),
// in a temporary folder, or in $DAGGER_UI_BENCH_STORE, kept for the next
// time.
// The pages are drawn in headless Chromium: ms/draw is the time from the
// start of the navigation to the page's first drawing of its content
// (document.body.dataset.drawn set), as the page's own clock tells.
//
//	go test ./ui -run '^$' -bench UI -benchtime 5x
func BenchmarkUI(b *testing.B) {
	var st *store.Store
	if dir := os.Getenv("DAGGER_UI_BENCH_STORE"); dir != "" {
		// A store recorded once, and measured again.
		var err error
		if st, err = store.Open(b.Context(), dir); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
	} else {
		st = newStore(b)
	}
	big := bigRun(b, st)
	srv := serve(b, st, ui.Options{})

	for _, path := range []string{
		"/api/runs",
		"/api/runs?limit=0",
		"/api/runs/" + big,
		"/api/stats/" + big,
		"/api/runs/" + big + "/square?offset=50000&sort=index",
		"/api/runs/" + big + "/square?offset=50000&sort=status",
		"/api/runs/" + big + "/square?sort=duration",
		"/api/runs/" + big + "/square?offset=99900&sort=duration",
		"/api/runs/" + big + "/square/77777",
		"/api/children/" + big + "/start",
		"/api/graph/" + big,
		"/api/events?output=0&run=" + big,
	} {
		b.Run("GET "+path, func(b *testing.B) {
			for b.Loop() {
				resp, err := http.Get(srv.URL + path)
				if err != nil {
					b.Fatal(err)
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("%s: %s", path, resp.Status)
				}
				b.SetBytes(n)
			}
		})
	}

	tb := newTab(b)
	for _, page := range []struct{ name, hash, drawn string }{
		{"runs page", "#/", "runs"},
		{"run page", "#/runs/" + big, "run"},
		{"step page", "#/runs/" + big + "/square", "step"},
		{"step page by duration", "#/runs/" + big + "/square?sort=duration", "step"},
		{"task page of start", "#/runs/" + big + "/task/start", "task"},
	} {
		b.Run(page.name, func(b *testing.B) {
			var total float64
			for b.Loop() {
				tb.do(b, chromedp.Navigate("about:blank"), chromedp.Navigate(srv.URL+"/"+page.hash))
				tb.waitFast(b, fmt.Sprintf("document.body.dataset.drawn === %q", page.drawn))
				total += eval[float64](b, tb, "window.drawnAt")
			}
			b.ReportMetric(total/float64(b.N), "ms/draw")
		})
	}
}

// bigRun records 1 000 runs in st, unless it has them, one of them of
// examples/foreach.star over 100 000 numbers, and returns that one's ID.
func bigRun(b *testing.B, st *store.Store) string {
	runs, err := st.Runs(b.Context(), store.RunFilter{Flow: "foreach"})
	if err != nil {
		b.Fatal(err)
	}
	if n, _ := st.Runs(b.Context(), store.RunFilter{}); len(n) == 1000 && len(runs) == 1 {
		return runs[0].ID
	}
	t0 := time.Now()
	var big string
	for i := range 999 {
		if i == 500 {
			t1 := time.Now()
			big, _ = record(b, st, "examples/foreach.star", "", map[string]string{"count": "100000"}, nil)
			b.Logf("recording a run of 100 000 tasks took %v", time.Since(t1).Round(time.Millisecond))
		}
		record(b, st, "examples/hello.star", "", nil, nil)
	}
	b.Logf("recording 1 000 runs took %v", time.Since(t0).Round(time.Millisecond))
	if n, _ := st.Runs(b.Context(), store.RunFilter{}); len(n) != 1000 {
		b.Fatalf("%d runs, want 1 000", len(n))
	}
	return big
}
