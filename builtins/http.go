package builtins

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.starlark.net/lib/json"
	sltime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/daggerflow/dagger/dag"
)

// httpModule returns the module http, with which a step makes HTTP
// requests to the hosts it declares, as net=HOST, or to any, as net:
//
//	http.get(url, headers = {}, timeout = "30s")
//	http.post(url, body = "", headers = {}, json = None, timeout = "30s")
//
// Both return struct(status = int, headers = dict, body = string): the
// response's status code, its headers by lowercase name, the values of
// one joined by ", ", and its body, of at most 64 MiB. body is a string
// or bytes; json, a value that post encodes as json.encode does, with
// the header Content-Type: application/json. timeout, a duration such as
// "1m30s", bounds the whole request, body included; the step's timeout
// and a cancelled run end it too.
//
// Only http and https URLs are allowed. A redirect is followed only to a
// host the step declares, so that a host it may reach cannot send it
// elsewhere.
func httpModule() starlark.Value {
	return httpClient{maxBody: maxBody}.module()
}

const (
	// maxBody is the largest body of a response that http reads.
	maxBody = 64 << 20
	// maxRedirects is how many redirects a request follows, as net/http.
	maxRedirects = 10
)

// An httpClient makes the requests of one module http. Its field is a
// limit, which tests lower.
type httpClient struct {
	maxBody int64 // bytes of a response's body read
}

func (c httpClient) module() *starlarkstruct.Module {
	return &starlarkstruct.Module{Name: "http", Members: starlark.StringDict{
		"get":  starlark.NewBuiltin("http.get", c.get),
		"post": starlark.NewBuiltin("http.post", c.post),
	}}
}

// get is http.get(url, headers = {}, timeout = "30s").
func (c httpClient) get(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		rawURL  string
		headers *starlark.Dict
		timeout starlark.Value = starlark.String("30s")
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "url", &rawURL, "headers?", &headers, "timeout?", &timeout); err != nil {
		return nil, err
	}
	return c.do(thread, b.Name(), http.MethodGet, rawURL, nil, "", headers, timeout)
}

// post is http.post(url, body = "", headers = {}, json = None, timeout = "30s").
func (c httpClient) post(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		rawURL  string
		body    starlark.Value = starlark.String("")
		headers *starlark.Dict
		value   starlark.Value = starlark.None
		timeout starlark.Value = starlark.String("30s")
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "url", &rawURL, "body?", &body, "headers?", &headers, "json?", &value, "timeout?", &timeout); err != nil {
		return nil, err
	}
	data, ok := starlark.AsString(body)
	if !ok {
		return nil, fmt.Errorf("%s: body is %s, not a string or bytes; to send a value as JSON, pass json = value", b.Name(), a(body.Type()))
	}
	contentType := ""
	if value != starlark.None {
		if data != "" {
			return nil, fmt.Errorf("%s: both body and json are given: pass one", b.Name())
		}
		encoded, err := starlark.Call(thread, json.Module.Members["encode"], starlark.Tuple{value}, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.Name(), err)
		}
		data, contentType = string(encoded.(starlark.String)), "application/json"
	}
	return c.do(thread, b.Name(), http.MethodPost, rawURL, strings.NewReader(data), contentType, headers, timeout)
}

// do makes a request for the builtin fn, whose step must declare the
// capability net for the URL's host.
func (c httpClient) do(thread *starlark.Thread, fn, method, rawURL string, body io.Reader, contentType string, headers *starlark.Dict, timeout starlark.Value) (starlark.Value, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", fn, err)
	}
	// Errors name the URL without its password or query, where tokens go.
	shown := redactedURL(u)
	if err := checkURL(u); err != nil {
		return nil, fmt.Errorf("%s %s: %w", fn, shown, err)
	}
	t, err := Require(thread, fn, netCapability(u))
	if err != nil {
		return nil, err
	}
	d, err := duration(timeout)
	if err != nil {
		return nil, fmt.Errorf("%s: timeout: %w", fn, err)
	}
	ctx, cancel := context.WithTimeoutCause(ThreadContext(thread), d, fmt.Errorf("no response within the timeout of %s", d))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, rawURL, body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", fn, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	given := make(http.Header) // the step's own, which go to the host it asked only
	if headers != nil {
		for _, kv := range headers.Items() {
			k, ok1 := starlark.AsString(kv[0])
			v, ok2 := starlark.AsString(kv[1])
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("%s: headers map names to strings, not %s to %s: convert the value with str()", fn, kv[0].Type(), kv[1].Type())
			}
			req.Header.Set(k, v)
			given.Set(k, v)
		}
	}

	// A transport of the call's own: no connection outlives it.
	transport := http.DefaultTransport.(*http.Transport).Clone()
	defer transport.CloseIdleConnections()
	client := &http.Client{
		Transport: transport,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxRedirects {
				return fmt.Errorf("stopped after %d redirects", maxRedirects)
			}
			if err := checkURL(req.URL); err != nil {
				return fmt.Errorf("redirected to %s: %w", req.URL, err)
			}
			if need := netCapability(req.URL); !t.Allows(need) {
				return fmt.Errorf("redirected to host %s, which step %s did not declare: add %q to the step's allow option, and grant it to the run with --allow %s",
					need.Arg, t.Step, need.String(), need.String())
			}
			prev := via[len(via)-1].URL
			if prev.Scheme == "https" && req.URL.Scheme == "http" {
				return fmt.Errorf("redirected from https to plain http, at %s: refused", req.URL.Redacted())
			}
			if req.URL.Host != prev.Host {
				// The headers the step set, such as an API key, are for
				// the host it asked, not for one a redirect names: Go
				// drops only those it knows to be credentials.
				for k := range req.Header {
					if _, set := given[k]; set {
						req.Header.Del(k)
					}
				}
			}
			return nil
		},
	}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s %s: %w", fn, shown, context.Cause(ctx))
		}
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // it would repeat the URL
		}
		return nil, fmt.Errorf("%s %s: %w", fn, shown, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody+1))
	switch {
	case err != nil && ctx.Err() != nil:
		return nil, fmt.Errorf("%s %s: reading the response: %w", fn, shown, context.Cause(ctx))
	case err != nil:
		return nil, fmt.Errorf("%s %s: reading the response: %w", fn, rawURL, err)
	case int64(len(data)) > c.maxBody:
		return nil, fmt.Errorf("%s %s: the response's body is larger than %d MiB, the most http reads; fetch it with a program through exec", fn, rawURL, c.maxBody>>20)
	}

	h := starlark.NewDict(len(resp.Header))
	for _, k := range slices.Sorted(maps.Keys(resp.Header)) {
		_ = h.SetKey(starlark.String(strings.ToLower(k)), starlark.String(strings.Join(resp.Header[k], ", "))) // a new dict takes strings
	}
	return starlarkstruct.FromStringDict(starlarkstruct.Default, starlark.StringDict{
		"status":  starlark.MakeInt(resp.StatusCode),
		"headers": h,
		"body":    starlark.String(data),
	}), nil
}

// checkURL refuses a URL that http does not fetch.
func checkURL(u *url.URL) error {
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("only http and https URLs can be fetched, not %s", cmp.Or(u.Scheme, "one without a scheme"))
	case u.Hostname() == "":
		return errors.New("the URL names no host")
	}
	return nil
}

// netCapability returns the capability a request to u needs: net for
// its host, without port.
func netCapability(u *url.URL) dag.Capability {
	return dag.Capability{Kind: dag.CapNet, Arg: strings.ToLower(u.Hostname())}
}

// duration reads the timeout of a request: a string such as "1m30s", or
// a duration of the module time.
func duration(v starlark.Value) (time.Duration, error) {
	var d time.Duration
	switch v := v.(type) {
	case starlark.String:
		var err error
		if d, err = time.ParseDuration(string(v)); err != nil {
			return 0, err
		}
	case sltime.Duration:
		d = time.Duration(v)
	default:
		return 0, fmt.Errorf("want a duration such as \"30s\", not %s", a(v.Type()))
	}
	if d <= 0 {
		return 0, fmt.Errorf("%s is not a positive duration", d)
	}
	return d, nil
}

// redactedURL returns u as errors show it: without its password and with
// its query, where tokens are often passed, cut.
func redactedURL(u *url.URL) string {
	v := *u
	if v.RawQuery != "" {
		v.RawQuery = "…"
	}
	return v.Redacted()
}
