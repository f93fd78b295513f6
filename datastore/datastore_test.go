package datastore_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/daggerflow/dagger/datastore"
	"github.com/daggerflow/dagger/internal/s3test"
	"github.com/daggerflow/dagger/store"
)

// backend is a place for datastores to test.
type backend struct {
	name string
	// start returns the URL of an empty datastore and a function that
	// replaces the object key of the datastore behind its back.
	start func(t testing.TB) (url string, replace func(key string, data []byte))
}

var backends = []backend{
	{"file", func(t testing.TB) (string, func(string, []byte)) {
		dir := t.TempDir()
		return "file://" + filepath.ToSlash(dir), func(key string, data []byte) {
			if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(key)), data, 0o666); err != nil {
				t.Fatal(err)
			}
		}
	}},
	{"s3", func(t testing.TB) (string, func(string, []byte)) {
		srv := s3test.Start(t)
		srv.SetEnv(t)
		return srv.URL("runs/x"), func(key string, data []byte) {
			if err := srv.PutObject("runs/x/"+key, data); err != nil {
				t.Fatal(err)
			}
		}
	}},
}

func open(t testing.TB, url string) *datastore.Datastore {
	t.Helper()
	d, err := datastore.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	})
	return d
}

// random returns n pseudo-random bytes, different for each seed.
func random(n int, seed uint64) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}).Read(b)
	return b
}

// localHash returns the hash that the local store gives data.
func localHash(t *testing.T, data []byte) store.Hash {
	t.Helper()
	ctx := context.Background()
	s, err := store.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	h, err := s.Blobs().Put(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// key returns the key of blob h relative to the datastore's prefix.
func key(h store.Hash) string {
	hex := strings.TrimPrefix(string(h), "sha256:")
	return "blobs/sha256/" + hex[:2] + "/" + hex
}

func TestRoundTrip(t *testing.T) {
	sizes := []struct {
		name string
		size int
	}{
		{"empty", 0},
		{"small", 100},
		{"4MiB+1", 4<<20 + 1}, // spooled by PutReader
		{"64MiB", 64 << 20},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			url, _ := b.start(t)
			d := open(t, url)
			ctx := context.Background()
			for i, sz := range sizes {
				t.Run(sz.name, func(t *testing.T) {
					data := random(sz.size, uint64(i))
					want := localHash(t, data)

					h, err := d.Put(ctx, data)
					if err != nil {
						t.Fatal(err)
					}
					if h != want {
						t.Errorf("Put: hash %s, local store's %s", h, want)
					}
					got, err := d.Get(ctx, h)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, data) {
						t.Errorf("Get returned %d bytes, not the %d put", len(got), len(data))
					}

					// Other content, so that PutReader uploads.
					data = random(sz.size, uint64(i+len(sizes)))
					h, n, err := d.PutReader(ctx, bytes.NewReader(data))
					if err != nil {
						t.Fatal(err)
					}
					if n != int64(len(data)) || h != localHash(t, data) {
						t.Errorf("PutReader = %s, %d; want %s, %d", h, n, localHash(t, data), len(data))
					}
					r, err := d.Open(ctx, h)
					if err != nil {
						t.Fatal(err)
					}
					defer r.Close()
					var buf bytes.Buffer
					if _, err := io.Copy(&buf, r); err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(buf.Bytes(), data) {
						t.Errorf("Open read %d bytes, not the %d put", buf.Len(), len(data))
					}
					if err := d.Sync(ctx); err != nil {
						t.Fatal(err)
					}
				})
			}
		})
	}
}

func TestLayout(t *testing.T) {
	srv := s3test.Start(t)
	srv.SetEnv(t)
	d := open(t, srv.URL("team/runs"))
	ctx := context.Background()
	h1, err := d.Put(ctx, []byte("small"))
	if err != nil {
		t.Fatal(err)
	}
	h2, _, err := d.PutReader(ctx, bytes.NewReader(random(5<<20, 1)))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := srv.Keys()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"team/runs/" + key(h1), "team/runs/" + key(h2)}
	if want[0] > want[1] {
		want[0], want[1] = want[1], want[0]
	}
	if diff := cmp.Diff(want, keys); diff != "" {
		t.Errorf("keys in the bucket (-want +got):\n%s", diff)
	}
}

// TestEndpointFromEnvironment checks that the endpoint may come from
// AWS_ENDPOINT_URL_S3, as for the aws command, rather than the URL.
func TestEndpointFromEnvironment(t *testing.T) {
	srv := s3test.Start(t)
	srv.SetEnv(t) // sets AWS_ENDPOINT_URL_S3
	d := open(t, "s3://"+srv.Bucket+"/p?use_path_style=true")
	ctx := context.Background()
	h, err := d.Put(ctx, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := d.Get(ctx, h); err != nil || string(got) != "hello" {
		t.Errorf("Get = %q, %v; want %q", got, err, "hello")
	}
}

func TestPutPresent(t *testing.T) {
	srv := s3test.Start(t)
	srv.SetEnv(t)
	d := open(t, srv.URL("p"))
	ctx := context.Background()
	tests := []struct {
		name string
		put  func([]byte) error
	}{
		{"Put", func(data []byte) error {
			_, err := d.Put(ctx, data)
			return err
		}},
		{"PutReader", func(data []byte) error {
			_, _, err := d.PutReader(ctx, bytes.NewReader(data))
			return err
		}},
	}
	for i, sz := range []int{10, 6 << 20} {
		data := random(sz, uint64(i))
		for _, first := range tests {
			for _, again := range tests {
				if err := first.put(data); err != nil {
					t.Fatal(err)
				}
				before := srv.Requests("PUT") + srv.Requests("POST")
				if err := again.put(data); err != nil {
					t.Fatal(err)
				}
				if n := srv.Requests("PUT") + srv.Requests("POST") - before; n != 0 {
					t.Errorf("%d bytes by %s after %s: %d upload requests, want 0", sz, again.name, first.name, n)
				}
			}
		}
	}
}

func TestCorrupt(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			url, replace := b.start(t)
			d := open(t, url)
			ctx := context.Background()
			for _, size := range []int{100, 5 << 20} {
				data := random(size, 7)
				h, err := d.Put(ctx, data)
				if err != nil {
					t.Fatal(err)
				}
				for _, bad := range [][]byte{
					append([]byte{data[0] + 1}, data[1:]...), // same size
					data[:size-1],                            // truncated
				} {
					replace(key(h), bad)
					if _, err := d.Get(ctx, h); !errors.Is(err, store.ErrCorrupt) {
						t.Errorf("Get of a corrupt blob: %v, want ErrCorrupt", err)
					}
					r, err := d.Open(ctx, h)
					if err != nil {
						t.Fatal(err)
					}
					_, err = io.Copy(io.Discard, r)
					r.Close()
					if !errors.Is(err, store.ErrCorrupt) {
						t.Errorf("reading a corrupt blob: %v, want ErrCorrupt", err)
					}
				}
				// Put repairs a blob of the wrong size.
				if _, err := d.Put(ctx, data); err != nil {
					t.Fatal(err)
				}
				if _, err := d.Get(ctx, h); err != nil {
					t.Errorf("Get after Put repaired: %v", err)
				}
			}
		})
	}
}

func TestNotExist(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			url, _ := b.start(t)
			d := open(t, url)
			ctx := context.Background()
			h := localHash(t, []byte("absent"))
			if _, err := d.Get(ctx, h); !errors.Is(err, fs.ErrNotExist) || errors.Is(err, datastore.ErrUnavailable) {
				t.Errorf("Get of an absent blob: %v, want fs.ErrNotExist", err)
			}
			if _, err := d.Open(ctx, h); !errors.Is(err, fs.ErrNotExist) || errors.Is(err, datastore.ErrUnavailable) {
				t.Errorf("Open of an absent blob: %v, want fs.ErrNotExist", err)
			}
			if _, err := d.Get(ctx, "sha256:ABC"); err == nil || errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Get of an invalid hash: %v, want an error that is not fs.ErrNotExist", err)
			}
		})
	}
}

// closedPort returns a loopback address on which nothing listens.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestUnavailable(t *testing.T) {
	srv := s3test.Start(t)
	tests := []struct {
		name string
		url  string
		env  map[string]string
		want string // in the message of Get and Open; Put's first request is a HEAD, whose response has no body
	}{
		{
			name: "connection refused",
			url:  "s3://" + srv.Bucket + "/p?endpoint=http://" + closedPort(t) + "&use_path_style=true",
			want: "connection refused",
		},
		{
			name: "wrong access key",
			url:  srv.URL("p"),
			env:  map[string]string{"AWS_ACCESS_KEY_ID": "AKIAWRONGWRONGWRONG1"},
			want: "InvalidAccessKeyId",
		},
		{
			name: "wrong secret",
			url:  srv.URL("p"),
			env:  map[string]string{"AWS_SECRET_ACCESS_KEY": "wrong/wrong/wrong/wrong/wrong/wrong/wron"},
			want: "SignatureDoesNotMatch",
		},
		{
			name: "no credentials",
			url:  srv.URL("p"),
			env:  map[string]string{"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""},
			want: "credentials",
		},
		{
			name: "no bucket",
			url:  "s3://no-such-bucket/p?endpoint=" + srv.Endpoint + "&use_path_style=true",
			want: "bucket",
		},
	}
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.SetEnv(t)
			secrets := []string{srv.SecretKey}
			for k, v := range tt.env {
				t.Setenv(k, v)
				if strings.HasPrefix(k, "AWS_SECRET") && v != "" {
					secrets = append(secrets, v)
				}
			}
			d := open(t, tt.url)
			h := localHash(t, []byte("x"))
			ops := []struct {
				name string
				do   func() error
			}{
				{"Put", func() error {
					_, err := d.Put(ctx, []byte("x"))
					return err
				}},
				{"PutReader", func() error {
					_, _, err := d.PutReader(ctx, bytes.NewReader(random(5<<20, 0)))
					return err
				}},
				{"Get", func() error {
					_, err := d.Get(ctx, h)
					return err
				}},
				{"Open", func() error {
					_, err := d.Open(ctx, h)
					return err
				}},
			}
			// At once, as the SDK retries with back-off.
			errs := make([]error, len(ops))
			var wg sync.WaitGroup
			for i, op := range ops {
				wg.Go(func() { errs[i] = op.do() })
			}
			wg.Wait()
			for i, op := range ops {
				name, err := op.name, errs[i]
				if !errors.Is(err, datastore.ErrUnavailable) {
					t.Errorf("%s: %v, want ErrUnavailable", name, err)
					continue
				}
				msg := err.Error()
				if !strings.Contains(msg, d.String()) || !strings.Contains(msg, "; check ") {
					t.Errorf("%s: %q does not name the datastore %s and say what to check", name, msg, d)
				}
				if (name == "Get" || name == "Open") && !strings.Contains(msg, tt.want) {
					t.Errorf("%s: %q does not say %q", name, msg, tt.want)
				}
				for _, s := range secrets {
					if strings.Contains(msg, s) {
						t.Errorf("%s: %q quotes the secret %q", name, msg, s)
					}
				}
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	tests := []struct {
		url  string
		want string // in the message
	}{
		{"", "missing scheme"},
		{"ftp://host/x", `unknown scheme "ftp"`},
		{"s3://", "missing bucket"},
		{"s3:///prefix", "missing bucket"},
		{"s3:bucket/prefix", "two slashes"},
		{"s3://bucket/a/../b", "invalid prefix"},
		{"gs://bucket/p", "gs:// datastores are not linked into this program: build dagger with -tags gcs, or import github.com/daggerflow/dagger/datastore/gcs"},
		{"azblob://container/p", "build dagger with -tags azure"},
		{"s3://AKIAEXAMPLE:hunter2secret@bucket/p", "credentials in the URL"},
		{"s3://bucket/p?prefix=q", `"prefix" is not supported`},
		{"s3://bucket/p?colour=blue", `unknown query parameter "colour"`},
		{"file://relative/dir", "absolute directory"},
		{"file://./dir", "absolute directory"},
		{"file:dir", "absolute directory"},
		{"s3://bucket/a//b", "invalid prefix"},
		{"file:///no/such/dir", "/no/such/dir is not a directory"},
		{"file:///tmp?create_dir=true", "parameter create_dir=true is not supported: file URLs take none"},
		{"file:///tmp?metadata=skip&no_tmp_dir=false", "parameter no_tmp_dir=false is not supported"},
		{"s3://bucket/p?use_path_style=maybe", `invalid value for use_path_style: "maybe": want true or false`},
		{"s3://bucket/p?ssetype=rot13", `invalid value for ssetype: "rot13"`},
		{"s3://bucket/%zz", "invalid URL"},
	}
	for _, tt := range tests {
		_, err := datastore.Open(context.Background(), tt.url)
		if err == nil {
			t.Errorf("Open(%q) succeeded", tt.url)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Open(%q): %q, want it to say %q", tt.url, err, tt.want)
		}
		if strings.Contains(err.Error(), "hunter2secret") {
			t.Errorf("Open(%q): %q quotes the password", tt.url, err)
		}
	}
}

func TestString(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		url, want string
	}{
		{"s3://bucket/p?endpoint=http://127.0.0.1:9000&use_path_style=true&region=eu-west-1",
			"s3://bucket/p?endpoint=http://127.0.0.1:9000&use_path_style=true&region=eu-west-1"},
		{"s3://bucket/p?kmskeyid=1234&ssetype=aws:kms", "s3://bucket/p?kmskeyid=REDACTED&ssetype=aws:kms"},
		{"s3://bucket/p?endpoint=http://127.0.0.1:9000&role=arn:aws:iam::123:role/r", "s3://bucket/p?endpoint=http://127.0.0.1:9000&role=arn:aws:iam::123:role/r"},
		{"file://" + dir, "file://" + dir},
		// As older daggers wrote them.
		{"file://" + dir + "?metadata=skip&no_tmp_dir=true", "file://" + dir + "?metadata=skip&no_tmp_dir=true"},
	}
	t.Setenv("AWS_REGION", "us-east-1")
	for _, tt := range tests {
		d := open(t, tt.url)
		if got := d.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

func TestCanceled(t *testing.T) {
	url, _ := backends[1].start(t)
	d := open(t, url)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := d.Put(ctx, []byte("x")); !errors.Is(err, context.Canceled) || errors.Is(err, datastore.ErrUnavailable) {
		t.Errorf("Put with a canceled context: %v, want context.Canceled", err)
	}
	if _, err := d.Get(ctx, localHash(t, []byte("x"))); !errors.Is(err, context.Canceled) {
		t.Errorf("Get with a canceled context: %v, want context.Canceled", err)
	}
}
