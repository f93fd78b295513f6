package builtins

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	sltime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"
)

// newHTTPServer returns a server on 127.0.0.1 of the paths
//
//	/hello      201, a header of two values, and "hi"
//	/echo       the request's method, Content-Type, X-Test header and body
//	/big        a body of 100 bytes
//	/slow       nothing until the request ends
//	/to?url=U   a redirect to U
func newHTTPServer(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("X-Two", "a")
		w.Header().Add("X-Two", "b")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, "hi")
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s %s", r.Method, r.Header.Get("Content-Type"), r.Header.Get("X-Test"), body)
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("x", 100))
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})
	mux.HandleFunc("/to", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.FormValue("url"), http.StatusFound)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestHTTPRefused(t *testing.T) {
	checkRefused(t, "net=example.com", "net=127.0.0.1",
		`http.get("http://127.0.0.1:1/")`,
		`http.post("https://127.0.0.1/x", json = {})`)
	checkRefused(t, "exec", "net=example.com", `http.get("https://EXAMPLE.com:8443/a?b")`)
}

// A response is what the tests compare of one.
type response struct {
	Status  int
	Headers map[string]string // without date
	Body    string
}

func TestHTTP(t *testing.T) {
	srv := newHTTPServer(t)
	u, _ := url.Parse(srv.URL)
	local := "http://localhost:" + u.Port() // the same server, by another host
	tests := []struct {
		allow []string
		expr  string
		want  response
	}{
		{[]string{"net=127.0.0.1"}, `http.get(URL + "/hello")`,
			response{201, map[string]string{"content-length": "2", "content-type": "text/plain; charset=utf-8", "x-two": "a, b"}, "hi"}},
		{[]string{"net"}, `http.get(URL + "/echo", headers = {"x-test": "t"}, timeout = "5s")`,
			response{200, map[string]string{"content-length": "7", "content-type": "text/plain; charset=utf-8"}, "GET  t "}},
		{[]string{"net=127.0.0.1"}, `http.post(URL + "/echo", body = "a=1", headers = {"Content-Type": "text/csv"})`,
			response{200, map[string]string{"content-length": "18", "content-type": "text/plain; charset=utf-8"}, "POST text/csv  a=1"}},
		{[]string{"net=127.0.0.1"}, `http.post(URL + "/echo", json = {"a": [1, "b"]}, timeout = time.parse_duration("5s"))`,
			response{200, map[string]string{"content-length": "36", "content-type": "text/plain; charset=utf-8"}, `POST application/json  {"a":[1,"b"]}`}},
		{[]string{"net=127.0.0.1", "net=localhost"}, `http.get(URL + "/to?url=` + local + `/to?url=` + local + `/hello")`,
			response{201, map[string]string{"content-length": "2", "content-type": "text/plain; charset=utf-8", "x-two": "a, b"}, "hi"}},
		// The step's headers go to the host it asked, not to another
		// that a redirect names, even one it may reach.
		{[]string{"net=127.0.0.1", "net=localhost"}, `http.get(URL + "/to?url=` + local + `/echo", headers = {"x-test": "key"})`,
			response{200, map[string]string{"content-length": "6", "content-type": "text/plain; charset=utf-8"}, "GET   "}},
		{[]string{"net=127.0.0.1"}, `http.get(URL + "/to?url=/echo", headers = {"x-test": "key"})`,
			response{200, map[string]string{"content-length": "9", "content-type": "text/plain; charset=utf-8"}, "GET  key "}},
		{[]string{"net=127.0.0.1"}, `http.get(URL + "/to?url=/hello")`,
			response{201, map[string]string{"content-length": "2", "content-type": "text/plain; charset=utf-8", "x-two": "a, b"}, "hi"}},
	}
	for _, test := range tests {
		tt := newTaskTest(t, context.Background(), test.allow...)
		tt.env["URL"] = starlark.String(srv.URL)
		tt.env["time"] = sltime.Module
		v, err := tt.eval(test.expr)
		if err != nil {
			t.Errorf("%s: %v", test.expr, err)
			continue
		}
		got := response{Headers: make(map[string]string)}
		if err := starlark.AsInt(field(t, v, "status"), &got.Status); err != nil {
			t.Fatal(err)
		}
		got.Body = string(field(t, v, "body").(starlark.String))
		for _, kv := range field(t, v, "headers").(*starlark.Dict).Items() {
			if k := string(kv[0].(starlark.String)); k != "date" {
				got.Headers[k] = string(kv[1].(starlark.String))
			}
		}
		if diff := cmp.Diff(test.want, got); diff != "" {
			t.Errorf("%s: response (-want +got):\n%s", test.expr, diff)
		}
	}
}

func TestHTTPErrors(t *testing.T) {
	srv := newHTTPServer(t)
	u, _ := url.Parse(srv.URL)
	local := "http://localhost:" + u.Port()
	tests := []struct {
		allow string
		expr  string
		want  string // with $URL for the server's
	}{
		{"net=127.0.0.1", `http.get(URL + "/to?url=` + local + `/hello")`,
			`http.get $URL/to?…: redirected to host localhost, which step s did not declare: add "net=localhost" to the step's allow option, and grant it to the run with --allow net=localhost`},
		{"net=127.0.0.1", `http.get(URL + "/to?url=ftp://127.0.0.1/x")`,
			`http.get $URL/to?…: redirected to ftp://127.0.0.1/x: only http and https URLs can be fetched, not ftp`},
		{"net", `http.get("ftp://127.0.0.1/x")`, `http.get ftp://127.0.0.1/x: only http and https URLs can be fetched, not ftp`},
		{"net", `http.get("127.0.0.1/x")`, `http.get 127.0.0.1/x: only http and https URLs can be fetched, not one without a scheme`},
		{"net", `http.get("http:///x")`, `http.get http:///x: the URL names no host`},
		{"net", `http.get(URL + "/big")`, `http.get $URL/big: the response's body is larger than 0 MiB, the most http reads; fetch it with a program through exec`},
		{"net", `http.get(URL + "/slow", timeout = "50ms")`, `http.get $URL/slow: no response within the timeout of 50ms`},
		{"net", `http.get(URL, timeout = "soon")`, `http.get: timeout: time: invalid duration "soon"`},
		{"net", `http.get(URL, timeout = "-1s")`, `http.get: timeout: -1s is not a positive duration`},
		{"net", `http.get(URL, timeout = 30)`, `http.get: timeout: want a duration such as "30s", not an int`},
		{"net", `http.get(URL, headers = {"a": 1})`, `http.get: headers map names to strings, not string to int: convert the value with str()`},
		{"net", `http.post(URL, body = "a", json = {})`, `http.post: both body and json are given: pass one`},
		{"net", `http.post(URL, body = 1)`, `http.post: body is an int, not a string or bytes; to send a value as JSON, pass json = value`},
		{"net", `http.post(URL, json = {"f": len})`, `http.post: json.encode: in dict key "f": cannot encode builtin_function_or_method as JSON`},
	}
	for _, test := range tests {
		tt := newTaskTest(t, context.Background(), test.allow)
		tt.env["URL"] = starlark.String(srv.URL)
		tt.env["http"] = httpClient{maxBody: 99}.module()
		_, err := tt.eval(test.expr)
		want := strings.ReplaceAll(test.want, "$URL", srv.URL)
		if err == nil || err.Error() != want {
			t.Errorf("%s:\ngot error  %v\nwant error %s", test.expr, err, want)
		}
	}
}
