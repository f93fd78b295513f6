//go:build unix

package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/daggerflow/dagger/internal/testcluster"
)

// TestUpDown builds the command as hack/testcluster does, and runs "up"
// twice, which must print the same environment, and "down", in a cache
// folder of its own.
func TestUpDown(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: no test cluster")
	}
	// The control plane's executables, where Build looks for them in
	// the test's cache folder, as building them there would take minutes.
	bin, err := testcluster.Build()
	if err != nil {
		t.Fatal(err)
	}
	userCache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(userCache, bin)
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	if err := os.MkdirAll(filepath.Dir(filepath.Join(cache, rel)), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(bin, filepath.Join(cache, rel)); err != nil {
		t.Fatal(err)
	}

	exe := filepath.Join(t.TempDir(), "testcluster")
	if out, err := exec.Command("go", "build", "-o", exe, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	run := func(arg string) string {
		t.Helper()
		cmd := exec.Command(exe, arg)
		cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+cache)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("testcluster %s: %v\n%s", arg, err, stderr.Bytes())
		}
		return string(out)
	}
	env := run("up")
	t.Cleanup(func() { run("down") })
	if again := run("up"); again != env {
		t.Errorf("a second up printed\n%s\nafter\n%s", again, env)
	}

	vars := make(map[string]string)
	for line := range strings.Lines(env) {
		name, value, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(line), "export "), "=")
		if !ok {
			t.Fatalf("up printed %q", line)
		}
		vars[name] = strings.Trim(value, "'")
	}
	for _, name := range []string{"KUBECONFIG", "DAGGER_NAMESPACE", "DAGGER_REGISTRY", "DAGGER_CREDENTIALS_SECRET", "DAGGER_DATASTORE", "AWS_ACCESS_KEY_ID"} {
		if vars[name] == "" {
			t.Errorf("up printed no %s:\n%s", name, env)
		}
	}
	if _, ok := vars["AWS_CONFIG_FILE"]; ok {
		t.Errorf("up printed AWS_CONFIG_FILE, which hides the user's AWS configuration")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", vars["KUBECONFIG"])
	if err != nil {
		t.Fatal(err)
	}
	client, err := corev1client.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Pods(vars["DAGGER_NAMESPACE"]).List(t.Context(), metav1.ListOptions{}); err != nil {
		t.Errorf("listing pods as the driver: %v", err)
	}

	run("down")
	if _, err := client.Pods(vars["DAGGER_NAMESPACE"]).List(t.Context(), metav1.ListOptions{}); err == nil {
		t.Errorf("the API server answers after down")
	}
	if _, err := os.Stat(filepath.Join(cache, "dagger", "testcluster", "run", "pid")); !os.IsNotExist(err) {
		t.Errorf("the process ID file is left after down: %v", err)
	}
}
