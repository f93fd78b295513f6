package runnerimage_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	osexec "os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/daggerflow/dagger/runnerimage"
)

// staticBinary builds a small static Linux executable for this machine's
// architecture, and returns its path.
func staticBinary(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte("package main\n\nfunc main() { println(\"runner\") }\n"), 0o666); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "runner")
	cmd := osexec.Command("go", "build", "-o", exe, src)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH, "GOFLAGS=-trimpath")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return exe
}

// A counter counts the requests that reach a registry, by method.
type counter struct {
	mu    sync.Mutex
	count map[string]int
	next  http.Handler
}

func (c *counter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.count[r.Method]++
	c.mu.Unlock()
	c.next.ServeHTTP(w, r)
}

func (c *counter) reset() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.count
	c.count = make(map[string]int)
	return n
}

// startRegistry serves a registry on loopback and returns the repository
// "HOST:PORT/runner" in it, and the counter of its requests.
func startRegistry(t testing.TB) (string, *counter) {
	t.Helper()
	c := &counter{count: make(map[string]int), next: registry.New(registry.Logger(log.New(io.Discard, "", 0)))}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://") + "/runner", c
}

func TestPush(t *testing.T) {
	exe := staticBinary(t)
	repo, reqs := startRegistry(t)
	im, err := runnerimage.FromExecutable(exe, runtime.GOARCH)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := im.Push(t.Context(), repo)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ref, repo+":"+im.Tag()+"@sha256:") || !strings.HasPrefix(im.Tag(), "sha256-") || len(im.Tag()) != len("sha256-")+16 {
		t.Errorf("Push = %s, tag %s", ref, im.Tag())
	}
	if n := reqs.reset(); n["PUT"] == 0 {
		t.Errorf("the first push uploaded nothing: %v", n)
	}

	// What a kubelet would pull: one layer with the executable alone, and
	// a config that runs it as a user that is not root.
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	got := []string{cfg.OS, cfg.Architecture, cfg.Config.User, strings.Join(cfg.Config.Entrypoint, " ")}
	want := []string{"linux", runtime.GOARCH, "65532:65532", runnerimage.Path}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("%d layers, %v; want 1", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	hdr, err := tr.Next()
	if err != nil {
		t.Fatal(err)
	}
	content, err := io.ReadAll(tr)
	if err != nil {
		t.Fatal(err)
	}
	wantContent, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if "/"+hdr.Name != runnerimage.Path || hdr.Mode != 0o555 || hdr.Uid != 0 || !bytes.Equal(content, wantContent) {
		t.Errorf("layer holds %s, mode %o, uid %d, %d bytes; want %s, 555, 0, the executable's %d", hdr.Name, hdr.Mode, hdr.Uid, len(content), runnerimage.Path, len(wantContent))
	}
	if _, err := tr.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("the layer holds more than the executable: %v", err)
	}

	// The same executable: the same image, found by one request.
	again, err := runnerimage.FromExecutable(exe, runtime.GOARCH)
	if err != nil {
		t.Fatal(err)
	}
	ref2, err := again.Push(t.Context(), repo)
	if err != nil {
		t.Fatal(err)
	}
	if ref2 != ref {
		t.Errorf("the same executable pushed as %s, then %s", ref, ref2)
	}
	if n := reqs.reset(); n["PUT"]+n["POST"]+n["PATCH"] != 0 || n["HEAD"] != 1 {
		t.Errorf("pushing an unchanged executable made requests %v, want one HEAD", n)
	}

	// Built again, into another registry: the same digest.
	repo2, _ := startRegistry(t)
	ref3, err := again.Push(t.Context(), repo2)
	if err != nil {
		t.Fatal(err)
	}
	if _, d1, _ := strings.Cut(ref, "@"); !strings.HasSuffix(ref3, "@"+d1) {
		t.Errorf("the image of one executable has digests %s and %s", ref, ref3)
	}

	// Another executable: another tag.
	changed := filepath.Join(t.TempDir(), "runner")
	if err := os.WriteFile(changed, append(wantContent, 0), 0o755); err != nil {
		t.Fatal(err)
	}
	other, err := runnerimage.FromExecutable(changed, runtime.GOARCH)
	if err != nil {
		t.Fatal(err)
	}
	if other.Tag() == im.Tag() {
		t.Errorf("a changed executable has the same tag %s", im.Tag())
	}
}

func TestRefused(t *testing.T) {
	exe := staticBinary(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "script")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	macho := filepath.Join(dir, "macho")
	if err := os.WriteFile(macho, []byte{0xcf, 0xfa, 0xed, 0xfe, 7, 0, 0, 1}, 0o755); err != nil {
		t.Fatal(err)
	}
	other := "arm64"
	if runtime.GOARCH == other {
		other = "amd64"
	}
	tests := []struct {
		name, path, goarch, want string
	}{
		{"script", script, runtime.GOARCH, "is a script, not a Linux executable: build it with CGO_ENABLED=0 GOOS=linux GOARCH=" + runtime.GOARCH + " go build"},
		{"macOS", macho, runtime.GOARCH, "is a Mach-O (macOS) executable, not a Linux executable"},
		{"architecture", exe, other, "is built for " + runtime.GOARCH + " but the nodes run " + other + ": build it with CGO_ENABLED=0 GOOS=linux GOARCH=" + other},
		{"missing", filepath.Join(dir, "nope"), runtime.GOARCH, "no such file"},
		{"no architecture", exe, "", "no architecture given"},
	}
	// A system program is linked dynamically on the distributions these
	// tests run on.
	if sh, err := osexec.LookPath("sh"); err == nil {
		if sh, err = filepath.EvalSymlinks(sh); err == nil {
			tests = append(tests, struct{ name, path, goarch, want string }{"dynamic", sh, runtime.GOARCH, "is dynamically linked (it needs "})
		}
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			_, err := runnerimage.FromExecutable(test.path, test.goarch)
			if err == nil || !strings.Contains(err.Error(), test.want) {
				t.Errorf("FromExecutable(%s, %q) = %v, want %q", test.path, test.goarch, err, test.want)
			}
		})
	}
}

// BenchmarkPush measures making the runner image of dagger itself and
// pushing it to a registry on loopback: first to a registry without it,
// then again, unchanged, which asks the registry for the tag and sends
// nothing.
func BenchmarkPush(b *testing.B) {
	exe := filepath.Join(b.TempDir(), "dagger")
	cmd := osexec.Command("go", "build", "-o", exe, "github.com/daggerflow/dagger/cmd/dagger")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	for _, bc := range []struct {
		name  string
		fresh bool // a new registry each time
	}{{"new", true}, {"unchanged", false}} {
		b.Run(bc.name, func(b *testing.B) {
			repo, _ := startRegistry(b)
			if !bc.fresh {
				push(b, exe, repo)
			}
			for b.Loop() {
				if bc.fresh {
					b.StopTimer()
					repo, _ = startRegistry(b)
					b.StartTimer()
				}
				push(b, exe, repo)
			}
		})
	}
}

// push makes the runner image of exe and pushes it to repo.
func push(b *testing.B, exe, repo string) {
	im, err := runnerimage.FromExecutable(exe, runtime.GOARCH)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := im.Push(b.Context(), repo); err != nil {
		b.Fatal(err)
	}
}
