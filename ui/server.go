package ui

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/daggerflow/dagger/history"
	"github.com/daggerflow/dagger/store"
)

//go:embed assets
var assets embed.FS

// cookieName is the cookie that keeps the token in the browser.
const cookieName = "dagger_ui_token"

// Options configure a Server.
type Options struct {
	// Token, if not "", is required of every request: as the cookie
	// dagger_ui_token, or once as ?token=, which sets the cookie.
	Token string
	// Poll is how often the event stream reads the store; 250ms if 0.
	Poll time.Duration
}

// A Server serves the pages and the API of the runs of one store, which
// it only reads.
type Server struct {
	st    *store.Store
	token [sha256.Size]byte // of Options.Token, compared in constant time
	auth  bool
	poll  time.Duration
	mux   *http.ServeMux
}

// New returns a server of the runs of st, which the caller opened, with
// history.Open, and closes once the server is done.
func New(st *store.Store, opts Options) *Server {
	s := &Server{st: st, poll: opts.Poll, mux: http.NewServeMux()}
	if s.poll <= 0 {
		s.poll = 250 * time.Millisecond
	}
	if opts.Token != "" {
		s.auth = true
		s.token = sha256.Sum256([]byte(opts.Token))
	}
	static, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree is the binary's own
	}
	s.mux.HandleFunc("GET /{$}", serveFile(static, "index.html"))
	s.mux.HandleFunc("GET /assets/{name}", func(w http.ResponseWriter, r *http.Request) {
		serveFile(static, r.PathValue("name"))(w, r)
	})
	s.routes()
	return s
}

// NewToken returns a random token, for a server on an address other than
// loopback that was given none.
func NewToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails, says crypto/rand
	return hex.EncodeToString(b)
}

// IsLoopback reports whether addr, host:port, listens on loopback only.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ServeHTTP checks the request's token, or host, and serves it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	if !s.auth && !loopbackHost(r.Host) {
		http.Error(w, "dagger ui answers on loopback only to localhost, 127.0.0.1 or [::1]; start it with --token to serve other names", http.StatusForbidden)
		return
	}
	if s.auth {
		if q := r.URL.Query().Get("token"); q != "" && s.tokenOK(q) {
			http.SetCookie(w, &http.Cookie{Name: cookieName, Value: q, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
			if r.Method == http.MethodGet && !strings.HasPrefix(r.URL.Path, "/api/") {
				// Keep the token out of the address bar and history.
				u := *r.URL
				q := u.Query()
				q.Del("token")
				u.RawQuery = q.Encode()
				http.Redirect(w, r, u.RequestURI(), http.StatusSeeOther)
				return
			}
		} else if c, err := r.Cookie(cookieName); err != nil || !s.tokenOK(c.Value) {
			http.Error(w, "dagger ui: give the token the server printed, as ?token=", http.StatusUnauthorized)
			return
		}
	}
	s.mux.ServeHTTP(w, r)
}

// tokenOK compares t with the token in constant time: hashing both first
// makes the time independent of their lengths too.
func (s *Server) tokenOK(t string) bool {
	sum := sha256.Sum256([]byte(t))
	return subtle.ConstantTimeCompare(sum[:], s.token[:]) == 1
}

// loopbackHost reports whether the Host header names this machine's
// loopback, with any port.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// serveFile serves the embedded file name, and nothing for a directory or
// a name that is not there.
func serveFile(static fs.FS, name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		info, err := fs.Stat(static, name)
		if err != nil || info.IsDir() || !fs.ValidPath(name) {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, static, name)
	}
}

// writeJSON writes v as the JSON reply.
func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	_ = enc.Encode(v) // the client went away
}

// writeError writes err as a JSON reply {"error": "..."}, with the status
// its kind calls for: 404 for what is not there, 400 for an ambiguous
// reference, 500 for a failure to read.
func writeError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, history.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, history.ErrAmbiguous), errors.As(err, new(*badRequest)):
		code = http.StatusBadRequest
	}
	writeErrorCode(w, code, err.Error())
}

// writeErrorCode writes msg as a JSON reply {"error": msg} with code.
func writeErrorCode(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// A badRequest is a request that asks for something the API has no
// such thing as, such as an unknown sort order.
type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }
