package ui_test

import (
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	sl "go.starlark.net/starlark"

	"github.com/daggerflow/dagger/builtins"
	"github.com/daggerflow/dagger/exec"
	"github.com/daggerflow/dagger/starlark"
	"github.com/daggerflow/dagger/store"
	"github.com/daggerflow/dagger/ui"
)

// newStore returns a new store in a temporary folder.
func newStore(t testing.TB) *store.Store {
	t.Helper()
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// record runs the flow file path (relative to the repository's root, or
// written from src if src is not "") into st, and returns the run's ID
// and the events it reported. A failed run is no error here.
func record(t testing.TB, st *store.Store, path, src string, params map[string]string, set *builtins.Set) (string, []exec.Event) {
	t.Helper()
	if src != "" {
		file := filepath.Join(t.TempDir(), path)
		if err := os.WriteFile(file, []byte(src), 0o666); err != nil {
			t.Fatal(err)
		}
		path = file
	} else {
		path = filepath.Join("..", path)
	}
	if set == nil {
		set = builtins.Standard()
	}
	flow, err := starlark.Load(path, set)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var events []exec.Event
	r, err := exec.Run(t.Context(), st, flow, exec.Options{Params: params, MaxWorkers: 2, OnEvent: func(ev exec.Event) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, ev)
	}})
	if r.ID == "" {
		t.Fatalf("running %s: %v", path, err)
	}
	return r.ID, events
}

// gated returns the standard builtins and gate(), which blocks the task
// that calls it until the channel returned gives it a turn.
func gated() (*builtins.Set, chan struct{}) {
	ch := make(chan struct{})
	set := builtins.Standard().Clone()
	err := set.Add("gate", sl.NewBuiltin("gate", func(thread *sl.Thread, _ *sl.Builtin, _ sl.Tuple, _ []sl.Tuple) (sl.Value, error) {
		<-ch
		return sl.None, nil
	}))
	if err != nil {
		panic(err)
	}
	return set, ch
}

// serve serves st as dagger ui does, on loopback.
func serve(t testing.TB, st *store.Store, opts ui.Options) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(ui.New(st, opts))
	t.Cleanup(srv.Close)
	return srv
}

// get fetches path from srv and returns the response and its body.
func get(t *testing.T, srv *httptest.Server, path string) (*http.Response, string) {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// getJSON fetches path, wants 200, and decodes the JSON reply into v.
func getJSON(t *testing.T, srv *httptest.Server, path string, v any) {
	t.Helper()
	resp, body := get(t, srv, path)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", path, resp.Status, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("GET %s: Content-Type %q", path, ct)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, body)
	}
}

// startGated starts a run of the flow file path (as record reads it, with
// src), whose tasks call gate(), in the background, and returns its ID once it is recorded, and a function
// that lets n tasks go on. Once the test ends, every task is let go and
// the run waited for.
func startGated(t *testing.T, st *store.Store, path string, params map[string]string, src ...string) (string, func(n int)) {
	t.Helper()
	set, gate := gated()
	done := make(chan struct{})
	go func() {
		defer close(done)
		record(t, st, path, strings.Join(src, ""), params, set)
	}()
	stop := make(chan struct{})
	t.Cleanup(func() {
		close(stop)
		<-done
	})
	go func() {
		<-stop
		for {
			select {
			case gate <- struct{}{}:
			case <-done:
				return
			}
		}
	}()
	var id string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if runs, err := st.Runs(t.Context(), store.RunFilter{Flow: strings.TrimSuffix(filepath.Base(path), ".star")}); err == nil && len(runs) == 1 {
			id = runs[0].ID
			break
		}
	}
	if id == "" {
		t.Fatal("the run did not start")
	}
	release := func(n int) {
		for range n {
			gate <- struct{}{}
		}
	}
	return id, release
}

// killDriver makes run id of st look as a run whose process died does:
// recorded running, by a process of this machine that is gone (this
// process's PID with another start time).
func killDriver(t *testing.T, st *store.Store, id string) {
	t.Helper()
	r, err := st.Run(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(r.Driver)
	if len(f) != 5 {
		t.Skipf("the store does not tell which process runs a run here (driver %q)", r.Driver)
	}
	f[4] += "0"
	db, err := sql.Open("sqlite", "file:"+filepath.Join(st.Dir(), "meta.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(t.Context(), "UPDATE runs SET driver = ? WHERE id = ?", strings.Join(f, " "), id); err != nil {
		t.Fatal(err)
	}
	if r, err := st.Run(t.Context(), id); err != nil || r.Status != store.RunDead {
		t.Fatalf("run %s after its driver was killed: %s, %v; want dead", id, r.Status, err)
	}
}
