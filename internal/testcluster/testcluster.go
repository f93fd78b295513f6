// Package testcluster runs a Kubernetes control plane on loopback for the
// tests: a real etcd and kube-apiserver, with PodSecurity admission and
// RBAC as on a real cluster. Both are built from the Go module proxy by
// the modules in hack/testcluster, once, and cached in the user's cache
// folder: the first build takes minutes (kube-apiserver: 4 to 9 on two
// cores), later ones nothing.
package testcluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	osexec "os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Versions of the control plane, which name its cache folder.
const (
	kubeVersion = "v1.37.2"
	etcdVersion = "v3.7.3"
)

// A Cluster is a running control plane.
type Cluster struct {
	URL    string       // https://127.0.0.1:PORT
	Token  string       // a bearer token of system:masters
	Client *http.Client // for URL: it trusts the server's self-signed certificate
}

// Start starts the control plane, built by Build, in a folder of tb's,
// and stops it when tb ends. It builds what is missing, but a test binary
// had better call Build from TestMain: go test's timeout starts with the
// tests, and a first build can outlast it.
func Start(tb testing.TB) *Cluster {
	tb.Helper()
	bin, err := Build()
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	etcdURL := startEtcd(tb, bin, dir)
	return startAPIServer(tb, bin, dir, etcdURL)
}

// Build builds the control plane's executables that are not cached yet,
// saying so on standard error, and returns the folder they are in.
func Build() (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("testcluster: %w", err)
	}
	bin := filepath.Join(cache, "dagger", "testcluster", kubeVersion+"-etcd"+etcdVersion)
	if err := os.MkdirAll(bin, 0o777); err != nil {
		return "", fmt.Errorf("testcluster: %w", err)
	}
	_, file, _, _ := runtime.Caller(0)
	hack := filepath.Join(filepath.Dir(file), "..", "..", "hack", "testcluster")
	ldflags := "-s -X k8s.io/component-base/version.gitVersion=" + kubeVersion
	for _, b := range []struct{ name, version, module, pkg string }{
		{"etcd", etcdVersion, "etcd", "."},
		{"kube-apiserver", kubeVersion, "kube", "k8s.io/kubernetes/cmd/kube-apiserver"},
	} {
		exe := filepath.Join(bin, b.name)
		if _, err := os.Stat(exe); err == nil {
			continue
		}
		fmt.Fprintf(os.Stderr, "testcluster: building %s %s into %s, once; kube-apiserver takes minutes\n", b.name, b.version, bin)
		// Built aside and renamed into place, so that a build that is
		// interrupted, or runs at once in another test process, never
		// leaves half an executable.
		tmp := exe + ".tmp" + strconv.Itoa(os.Getpid())
		cmd := osexec.Command("go", "build", "-trimpath", "-ldflags", ldflags, "-o", tmp, b.pkg)
		cmd.Dir = filepath.Join(hack, b.module)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=readonly")
		if out, err := cmd.CombinedOutput(); err != nil {
			os.Remove(tmp)
			return "", fmt.Errorf("testcluster: building %s: %w\n%s", b.name, err, out)
		}
		if err := os.Rename(tmp, exe); err != nil {
			return "", fmt.Errorf("testcluster: %w", err)
		}
	}
	return bin, nil
}

// freePort returns a port of 127.0.0.1 that nothing listens on now.
func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("testcluster: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// A process is a server of the control plane, started by start.
type process struct {
	name string
	log  string        // the file of its output
	done chan struct{} // closed when it has exited
}

// start starts the executable name of bin with args, logging to a file of
// dir, and stops it when tb ends: SIGTERM, then SIGKILL after a few
// seconds. Cleanups run last first, so a process started later stops
// earlier.
func start(tb testing.TB, bin, dir, name string, args ...string) *process {
	tb.Helper()
	p := &process{name: name, log: filepath.Join(dir, name+".log"), done: make(chan struct{})}
	logf, err := os.Create(p.log)
	if err != nil {
		tb.Fatalf("testcluster: %v", err)
	}
	cmd := osexec.Command(filepath.Join(bin, name), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the test
	if err := cmd.Start(); err != nil {
		logf.Close()
		tb.Fatalf("testcluster: starting %s: %v", name, err)
	}
	go func() {
		cmd.Wait()
		close(p.done)
	}()
	tb.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-p.done
		}
		logf.Close()
	})
	return p
}

// startEtcd starts etcd and returns its client URL.
func startEtcd(tb testing.TB, bin, dir string) string {
	tb.Helper()
	client := fmt.Sprintf("http://127.0.0.1:%d", freePort(tb))
	peer := fmt.Sprintf("http://127.0.0.1:%d", freePort(tb))
	p := start(tb, bin, dir, "etcd",
		"--name=default", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+client, "--advertise-client-urls="+client,
		"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer,
		"--initial-cluster=default="+peer, "--log-level=error")
	p.waitFor(tb, func() error { return statusOK(http.Get(client + "/health")) })
	return client
}

// startAPIServer starts kube-apiserver on etcd and returns the cluster.
func startAPIServer(tb testing.TB, bin, dir, etcdURL string) *Cluster {
	tb.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatalf("testcluster: %v", err)
	}
	keyFile := filepath.Join(dir, "sa.key")
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	token := randomHex(tb)
	tokenFile := filepath.Join(dir, "tokens.csv")
	for name, data := range map[string][]byte{
		keyFile:   keyPEM,
		tokenFile: fmt.Appendf(nil, "%s,admin,admin,\"system:masters\"\n", token),
	} {
		if err := os.WriteFile(name, data, 0o600); err != nil {
			tb.Fatalf("testcluster: %v", err)
		}
	}
	port := freePort(tb)
	p := start(tb, bin, dir, "kube-apiserver",
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(port),
		"--cert-dir="+filepath.Join(dir, "certs"),
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+keyFile, "--service-account-signing-key-file="+keyFile,
		"--token-auth-file="+tokenFile,
		"--authorization-mode=RBAC",
		"--disable-admission-plugins=ServiceAccount",
		"--service-cluster-ip-range=10.0.0.0/24")
	c := &Cluster{
		URL:   fmt.Sprintf("https://127.0.0.1:%d", port),
		Token: token,
		// The server's certificate is one it made itself, on loopback.
		Client: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}},
	}
	p.waitFor(tb, func() error {
		return statusOK(c.Do(context.Background(), http.MethodGet, "/readyz", nil))
	})
	return c
}

// Do sends a request to the API server with the admin token.
func (c *Cluster) Do(ctx context.Context, method, path string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.URL+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Content-Type", "application/json")
	return c.Client.Do(req)
}

// statusOK returns the error of a request, or its status if it is not
// 200 OK, for waitFor.
func statusOK(resp *http.Response, err error) error {
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}

// waitFor calls ready until it succeeds, for at most a minute, and fails
// tb at once, with the end of the process's output, if it exits.
func (p *process) waitFor(tb testing.TB, ready func() error) {
	tb.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		err := ready()
		if err == nil {
			return
		}
		select {
		case <-p.done:
			out, _ := os.ReadFile(p.log)
			tb.Fatalf("testcluster: %s exited; the end of its output:\n%s", p.name, out[max(0, len(out)-4096):])
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatalf("testcluster: %s is not ready after a minute: %v", p.name, err)
		}
	}
}

func randomHex(tb testing.TB) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		tb.Fatalf("testcluster: %v", err)
	}
	return hex.EncodeToString(b)
}
