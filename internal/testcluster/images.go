package testcluster

import (
	"flag"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/daggerflow/dagger/runnerimage"
)

// Main runs the tests of a package that starts test clusters, for its
// TestMain: it builds the control plane first, if it is not cached, since
// go test's timeout starts with the tests and a first build of
// kube-apiserver can outlast it. With -short, whose tests skip the
// cluster, nothing is built.
func Main(m *testing.M) {
	flag.Parse()
	if !testing.Short() {
		if _, err := Build(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}

// BuildDagger builds dagger's command, static as runner images need it,
// into a folder of tb's, and returns its path.
func BuildDagger(tb testing.TB) string {
	tb.Helper()
	return build(tb, repoFile(), "./cmd/dagger")
}

// BuildProgram builds the Go program of one file, src, static, into a
// folder of tb's, and returns its path.
func BuildProgram(tb testing.TB, src string) string {
	tb.Helper()
	dir := tb.TempDir()
	for name, data := range map[string]string{"main.go": src, "go.mod": "module program\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o666); err != nil {
			tb.Fatal(err)
		}
	}
	return build(tb, dir, ".")
}

// build builds the package pkg of the module in dir, static, for this
// machine's architecture.
func build(tb testing.TB, dir, pkg string) string {
	tb.Helper()
	exe := filepath.Join(tb.TempDir(), filepath.Base(filepath.Clean(pkg)))
	if pkg == "." {
		exe = filepath.Join(filepath.Dir(exe), "program")
	}
	cmd := osexec.Command("go", "build", "-o", exe, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return exe
}

// Push pushes the runner image of the executable exe to the repository
// name of the cluster's registry, and returns its reference.
func (c *Cluster) Push(tb testing.TB, exe, name string) string {
	tb.Helper()
	im, err := runnerimage.FromExecutable(exe, runtime.GOARCH)
	if err != nil {
		tb.Fatal(err)
	}
	ref, err := im.Push(tb.Context(), c.Registry+"/"+name)
	if err != nil {
		tb.Fatal(err)
	}
	return ref
}
