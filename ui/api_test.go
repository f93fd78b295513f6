package ui_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/daggerflow/dagger/exec"
	"github.com/daggerflow/dagger/history"
	"github.com/daggerflow/dagger/store"
	"github.com/daggerflow/dagger/ui"
)

func TestAPIRuns(t *testing.T) {
	st := newStore(t)
	foreach, _ := record(t, st, "examples/foreach.star", "", map[string]string{"count": "3"}, nil)
	fail, _ := record(t, st, "testdata/run/fail.star", "", nil, nil)
	srv := serve(t, st, ui.Options{})

	var runs []history.RunJSON
	getJSON(t, srv, "/api/runs", &runs)
	if got := []string{runs[0].ID, runs[1].ID}; !slices.Equal(got, []string{fail, foreach}) || len(runs) != 2 {
		t.Errorf("runs = %v, want newest first: %s, %s", got, fail, foreach)
	}
	getJSON(t, srv, "/api/runs?flow=foreach", &runs)
	if len(runs) != 1 || runs[0].ID != foreach || string(runs[0].Params["count"]) != "3" {
		t.Errorf("runs of foreach = %+v", runs)
	}
	getJSON(t, srv, "/api/runs?status=failed", &runs)
	if len(runs) != 1 || runs[0].ID != fail || !strings.Contains(runs[0].Error, "3 is too many") {
		t.Errorf("failed runs = %+v", runs)
	}
	getJSON(t, srv, "/api/runs?limit=1", &runs)
	if len(runs) != 1 || runs[0].ID != fail {
		t.Errorf("runs with limit=1 = %+v", runs)
	}
	for _, bad := range []string{"/api/runs?status=fine", "/api/runs?limit=-1", "/api/runs/not-a-run", "/api/runs/" + fail[:3] + "%2F..%2F..%2Fmeta.db"} {
		if resp, body := get(t, srv, bad); resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %s, want 400 or 404: %s", bad, resp.Status, body)
		}
	}
	if resp, _ := get(t, srv, "/api/runs/zzzzzzzz"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET a run that is not there: %s, want 404", resp.Status)
	}
}

func TestAPIRunAndStats(t *testing.T) {
	st := newStore(t)
	id, _ := record(t, st, "examples/foreach.star", "", map[string]string{"count": "5"}, nil)
	retries, _ := record(t, st, "testdata/run/retries.star", "", nil, nil)
	srv := serve(t, st, ui.Options{})

	var run history.RunDetailJSON
	getJSON(t, srv, "/api/runs/"+id, &run)
	var steps []string
	for _, s := range run.Steps {
		steps = append(steps, fmt.Sprintf("%s %d %v", s.Name, s.Tasks, s.Statuses))
	}
	want := []string{"start 1 map[succeeded:1]", "square 5 map[succeeded:5]", "add 1 map[succeeded:1]", "finish 1 map[succeeded:1]"}
	if !slices.Equal(steps, want) {
		t.Errorf("steps = %q, want %q", steps, want)
	}

	var stats ui.RunStats
	getJSON(t, srv, "/api/stats/"+id, &stats)
	sq := stats.Steps[1]
	if sq.Name != "square" || sq.Tasks != 5 || sq.Expected != 5 || sq.Duration == nil || sq.Duration.Min > sq.Duration.Median || sq.Duration.Median > sq.Duration.P95 || sq.Duration.P95 > sq.Duration.Max {
		t.Errorf("stats of square = %+v %+v", sq, sq.Duration)
	}
	if stats.Steps[0].FanOut != 5 {
		t.Errorf("start fanned out to %d, want 5", stats.Steps[0].FanOut)
	}
	getJSON(t, srv, "/api/stats/"+retries, &stats)
	if s := stats.Steps[1]; s.Name != "flaky" || s.Retries != 1 {
		t.Errorf("stats of flaky = %+v, want 1 retry", s)
	}

	var graph struct {
		Flow  string `json:"flow"`
		Steps []struct {
			Name     string `json:"name"`
			JoinedBy string `json:"joined_by"`
			Next     *struct {
				Kind string `json:"kind"`
			} `json:"next"`
		} `json:"steps"`
	}
	getJSON(t, srv, "/api/graph/"+id, &graph)
	if graph.Flow != "foreach" || len(graph.Steps) != 4 || graph.Steps[0].Next.Kind != "foreach" || graph.Steps[0].JoinedBy != "add" {
		t.Errorf("graph = %+v", graph)
	}
	var src ui.Source
	getJSON(t, srv, "/api/source/"+id, &src)
	if src.Flow != "foreach.star" || !strings.Contains(src.Files[src.Flow], "def square(ctx):") {
		t.Errorf("source = %+v", src)
	}
}

func TestAPIStepPages(t *testing.T) {
	st := newStore(t)
	id, _ := record(t, st, "examples/foreach.star", "", map[string]string{"count": "250"}, nil)
	srv := serve(t, st, ui.Options{})

	var page ui.StepPage
	getJSON(t, srv, "/api/runs/"+id+"/square?offset=100&limit=100", &page)
	if page.Total != 250 || page.Offset != 100 || page.Limit != 100 || page.Sort != "index" || len(page.Tasks) != 100 {
		t.Fatalf("page = total %d offset %d limit %d sort %s, %d tasks", page.Total, page.Offset, page.Limit, page.Sort, len(page.Tasks))
	}
	for i, task := range page.Tasks {
		if !slices.Equal(task.Index, []int{100 + i}) || len(task.Artifacts) != 2 {
			t.Fatalf("task %d of the page = %s %v with artifacts %v, want index %d", i, task.ID, task.Index, task.Artifacts, 100+i)
		}
	}
	getJSON(t, srv, "/api/runs/"+id+"/square?offset=240&limit=100&sort=duration", &page)
	if len(page.Tasks) != 10 {
		t.Errorf("last page by duration has %d tasks, want 10", len(page.Tasks))
	}
	for i := 1; i < len(page.Tasks); i++ {
		a, b := page.Tasks[i-1], page.Tasks[i]
		if a.Ended.Sub(*a.Started) < b.Ended.Sub(*b.Started) {
			t.Errorf("by duration, %s (%v) before %s (%v)", a.ID, a.Ended.Sub(*a.Started), b.ID, b.Ended.Sub(*b.Started))
		}
	}
	getJSON(t, srv, "/api/runs/"+id+"/square?sort=status&limit=5000", &page)
	if len(page.Tasks) != 250 || page.Limit != 1000 {
		t.Errorf("a limit above 1000: %d tasks, limit %d", len(page.Tasks), page.Limit)
	}
	for path, code := range map[string]int{
		"/api/runs/" + id + "/square?sort=name":  http.StatusBadRequest,
		"/api/runs/" + id + "/square?offset=x":   http.StatusBadRequest,
		"/api/runs/" + id + "/nope":              http.StatusNotFound,
		"/api/runs/" + id + "/square/999":        http.StatusNotFound,
		"/api/runs/" + id + "/square/1/nope":     http.StatusNotFound,
		"/api/runs/" + id + "/square/1.x":        http.StatusBadRequest,
		"/api/tasks/" + id + "/square.x":         http.StatusBadRequest,
		"/api/tasks/" + id + "/square.1/a-b":     http.StatusBadRequest,
		"/api/tasks/" + id + "/square.1/numbers": http.StatusOK,
	} {
		if resp, body := get(t, srv, path); resp.StatusCode != code {
			t.Errorf("GET %s: %s, want %d: %s", path, resp.Status, code, body)
		}
	}
}

func TestAPITasksAndArtifacts(t *testing.T) {
	st := newStore(t)
	id, _ := record(t, st, "testdata/ui/xss.star", "", nil, nil)
	retries, _ := record(t, st, "testdata/run/retries.star", "", nil, nil)
	srv := serve(t, st, ui.Options{})

	var task history.TaskDetailJSON
	getJSON(t, srv, "/api/runs/"+retries+"/flaky", new(ui.StepPage))
	getJSON(t, srv, "/api/tasks/"+retries+"/flaky", &task)
	if task.ID != "flaky" || task.Attempt != 2 || len(task.Attempts) != 2 || task.Attempts[0].Status != "failed" || !strings.Contains(task.Attempts[0].Error, "not yet") {
		t.Errorf("task flaky = %+v", task)
	}
	var lines []history.LogLine
	getJSON(t, srv, "/api/logs/"+retries+"/flaky", &lines)
	if len(lines) != 1 || lines[0].Line != "worked on attempt 2" || lines[0].Attempt != 2 {
		t.Errorf("logs of flaky = %+v", lines)
	}

	// A step outside any foreach: RUN/STEP/ARTIFACT, as in dagger inspect.
	resp, body := get(t, srv, "/api/runs/"+id+"/start/html")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" || !strings.Contains(body, `"\u003cimg src=x onerror=alert('artifact')\u003e"`) && !strings.Contains(body, `"<img src=x onerror=alert('artifact')>"`) {
		t.Errorf("html artifact: %s %q %s", resp.Status, resp.Header.Get("Content-Type"), body)
	}
	resp, body = get(t, srv, "/api/runs/"+id+"/start/raw")
	if cd := resp.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment;") || resp.Header.Get("Content-Type") != "application/octet-stream" || body != "<script>alert('bytes')</script>" {
		t.Errorf("bytes artifact: %q %q %q", cd, resp.Header.Get("Content-Type"), body)
	}
	var view ui.ArtifactView
	getJSON(t, srv, "/api/tasks/"+id+"/start/raw?view=1", &view)
	if view.Type != "bytes" || !view.Download || view.Size != 31 || string(view.JSON) != "null" || !strings.HasPrefix(view.Text, `b"<script>`) {
		t.Errorf("view of bytes = %+v", view)
	}
	getJSON(t, srv, "/api/tasks/"+id+"/start/nested?view=1", &view)
	if view.Type != "dict" || view.Download || !strings.Contains(view.Text, "<b>key</b>") {
		t.Errorf("view of nested = %+v", view)
	}
}

func TestAPISafety(t *testing.T) {
	st := newStore(t)
	id, _ := record(t, st, "testdata/ui/xss.star", "", nil, nil)
	srv := serve(t, st, ui.Options{})

	resp, _ := get(t, srv, "/")
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("headers of the page: CSP %q, nosniff %q", csp, resp.Header.Get("X-Content-Type-Options"))
	}
	// Paths name records, never files: nothing escapes, and no listing.
	for _, path := range []string{
		"/assets/", "/assets/..%2f..%2fserver.go", "/assets/%2e%2e/doc.go", "/../meta.db", "/meta.db",
		"/api/runs/" + id + "/start/..%2F..%2F..%2Fmeta.db", "/api/tasks/" + id + "/..%2fmeta.db",
		"/api/tasks/" + id + "/start/%2e%2e", "/api/logs/" + id + "/..%2F..%2Flive",
		"/api/runs/" + id + "%00", "/api/nothing",
	} {
		resp, body := get(t, srv, path)
		if resp.StatusCode == http.StatusOK || strings.Contains(body, "SQLite") || strings.Contains(body, "package ui") {
			t.Errorf("GET %s: %s: %.200s", path, resp.Status, body)
		}
	}
	// The API's JSON holds markup as data, which the page shows as text.
	var lines []history.LogLine
	getJSON(t, srv, "/api/logs/"+id+"/start", &lines)
	if len(lines) != 2 || lines[0].Line != "<script>alert('printed')</script>" {
		t.Errorf("lines = %+v", lines)
	}
	resp, body := get(t, srv, "/api/runs/"+id)
	if strings.Contains(body, "<script>") {
		t.Errorf("the run's JSON holds <script> unescaped: %s", body)
	}
	if resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("Content-Type %q", resp.Header.Get("Content-Type"))
	}
	// A page elsewhere cannot reach a loopback server through a name of
	// its own that points at 127.0.0.1.
	req, _ := http.NewRequest("GET", srv.URL+"/api/runs", nil)
	req.Host = "evil.example:80"
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("Host evil.example: %s, want 403", resp.Status)
	}
}

func TestToken(t *testing.T) {
	st := newStore(t)
	record(t, st, "examples/hello.star", "", nil, nil)
	srv := serve(t, st, ui.Options{Token: "s3cret"})
	client := srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	for _, path := range []string{"/", "/api/runs", "/?token=s3cre", "/api/runs?token=s3cret0", "/assets/app.js"} {
		if resp, _ := get(t, srv, path); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s: %s, want 401", path, resp.Status)
		}
	}
	resp, err := client.Get(srv.URL + "/?token=s3cret")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cookies := resp.Cookies()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" || len(cookies) != 1 || !cookies[0].HttpOnly {
		t.Fatalf("GET /?token=: %s to %q, cookies %v", resp.Status, resp.Header.Get("Location"), cookies)
	}
	req, _ := http.NewRequest("GET", srv.URL+"/api/runs", nil)
	req.AddCookie(cookies[0])
	if resp, err = client.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /api/runs with the cookie: %s", resp.Status)
	}
	if resp, _ := get(t, srv, "/api/runs?token=s3cret"); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /api/runs?token=: %s", resp.Status)
	}
	// With a token, other names than localhost may serve.
	req, _ = http.NewRequest("GET", srv.URL+"/api/runs?token=s3cret", nil)
	req.Host = "ci.example:8080"
	if resp, err = client.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET with another host and the token: %s", resp.Status)
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "localhost:1": true, "[::1]:80": true, "127.1.2.3:9": true,
		":8080": false, "0.0.0.0:8080": false, "192.168.1.2:80": false, "example.com:80": false, "nonsense": false,
	} {
		if got := ui.IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

// readEvents reads the event stream at path until it ends, or until stop
// returns true of an event.
func readEvents(t *testing.T, url string, stop func(exec.Event) bool) []exec.Event {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	var evs []exec.Event
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var ev exec.Event
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			t.Fatalf("%v: %s", err, data)
		}
		evs = append(evs, ev)
		if stop != nil && stop(ev) {
			break
		}
	}
	return evs
}

// byTask returns the events of each task, and of the run under "", as
// lines without times.
func byTask(evs []exec.Event) map[string][]string {
	out := make(map[string][]string)
	for _, ev := range evs {
		if ev.Kind == exec.TaskWaiting {
			continue
		}
		s := fmt.Sprintf("%s attempt=%d status=%s line=%q error=%v", ev.Kind, ev.Attempt, ev.Status, ev.Line, ev.Error != "")
		out[ev.TaskID] = append(out[ev.TaskID], s)
	}
	return out
}

func TestEventsOfEndedRun(t *testing.T) {
	st := newStore(t)
	srv := serve(t, st, ui.Options{Poll: 10 * time.Millisecond})
	for _, flow := range []string{"testdata/run/retries.star", "testdata/run/fail.star", "examples/foreach.star"} {
		id, want := record(t, st, flow, "", nil, nil)
		got := readEvents(t, srv.URL+"/api/events?run="+id, nil)
		if got[0].Kind != exec.RunStarted || got[len(got)-1].Kind != exec.RunFinished {
			t.Errorf("%s: events from %s to %s", flow, got[0].Kind, got[len(got)-1].Kind)
		}
		g, w := byTask(got), byTask(want)
		for task, evs := range w {
			if !slices.Equal(g[task], evs) {
				t.Errorf("%s: events of task %q:\n got %q\nwant %q", flow, task, g[task], evs)
			}
		}
	}
}

func TestEventsLive(t *testing.T) {
	set, gate := gated()
	st := newStore(t)
	srv := serve(t, st, ui.Options{Poll: 10 * time.Millisecond})
	src := `
def start(ctx):
    next_step(work, foreach = list(range(4)))

def work(ctx):
    gate()
    print("worked %d" % ctx.input)
    next_step(join)

def join(ctx, inputs):
    next_step(finish)

def finish(ctx):
    pass
`
	done := make(chan string)
	go func() {
		id, _ := record(t, st, "live.star", src, nil, set)
		done <- id
	}()
	var id string
	for deadline := time.Now().Add(10 * time.Second); id == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if runs, err := st.Runs(t.Context(), store.RunFilter{}); err == nil && len(runs) == 1 {
			id = runs[0].ID
		}
	}
	if id == "" {
		t.Fatal("the run did not start")
	}
	released := 0
	evs := readEvents(t, srv.URL+"/api/events?run="+id, func(ev exec.Event) bool {
		if ev.Kind == exec.TaskStarted && ev.Step == "work" {
			gate <- struct{}{} // one task goes on at each start seen
			released++
		}
		return ev.Kind == exec.RunFinished
	})
	if got := <-done; got != id {
		t.Fatalf("ran %s, followed %s", got, id)
	}
	var outputs []string
	for _, ev := range evs {
		if ev.Kind == exec.TaskOutput {
			outputs = append(outputs, ev.Line)
		}
	}
	slices.Sort(outputs)
	if released != 4 || !slices.Equal(outputs, []string{"worked 0", "worked 1", "worked 2", "worked 3"}) || evs[len(evs)-1].Status != "succeeded" {
		t.Errorf("released %d, outputs %q, last %+v", released, outputs, evs[len(evs)-1])
	}
}

func TestAPIChildren(t *testing.T) {
	st := newStore(t)
	id, _ := record(t, st, "examples/foreach.star", "", map[string]string{"count": "5"}, nil)
	srv := serve(t, st, ui.Options{})

	ids := func(c ui.Children) []string {
		var out []string
		for _, t := range c.Tasks {
			out = append(out, t.ID+":"+string(t.Status))
		}
		return out
	}
	var c ui.Children
	getJSON(t, srv, "/api/children/"+id+"/start", &c)
	if want := []string{"square.0:succeeded", "square.1:succeeded", "square.2:succeeded", "square.3:succeeded", "square.4:succeeded"}; c.Total != 5 || !slices.Equal(ids(c), want) {
		t.Errorf("children of start: %d %q, want %q", c.Total, ids(c), want)
	}
	getJSON(t, srv, "/api/children/"+id+"/start?offset=3&limit=1", &c)
	if c.Total != 5 || c.Offset != 3 || !slices.Equal(ids(c), []string{"square.3:succeeded"}) {
		t.Errorf("children of start from 3, 1: %d %q", c.Total, ids(c))
	}
	getJSON(t, srv, "/api/children/"+id+"/square.3", &c)
	if c.Total != 1 || !slices.Equal(ids(c), []string{"add:succeeded"}) {
		t.Errorf("children of square.3: %d %q, want add", c.Total, ids(c))
	}
	getJSON(t, srv, "/api/children/"+id+"/finish", &c)
	if c.Total != 0 || len(c.Tasks) != 0 {
		t.Errorf("children of finish: %d %q, want none", c.Total, ids(c))
	}
	for path, code := range map[string]int{
		"/api/children/" + id + "/square.9":          http.StatusNotFound,
		"/api/children/" + id + "/square.x":          http.StatusBadRequest,
		"/api/children/" + id + "/start?limit=x":     http.StatusBadRequest,
		"/api/children/" + id + "/%22%29%20OR%201=1": http.StatusBadRequest,
	} {
		if resp, body := get(t, srv, path); resp.StatusCode != code {
			t.Errorf("GET %s: %s, want %d: %s", path, resp.Status, code, body)
		}
	}
}

// TestEventsOfDeadRun follows a run whose process died: the stream ends
// with run_finished, status dead, rather than waiting for an end that will
// never come, and the statistics say the run is dead.
func TestEventsOfDeadRun(t *testing.T) {
	st := newStore(t)
	srv := serve(t, st, ui.Options{Poll: 10 * time.Millisecond})
	id, release := startGated(t, st, "ui/testdata/stuck.star", nil)
	release(1)
	killDriver(t, st, id)
	done := make(chan []exec.Event, 1)
	go func() { done <- readEvents(t, srv.URL+"/api/events?output=0&run="+id, nil) }()
	var evs []exec.Event
	select {
	case evs = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the event stream of a dead run did not end")
	}
	last := evs[len(evs)-1]
	if last.Kind != exec.RunFinished || last.Status != "dead" || !strings.Contains(last.Error, "dagger resume "+id) {
		t.Errorf("last event %+v, want run_finished, dead", last)
	}
	var stats ui.RunStats
	getJSON(t, srv, "/api/stats/"+id, &stats)
	if stats.Run.Status != "dead" || stats.Steps[1].Name != "work" || stats.Steps[1].Statuses["running"] == 0 {
		t.Errorf("stats of the dead run: %s, %+v", stats.Run.Status, stats.Steps)
	}
}
