package agent

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
)

// A logFile is the output of one container, stdout and stderr together,
// as /containerLogs serves it.
type logFile struct {
	path string
	f    *os.File // written by the container's copier

	mu   sync.Mutex
	more chan struct{} // closed, and replaced, at each write and at the end
	done bool          // whether the container has exited and all its output is in
}

func createLog(path string) (*logFile, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	return &logFile{path: path, f: f, more: make(chan struct{})}, nil
}

// Write appends b to the log and wakes its followers.
func (l *logFile) Write(b []byte) (int, error) {
	n, err := l.f.Write(b)
	l.mu.Lock()
	close(l.more)
	l.more = make(chan struct{})
	l.mu.Unlock()
	return n, err
}

// finish marks the log complete: the container has exited and its
// output is all in.
func (l *logFile) finish() {
	l.f.Close()
	l.mu.Lock()
	l.done = true
	close(l.more)
	l.more = make(chan struct{})
	l.mu.Unlock()
}

// state returns whether the log is complete, and a channel closed at its
// next change.
func (l *logFile) state() (done bool, more <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.done, l.more
}

// tail returns the offset in data of its last n lines; a last line need
// not end in a newline.
func tail(data []byte, n int) int {
	end := len(data)
	if end > 0 && data[end-1] == '\n' {
		end--
	}
	for ; n > 0; n-- {
		i := bytes.LastIndexByte(data[:end], '\n')
		if i < 0 {
			return 0
		}
		end = i
	}
	return end + 1
}

// logHandler serves GET /containerLogs/{namespace}/{pod}/{container} as a
// kubelet does for the API server's pods/log, with the options follow,
// tailLines and limitBytes.
func (a *Agent) logHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /containerLogs/{namespace}/{pod}/{container}", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		var opts logOptions
		var err error
		opts.follow, _ = strconv.ParseBool(q.Get("follow"))
		if s := q.Get("tailLines"); s != "" {
			if opts.tailLines, err = strconv.Atoi(s); err != nil || opts.tailLines < 0 {
				http.Error(w, "bad tailLines "+strconv.Quote(s), http.StatusBadRequest)
				return
			}
		} else {
			opts.tailLines = -1
		}
		if s := q.Get("limitBytes"); s != "" {
			if opts.limitBytes, err = strconv.ParseInt(s, 10, 64); err != nil || opts.limitBytes <= 0 {
				http.Error(w, "bad limitBytes "+strconv.Quote(s), http.StatusBadRequest)
				return
			}
		}
		ns, name, container := r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container")
		var log *logFile
		if p := a.podNamed(ns, name); p != nil {
			log = p.log(container)
		}
		if log == nil {
			http.Error(w, fmt.Sprintf("no logs of container %q of pod %s/%s on this node", container, ns, name), http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		// The response has begun: an error can only cut it short.
		serveLog(r.Context(), w, log, opts)
	})
	return mux
}

type logOptions struct {
	follow     bool
	tailLines  int   // -1 for all
	limitBytes int64 // 0 for no limit
}

// serveLog writes log to w as opts say, flushing each write, until its
// end, or with follow until the container has exited and its output is
// all written, or until ctx is done.
func serveLog(ctx context.Context, w http.ResponseWriter, log *logFile, opts logOptions) error {
	f, err := os.Open(log.path)
	if err != nil {
		return err
	}
	defer f.Close()
	if opts.tailLines >= 0 {
		data, err := io.ReadAll(f)
		if err != nil {
			return err
		}
		if _, err := f.Seek(int64(tail(data, opts.tailLines)), io.SeekStart); err != nil {
			return err
		}
	}
	out := io.Writer(w)
	if opts.limitBytes > 0 {
		out = &limitWriter{w: w, n: opts.limitBytes}
	}
	flusher := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	for {
		// The state is taken before reading, so that a write after the
		// read wakes the wait below.
		done, more := log.state()
		for {
			n, err := f.Read(buf)
			if n > 0 {
				if _, err := out.Write(buf[:n]); err != nil {
					return err
				}
				flusher.Flush()
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
		}
		if done || !opts.follow {
			return nil
		}
		select {
		case <-more:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// errLimit stops a log at limitBytes.
var errLimit = errors.New("log limit reached")

// A limitWriter writes at most n bytes to w, then fails with errLimit.
type limitWriter struct {
	w io.Writer
	n int64
}

func (l *limitWriter) Write(b []byte) (int, error) {
	if l.n <= 0 {
		return 0, errLimit
	}
	cut := b[:min(int64(len(b)), l.n)]
	n, err := l.w.Write(cut)
	l.n -= int64(n)
	if err == nil && n < len(b) {
		err = errLimit
	}
	return n, err
}

// selfSignedCert returns a certificate for 127.0.0.1 signed by its own
// key: the API server does not check a kubelet's certificate unless told
// to.
func selfSignedCert() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "dagger-test-agent"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
