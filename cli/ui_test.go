package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/daggerflow/dagger/builtins"
)

// uiLine is what dagger ui prints once it serves.
var uiLine = regexp.MustCompile(`^dagger ui: runs of .+ at (http://[^/ ]+:\d+/(\?token=(\w+))?) \(Ctrl-C stops\)$`)

// startUI runs dagger ui with args until the test ends, and returns the
// URL it printed and a function that stops it, as Ctrl-C does, and
// returns its exit code.
func startUI(t *testing.T, args ...string) (string, func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	out, w := io.Pipe()
	code := make(chan int, 1)
	go func() {
		code <- Run(ctx, builtins.Standard(), append([]string{"dagger", "ui"}, args...), strings.NewReader(""), w, io.Discard)
		w.Close()
	}()
	stop := sync.OnceValue(func() int {
		cancel()
		return <-code
	})
	// Runs of dagger in one process must not overlap: the next test's
	// waits for this one's end.
	t.Cleanup(func() { stop() })
	line, err := bufio.NewReader(out).ReadString('\n')
	m := uiLine.FindStringSubmatch(strings.TrimSuffix(line, "\n"))
	if err != nil || m == nil {
		t.Fatalf("dagger ui printed %q (%v), want it to match %s", line, err, uiLine)
	}
	go io.Copy(io.Discard, out)
	return m[1], stop
}

// TestUI starts dagger ui on a store, reads the runs through its API, and
// stops it as Ctrl-C does.
func TestUI(t *testing.T) {
	dir := t.TempDir()
	id := recordRun(t, dir, writeFlow(t, "hello.star", helloFlow))
	url, stop := startUI(t, "--store", dir, "--addr", "127.0.0.1:0")
	resp, err := http.Get(url + "api/runs")
	if err != nil {
		t.Fatal(err)
	}
	var runs []struct{ ID string }
	err = json.NewDecoder(resp.Body).Decode(&runs)
	resp.Body.Close()
	if err != nil || len(runs) != 1 || runs[0].ID != id {
		t.Errorf("GET /api/runs: %v %+v, want run %s", err, runs, id)
	}
	if c := stop(); c != exitOK {
		t.Errorf("dagger ui exited %d after the interrupt, want 0", c)
	}
}

// TestUIToken checks that dagger ui with --token prints it in the URL and
// requires it.
func TestUIToken(t *testing.T) {
	dir := t.TempDir()
	recordRun(t, dir, writeFlow(t, "hello.star", helloFlow))
	url, _ := startUI(t, "--store", dir, "--addr", "127.0.0.1:0", "--token", "tok3n")
	if !strings.HasSuffix(url, "/?token=tok3n") {
		t.Fatalf("URL %s, want the token in it", url)
	}
	base := strings.TrimSuffix(url, "?token=tok3n")
	for path, want := range map[string]int{"api/runs": http.StatusUnauthorized, "api/runs?token=tok3n": http.StatusOK} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %s, want %d", path, resp.Status, want)
		}
	}
}

// TestUIGeneratedToken checks that dagger ui on an address other than
// loopback, given no token, makes one up, prints it in the URL, and
// requires it.
func TestUIGeneratedToken(t *testing.T) {
	dir := t.TempDir()
	id := recordRun(t, dir, writeFlow(t, "hello.star", helloFlow))
	printed, _ := startUI(t, "--store", dir, "--addr", "0.0.0.0:0")
	u, err := url.Parse(printed)
	if err != nil {
		t.Fatal(err)
	}
	token := u.Query().Get("token")
	if host, _ := os.Hostname(); u.Hostname() != host || len(token) != 32 {
		t.Fatalf("URL %s, want this machine's name, %s, and a token of 32 hex digits", printed, host)
	}
	base := "http://127.0.0.1:" + u.Port() + "/"
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path string, cookies ...*http.Cookie) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest("GET", base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cookies {
			req.AddCookie(c)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	for _, path := range []string{"", "api/runs", "api/runs/" + id, "api/runs?token=" + token[:31], "assets/app.js"} {
		if resp, _ := get(path); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET /%s without the token: %s, want 401", path, resp.Status)
		}
	}
	if resp, body := get("api/runs?token=" + token); resp.StatusCode != http.StatusOK || !strings.Contains(body, id) {
		t.Errorf("GET /api/runs with the token: %s %s", resp.Status, body)
	}
	// The page's address, as printed: the token becomes a cookie.
	resp, _ := get("?token=" + token)
	if resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 1 {
		t.Fatalf("GET the printed URL: %s, cookies %v", resp.Status, resp.Cookies())
	}
	if resp, body := get("api/runs/"+id, resp.Cookies()...); resp.StatusCode != http.StatusOK || !strings.Contains(body, id) {
		t.Errorf("GET /api/runs/%s with the cookie: %s %s", id, resp.Status, body)
	}
}

// TestUIErrors checks the usage errors of dagger ui and a missing store.
func TestUIErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"ui", "--store", t.TempDir()}, exitInvalid, "there is no store"},
		{[]string{"ui", "extra"}, exitInvalid, "takes no arguments"},
	} {
		res := runDagger(t, tt.args...)
		if res.code != tt.code || !strings.Contains(res.stderr, tt.msg) {
			t.Errorf("dagger %s: exit %d, stderr %q; want %d and %q", strings.Join(tt.args, " "), res.code, res.stderr, tt.code, tt.msg)
		}
	}
}
