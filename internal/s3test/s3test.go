// Package s3test runs an S3-protocol server on loopback, for tests of code
// that talks to object storage and for trying it by hand (hack/s3server).
//
// The server is gofakes3 with its in-memory backend, behind a handler that
// does what gofakes3 does not: it checks each request's AWS Signature
// Version 4 against the server's one access key and secret, answering 403
// InvalidAccessKeyId or SignatureDoesNotMatch as S3 does, so that clients
// exercise their real credential path; it decodes the unsigned aws-chunked
// bodies in which clients upload over HTTPS; and it counts requests by
// method, so that tests can tell whether a client uploaded.
//
// Clients address it with an endpoint override and path-style addressing
// (https://ENDPOINT/BUCKET/KEY), the way they address MinIO or Ceph.
//
// The server speaks plain HTTP, unless started with StartTLS or ListenTLS:
// then HTTPS, with a certificate signed by a CA made for that server alone,
// which no client trusts until given the CA's certificate (Server.CACert),
// so that tests exercise the certificate roots of their clients, as a
// real S3 endpoint does.
package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// Region is the region the server claims to be in. Clients must sign their
// requests for it.
const Region = "us-east-1"

// Server is a running S3-protocol server.
type Server struct {
	Endpoint  string // "http://127.0.0.1:PORT", or https:// with TLS
	Bucket    string // an empty bucket created at start
	AccessKey string // the only access key ID accepted
	SecretKey string // its secret
	// CACert is, with TLS, the certificate, in PEM, of the CA that signed
	// the server's certificate: what a client must trust, such as through
	// SSL_CERT_FILE, or AWS_CA_BUNDLE, which the AWS SDKs read in its
	// place. Nil without TLS.
	CACert []byte

	backend *s3mem.Backend
	srv     *http.Server
	done    chan error // receives the result of Serve

	closeOnce sync.Once
	closeErr  error

	mu       sync.Mutex
	requests map[string]int // by HTTP method, of authenticated requests
}

// Start starts a server on 127.0.0.1 with a new bucket and a random access
// key, and stops it when tb's test and its subtests end.
func Start(tb testing.TB) *Server {
	tb.Helper()
	return start(tb, false)
}

// StartTLS is like Start, but the server speaks HTTPS, with a certificate
// signed by the CA of its CACert.
func StartTLS(tb testing.TB) *Server {
	tb.Helper()
	return start(tb, true)
}

func start(tb testing.TB, useTLS bool) *Server {
	tb.Helper()
	s, err := listen("127.0.0.1:0", useTLS)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Error(err)
		}
	})
	return s
}

// Listen starts a server listening on addr, which should be a loopback
// address ("127.0.0.1:0" picks a free port), with a new bucket and a random
// access key. The caller must Close it.
func Listen(addr string) (*Server, error) {
	return listen(addr, false)
}

// ListenTLS is like Listen, but the server speaks HTTPS, with a
// certificate for 127.0.0.1, ::1 and localhost signed by a CA made for it
// alone, whose certificate is CACert.
func ListenTLS(addr string) (*Server, error) {
	return listen(addr, true)
}

func listen(addr string, useTLS bool) (*Server, error) {
	var (
		tlsConfig *tls.Config
		caCert    []byte
		scheme    = "http"
	)
	if useTLS {
		cert, ca, err := newCertificate()
		if err != nil {
			return nil, fmt.Errorf("s3test: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
		caCert, scheme = ca, "https"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("s3test: %w", err)
	}
	s := &Server{
		Endpoint:  scheme + "://" + ln.Addr().String(),
		CACert:    caCert,
		Bucket:    "dagger-test",
		AccessKey: "AKIA" + randomString(16),
		SecretKey: randomString(40),
		backend:   s3mem.New(),
		done:      make(chan error, 1),
		requests:  make(map[string]int),
	}
	if err := s.backend.CreateBucket(s.Bucket); err != nil {
		ln.Close()
		return nil, fmt.Errorf("s3test: create bucket: %w", err)
	}
	fake := gofakes3.New(s.backend, gofakes3.WithLogger(gofakes3.DiscardLog()))
	s.srv = &http.Server{
		Handler:           s.authenticate(unchunk(fake.Server())),
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig:         tlsConfig,
	}
	go func() {
		if tlsConfig != nil {
			s.done <- s.srv.ServeTLS(ln, "", "")
		} else {
			s.done <- s.srv.Serve(ln)
		}
	}()
	return s, nil
}

// randomString returns n random characters of the kind AWS uses in keys.
func randomString(n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// Close stops the server, once however often it is called, and discards
// its objects. Requests in progress get a second to finish; then all connections are closed, including those
// that clients dialed ahead and keep idle, which the server cannot tell
// from requests about to arrive.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.close() })
	return s.closeErr
}

func (s *Server) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = s.srv.Close()
	}
	if serveErr := <-s.done; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	if err != nil {
		return fmt.Errorf("s3test: close: %w", err)
	}
	return nil
}

// URL returns the URL of a datastore under prefix in the server's bucket,
// in the form datastore.Open takes. The region and credentials
// come from the environment (see Env).
func (s *Server) URL(prefix string) string {
	return fmt.Sprintf("s3://%s/%s?endpoint=%s&use_path_style=true", s.Bucket, prefix, s.Endpoint)
}

// Env returns the environment, as "NAME=value" strings, in which AWS
// clients (SDKs and the aws command) reach the server with its credentials:
// the credentials, the region and the endpoint, and DAGGER_DATASTORE set to
// URL("dagger"). It also points the shared AWS config and credentials files
// to nothing and turns off the EC2 metadata service, so that a developer's
// own AWS profiles cannot take part; a shell that is to keep them can use
// only the first five variables (see hack/s3server).
func (s *Server) Env() []string {
	return []string{
		"DAGGER_DATASTORE=" + s.URL("dagger"),
		"AWS_ENDPOINT_URL_S3=" + s.Endpoint,
		"AWS_ACCESS_KEY_ID=" + s.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s.SecretKey,
		"AWS_REGION=" + Region,
		"AWS_CONFIG_FILE=" + os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE=" + os.DevNull,
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// SetEnv sets the variables of Env for the duration of tb's test, which
// therefore must not be parallel.
func (s *Server) SetEnv(tb testing.TB) {
	tb.Helper()
	for _, kv := range s.Env() {
		name, value, _ := strings.Cut(kv, "=")
		tb.Setenv(name, value)
	}
	// AWS_PROFILE would name a profile that the empty config file lacks.
	tb.Setenv("AWS_PROFILE", "")
	tb.Setenv("AWS_SESSION_TOKEN", "")
}

// Requests returns how many authenticated requests with the given HTTP
// method the server has received, including those it answered with an
// error.
func (s *Server) Requests(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[method]
}

func (s *Server) count(method string) {
	s.mu.Lock()
	s.requests[method]++
	s.mu.Unlock()
}

// PutObject stores data under key in the bucket, bypassing the S3 protocol,
// as a test does to change an object behind a client's back.
func (s *Server) PutObject(key string, data []byte) error {
	_, err := s.backend.PutObject(s.Bucket, key, map[string]string{}, bytes.NewReader(data), int64(len(data)), nil)
	if err != nil {
		return fmt.Errorf("s3test: put %s: %w", key, err)
	}
	return nil
}

// Keys returns the keys of the objects in the bucket, sorted.
func (s *Server) Keys() ([]string, error) {
	list, err := s.backend.ListBucket(s.Bucket, nil, gofakes3.ListBucketPage{})
	if err != nil {
		return nil, fmt.Errorf("s3test: list: %w", err)
	}
	var keys []string
	for _, o := range list.Contents {
		keys = append(keys, o.Key)
	}
	slices.Sort(keys)
	return keys, nil
}
