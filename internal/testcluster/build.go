package testcluster

import (
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
)

// Versions of the control plane, which name its cache folder.
const (
	kubeVersion = "v1.37.2"
	etcdVersion = "v3.7.3"
)

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
	// Test binaries of several packages start at once, and each builds
	// what is missing: one builds, the others wait for it, rather than
	// build kube-apiserver twice on a small machine.
	lock, err := os.OpenFile(filepath.Join(bin, ".lock"), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return "", fmt.Errorf("testcluster: %w", err)
	}
	defer lock.Close() // which releases the lock
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("testcluster: locking %s: %w", lock.Name(), err)
	}
	ldflags := "-s -X k8s.io/component-base/version.gitVersion=" + kubeVersion
	for _, b := range []struct{ name, version, module, pkg string }{
		{"etcd", etcdVersion, "etcd", "."},
		{"kube-apiserver", kubeVersion, "kube", "k8s.io/kubernetes/cmd/kube-apiserver"},
		{"kube-scheduler", kubeVersion, "kube", "k8s.io/kubernetes/cmd/kube-scheduler"},
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
		cmd.Dir = repoFile("hack", "controlplane", b.module)
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

// repoFile returns the path of a file of this repository, which the
// cluster is made from: the path of this source file tells where the
// repository is, as go test and hack/testcluster build from it in place.
func repoFile(elem ...string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(append([]string{filepath.Dir(file), "..", ".."}, elem...)...)
}
