package ui_test

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/daggerflow/dagger/store"
	"github.com/daggerflow/dagger/ui"
)

var updateScreenshots = flag.Bool("update-screenshots", false, "write the screenshots of the README, docs/ui/*.png, from the browser tests")

// chromium is Debian's Chromium, which .ci/run installs; DAGGER_CHROMIUM
// names another.
func chromium(t testing.TB) string {
	path := os.Getenv("DAGGER_CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if _, err := os.Stat(path); err != nil {
		t.Skipf("no Chromium at %s, so no browser tests: install Debian's chromium package (as .ci/run does), or set DAGGER_CHROMIUM", path)
	}
	return path
}

// A tab is a headless Chromium's page, with what went wrong in it.
type tab struct {
	ctx context.Context
	mu  sync.Mutex
	// dialogs are the messages of the dialogs (alert and the like) that
	// opened: a script of a flow's strings that ran.
	dialogs []string
	// errors are the exceptions that no code of the page caught.
	errors []string
}

// newTab starts a headless Chromium for the test.
func newTab(t testing.TB) *tab {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium(t)), chromedp.NoSandbox, chromedp.WindowSize(1280, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	tb := &tab{ctx: ctx}
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	err := chromedp.Listen(ctx, func(ev any) {
		tb.mu.Lock()
		defer tb.mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			msg := ev.ExceptionDetails.Text
			if ex := ev.ExceptionDetails.Exception; ex != nil {
				msg += " " + ex.Description
			}
			tb.errors = append(tb.errors, msg)
		case *page.EventJavascriptDialogOpening:
			tb.dialogs = append(tb.dialogs, ev.Message)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		// A dialog would stop the page: close each.
		for _, err := range chromedp.Events(ctx, page.JavascriptDialogOpening) {
			if err != nil {
				return
			}
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{})
		}
	}()
	t.Cleanup(func() {
		tb.mu.Lock()
		defer tb.mu.Unlock()
		if len(tb.errors) > 0 {
			t.Errorf("uncaught exceptions in the page: %q", tb.errors)
		}
		if len(tb.dialogs) > 0 {
			t.Errorf("dialogs opened: %q", tb.dialogs)
		}
	})
	return tb
}

// do runs actions in the tab, for at most 30 seconds.
func (tb *tab) do(t testing.TB, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatal(err)
	}
}

// open loads url afresh: a page whose address differs only after the #
// would otherwise stay, and show the last page until the new one is drawn.
func (tb *tab) open(t testing.TB, url string) {
	t.Helper()
	tb.do(t, chromedp.Navigate("about:blank"), chromedp.Navigate(url), chromedp.WaitReady(chromedp.CSS("#main")))
}

// wait waits until the JavaScript expression is true in the tab.
func (tb *tab) wait(t testing.TB, expr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	// Until the page has drawn what expr reads, it may throw.
	guarded := "(() => { try { return " + expr + " } catch (e) { return false } })()"
	poll := chromedp.Poll[chromedp.Void](guarded, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(20*time.Second))
	_, err := chromedp.Run(ctx, poll)
	for tries := 0; err != nil && strings.Contains(err.Error(), "Cannot find context") && tries < 10; tries++ {
		// The page was still being replaced by the one navigated to.
		time.Sleep(50 * time.Millisecond)
		_, err = chromedp.Run(ctx, poll)
	}
	if err != nil {
		html, _ := chromedp.Run(tb.ctx, chromedp.Evaluate[string](`document.querySelector("main").innerText`))
		t.Fatalf("waiting for %s: %v; the page shows:\n%s", expr, err, html)
	}
}

// waitFast waits until the JavaScript expression is true in the tab,
// polling at each animation frame, for the benchmarks.
func (tb *tab) waitFast(t testing.TB, expr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 60*time.Second)
	defer cancel()
	poll := chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(50*time.Second))
	_, err := chromedp.Run(ctx, poll)
	for tries := 0; err != nil && strings.Contains(err.Error(), "Cannot find context") && tries < 100; tries++ {
		// The page was still being replaced by the one navigated to.
		time.Sleep(time.Millisecond)
		_, err = chromedp.Run(ctx, poll)
	}
	if err != nil {
		t.Fatalf("waiting for %s: %v", expr, err)
	}
}

// eval returns the value of the JavaScript expression in the tab.
func eval[T any](t testing.TB, tb *tab, expr string) T {
	t.Helper()
	v, err := chromedp.Run(tb.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// screenshot writes the page to docs/ui/name.png, with -update-screenshots.
func (tb *tab) screenshot(t testing.TB, name string) {
	t.Helper()
	if !*updateScreenshots {
		return
	}
	png, err := chromedp.Run(tb.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("..", "docs", "ui")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o666); err != nil {
		t.Fatal(err)
	}
}

// nodeStates is the expression of the state of each step of the graph.
const nodeStates = `Object.fromEntries([...document.querySelectorAll("#graph g.node")].map(g => [g.dataset.step, g.dataset.state]))`

// allSucceeded is true once the graph is drawn and every step in it
// succeeded: not while a page that replaced another has no graph yet.
const allSucceeded = `(states => states.length > 0 && states.every(s => s === "succeeded"))(Object.values(` + nodeStates + `))`

func TestBrowserPages(t *testing.T) {
	tb := newTab(t)
	st := newStore(t)
	foreach, _ := record(t, st, "examples/foreach.star", "", map[string]string{"count": "5"}, nil)
	retries, _ := record(t, st, "testdata/run/retries.star", "", nil, nil)
	fail, _ := record(t, st, "testdata/run/fail.star", "", nil, nil)
	branches, _ := record(t, st, "examples/branches.star", "", nil, nil)
	switched, _ := record(t, st, "examples/switch.star", "", nil, nil)
	srv := serve(t, st, ui.Options{})

	t.Run("runs", func(t *testing.T) {
		tb.open(t, srv.URL+"/#/")
		tb.wait(t, `document.querySelectorAll("#runs tr[data-run]").length === 5`)
		got := eval[[]string](t, tb, `[...document.querySelectorAll("#runs tr[data-run]")].map(r => r.dataset.run + " " + r.querySelector(".badge").textContent)`)
		want := []string{switched + " succeeded", branches + " succeeded", fail + " failed", retries + " succeeded", foreach + " succeeded"}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("runs listed: %q, want %q", got, want)
		}
		tb.screenshot(t, "runs")
		tb.do(t, chromedp.Evaluate[chromedp.Void](`(s => { s.value = "failed"; s.dispatchEvent(new Event("change")); })(document.getElementById("status-filter"))`))
		tb.wait(t, `document.querySelectorAll("#runs tr[data-run]").length === 1 && document.querySelector("#runs tr[data-run]").dataset.run === "`+fail+`"`)
	})

	t.Run("graph", func(t *testing.T) {
		tb.open(t, srv.URL+"/#/runs/"+fail)
		tb.wait(t, `document.querySelector('#graph g.node[data-step="check"]').dataset.state === "failed"`)
		states := eval[map[string]string](t, tb, nodeStates)
		if want := map[string]string{"start": "succeeded", "check": "failed", "finish": "pending"}; fmt.Sprint(states) != fmt.Sprint(want) {
			t.Errorf("states of the steps: %v, want %v", states, want)
		}
		// The backtrace links to the lines of the source.
		links := eval[[]string](t, tb, `[...document.querySelectorAll("pre.error a")].map(a => a.textContent + " " + a.getAttribute("href"))`)
		if len(links) != 2 || !strings.HasSuffix(links[0], "fail.star:13:11 #src-fail.star-13") {
			t.Errorf("links of the backtrace: %q", links)
		}
		tb.do(t, chromedp.Click(chromedp.CSS("pre.error a")))
		tb.wait(t, `document.getElementById("src-fail.star-13").classList.contains("hl")`)
		tb.screenshot(t, "run-failed")

		tb.open(t, srv.URL+"/#/runs/"+branches)
		tb.wait(t, allSucceeded)
		kinds := eval[[]string](t, tb, `[...document.querySelectorAll("#graph path.edge")].map(e => e.dataset.from + ">" + e.dataset.to + ":" + e.dataset.kind)`)
		if !strings.Contains(strings.Join(kinds, " "), ":split") {
			t.Errorf("edges of branches: %q, want a split", kinds)
		}
		tb.open(t, srv.URL+"/#/runs/"+switched)
		tb.wait(t, `document.querySelector('#graph g.node[data-step="finish"]').dataset.state === "succeeded"`)
		kinds = eval[[]string](t, tb, `[...document.querySelectorAll("#graph path.edge.switch")].map(e => e.dataset.from + ">" + e.dataset.to)`)
		states = eval[map[string]string](t, tb, nodeStates)
		want := map[string]string{"start": "succeeded", "big": "pending", "small": "succeeded", "finish": "succeeded"}
		if fmt.Sprint(kinds) != "[start>big start>small]" || fmt.Sprint(states) != fmt.Sprint(want) {
			t.Errorf("switch: dashed edges %q, states %v; want start>big start>small, and %v", kinds, states, want)
		}
		tb.open(t, srv.URL+"/#/runs/"+foreach)
		tb.wait(t, `Object.values(`+nodeStates+`).every(s => s === "succeeded") && document.querySelectorAll("#graph g.node").length === 4`)
		if n := eval[int](t, tb, `document.querySelectorAll('#graph g.node[data-step="add"].join, #graph path.edge.foreach[data-to="square"], #graph g.node[data-step="square"] rect.stack').length`); n != 4 {
			t.Errorf("the foreach's edge, stack and join: %d elements, want 4", n)
		}
	})

	t.Run("step", func(t *testing.T) {
		tb.open(t, srv.URL+"/#/runs/"+foreach+"/square")
		tb.wait(t, `document.querySelectorAll("#tasks tr[data-task]").length === 5`)
		ids := eval[[]string](t, tb, `[...document.querySelectorAll("#tasks tr[data-task]")].map(r => r.dataset.task)`)
		if fmt.Sprint(ids) != "[square.0 square.1 square.2 square.3 square.4]" {
			t.Errorf("tasks by index: %q", ids)
		}
	})

	t.Run("task", func(t *testing.T) {
		tb.open(t, srv.URL+"/#/runs/"+foreach+"/task/finish")
		tb.wait(t, `document.getElementById("logs").textContent.includes("sum of squares of [1, 2, 3, 4, 5] = 55")`)
		tb.wait(t, `document.querySelector('[data-artifact="total"] pre') !== null`)
		if v := eval[string](t, tb, `document.querySelector('[data-artifact="total"] pre').textContent`); v != "55" {
			t.Errorf("artifact total shows %q, want 55", v)
		}
		if p := eval[string](t, tb, `document.getElementById("parents").textContent`); p != "add" {
			t.Errorf("parents %q, want add", p)
		}
		tb.open(t, srv.URL+"/#/runs/"+foreach+"/task/start")
		tb.wait(t, `document.querySelectorAll("#children a").length === 5`)
		kids := eval[[]string](t, tb, `[...document.querySelectorAll("#children a")].map(a => a.textContent + " " + a.getAttribute("href"))`)
		if len(kids) != 5 || kids[4] != "square.4 #/runs/"+foreach+"/task/square.4" {
			t.Errorf("children of start: %q", kids)
		}
		tb.open(t, srv.URL+"/#/runs/"+retries+"/task/flaky")
		tb.wait(t, `document.getElementById("logs").textContent.includes("worked on attempt 2")`)
		tb.wait(t, `document.querySelectorAll("#attempts tbody tr").length === 2`)
		if e := eval[string](t, tb, `document.querySelector("#attempts tbody tr pre.error").textContent`); !strings.Contains(e, "not yet") {
			t.Errorf("the first attempt's error: %q", e)
		}
		tb.screenshot(t, "task")
	})
}

// TestBrowserLive follows a run of a wide foreach whose tasks the test lets
// go on a few at a time: the progress advances without a reload.
func TestBrowserLive(t *testing.T) {
	tb := newTab(t)
	set, gate := gated()
	st := newStore(t)
	srv := serve(t, st, ui.Options{Poll: 50 * time.Millisecond})
	done := make(chan string, 1)
	go func() {
		id, _ := record(t, st, "ui/testdata/wide.star", "", nil, set)
		done <- id
	}()
	release := func(n int) {
		for range n {
			gate <- struct{}{}
		}
	}
	released := 12
	release(released)
	var id string
	for deadline := time.Now().Add(10 * time.Second); id == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if runs, err := st.Runs(t.Context(), store.RunFilter{}); err == nil && len(runs) == 1 {
			id = runs[0].ID
		}
	}
	if id == "" {
		t.Fatal("the run did not start")
	}
	finish := func() {
		go release(40 - released)
		<-done
	}
	defer func() {
		if finish != nil {
			finish()
		}
	}()

	tb.open(t, srv.URL+"/#/runs/"+id)
	progress := `Number(document.querySelector('#stats tr[data-step="square"] .progress-cell').dataset.ended)`
	tb.wait(t, `document.querySelector('#stats tr[data-step="square"] .progress-cell') && `+progress+` >= 10`)
	tb.wait(t, `document.querySelector('#graph g.node[data-step="square"]').dataset.state === "running"`)
	tb.do(t, chromedp.Evaluate[chromedp.Void](`window.sameDocument = true`))
	before := eval[int](t, tb, progress)
	release(10)
	released += 10
	tb.wait(t, progress+` >= `+fmt.Sprint(before+10))
	tb.screenshot(t, "run-live")
	finish()
	finish = nil
	tb.wait(t, `document.querySelector("h1 .badge").textContent === "succeeded" && `+allSucceeded)
	if !eval[bool](t, tb, `window.sameDocument === true`) {
		t.Error("the page was reloaded")
	}
}

// TestBrowserXSS shows a run whose prints, artifacts and error are markup
// and script: the page shows them as text, and runs none of it.
func TestBrowserXSS(t *testing.T) {
	tb := newTab(t)
	st := newStore(t)
	id, _ := record(t, st, "testdata/ui/xss.star", "", nil, nil)
	srv := serve(t, st, ui.Options{})
	inert := `document.querySelectorAll("main img, main script, main iframe, svg script").length === 0`

	tb.open(t, srv.URL+"/#/runs/"+id)
	tb.wait(t, `document.querySelector("pre.error") !== null`)
	if e := eval[string](t, tb, `document.querySelector("pre.error").textContent`); !strings.Contains(e, "<script>alert('error')</script>") {
		t.Errorf("the run's error shows %q", e)
	}
	tb.wait(t, inert)

	tb.open(t, srv.URL+"/#/runs/"+id+"/task/start")
	tb.wait(t, `document.getElementById("logs").textContent.includes("onerror")`)
	tb.wait(t, `document.querySelectorAll("[data-artifact] pre").length === 4`)
	logs := eval[string](t, tb, `document.getElementById("logs").textContent`)
	if logs != "<script>alert('printed')</script>\n<img src=x onerror=alert('img')>\n" {
		t.Errorf("logs show %q", logs)
	}
	values := eval[map[string]string](t, tb, `Object.fromEntries([...document.querySelectorAll("[data-artifact]")].map(a => [a.dataset.artifact, a.querySelector("pre").textContent]))`)
	if v := values["html"]; v != `"<img src=x onerror=alert('artifact')>"` {
		t.Errorf("artifact html shows %q", v)
	}
	if v := values["raw"]; v != `b"<script>alert('bytes')</script>"` {
		t.Errorf("artifact raw shows %q", v)
	}
	if v := values["step_like"]; !strings.Contains(v, "</text><script>") {
		t.Errorf("artifact step_like shows %q", v)
	}
	tb.wait(t, inert)
	tb.screenshot(t, "xss")

	tb.open(t, srv.URL+"/#/runs/"+id+"/task/finish")
	tb.wait(t, `document.querySelector("pre.error") !== null`)
	tb.wait(t, inert)
	// Let any script that slipped through run before the dialogs are
	// counted, when the test ends.
	tb.do(t, chromedp.Sleep(300*time.Millisecond))
}

// TestBrowserLiveTask follows a task while it runs: what it prints shows
// as it prints it, and its end, without a reload.
func TestBrowserLiveTask(t *testing.T) {
	tb := newTab(t)
	st := newStore(t)
	srv := serve(t, st, ui.Options{Poll: 50 * time.Millisecond})
	src := `
def start(ctx):
    print("<b>first</b> line")
    gate()
    print("second line")
    ctx.n = 2
    next_step(finish)

def finish(ctx):
    pass
`
	id, release := startGated(t, st, "printer.star", nil, src)
	tb.open(t, srv.URL+"/#/runs/"+id+"/task/start")
	tb.wait(t, `document.getElementById("logs").textContent === "<b>first</b> line\n"`)
	if s := eval[string](t, tb, `document.querySelector("h1 .badge").textContent`); s != "running" {
		t.Errorf("the task shows %q while it runs, want running", s)
	}
	tb.do(t, chromedp.Evaluate[chromedp.Void](`window.sameDocument = true`))
	release(1)
	tb.wait(t, `document.getElementById("logs").textContent === "<b>first</b> line\nsecond line\n"`)
	tb.wait(t, `document.querySelector("h1 .badge").textContent === "succeeded" && document.querySelector('[data-artifact="n"] pre') !== null`)
	tb.wait(t, `document.getElementById("children").textContent === "finish"`)
	if !eval[bool](t, tb, `window.sameDocument === true`) {
		t.Error("the page was reloaded")
	}
}

// TestBrowserDeadRun shows a run whose process died: its tasks left
// running show so, and the pages stop asking the server for news.
func TestBrowserDeadRun(t *testing.T) {
	tb := newTab(t)
	st := newStore(t)
	var mu sync.Mutex
	requests := 0
	h := ui.New(st, ui.Options{Poll: 50 * time.Millisecond})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests++
		mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return requests
	}
	id, _ := startGated(t, st, "ui/testdata/stuck.star", nil)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		ts, err := st.TasksByID(t.Context(), id, []string{"work.0", "work.1"})
		if err == nil && len(ts) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the tasks did not start")
		}
	}
	killDriver(t, st, id)

	quiet := func(what string) {
		t.Helper()
		before := count()
		tb.do(t, chromedp.Sleep(3500*time.Millisecond)) // longer than any period of the pages
		if n := count() - before; n > 0 {
			t.Errorf("%s: %d requests in 3.5 s after it was drawn, want none", what, n)
		}
	}
	tb.open(t, srv.URL+"/#/runs/"+id)
	tb.wait(t, `document.body.dataset.drawn === "run" && document.getElementById("dead-note") !== null`)
	states := eval[map[string]string](t, tb, nodeStates)
	if want := map[string]string{"start": "succeeded", "work": "died", "join": "pending", "finish": "pending"}; fmt.Sprint(states) != fmt.Sprint(want) {
		t.Errorf("states of the steps: %v, want %v", states, want)
	}
	if s := eval[string](t, tb, `document.querySelector('#stats tr[data-step="work"]').textContent`); !strings.Contains(s, "running when the run died 2") {
		t.Errorf("the statistics of work: %q", s)
	}
	if s := eval[string](t, tb, `document.querySelector("h1 .badge").textContent`); s != "dead" {
		t.Errorf("the run shows %q, want dead", s)
	}
	quiet("the run page")
	tb.screenshot(t, "run-dead")

	tb.open(t, srv.URL+"/#/runs/"+id+"/work")
	tb.wait(t, `document.querySelectorAll('#tasks tr[data-task] .badge[data-status="died"]').length === 2`)
	quiet("the step page")

	tb.open(t, srv.URL+"/#/runs/"+id+"/task/work.0")
	tb.wait(t, `document.querySelector("h1 .badge").textContent === "running when the run died" && document.getElementById("logs").textContent.includes("before the gate 0")`)
	quiet("the task page")
}
