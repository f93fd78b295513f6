package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	osexec "os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/daggerflow/dagger/internal/testcluster"
	"github.com/daggerflow/dagger/kube"
	"github.com/daggerflow/dagger/kubeexec"
	"github.com/daggerflow/dagger/store"
)

// A kubeEnv is a test cluster with dagger's runner image in its registry.
type kubeEnv struct {
	c     *testcluster.Cluster
	exe   string // a static dagger executable, the driver of the tests that need a process
	image string // the runner image of exe, by digest
	env   []string
	pods  kubeexec.Pods // the admin's client of the runs' pods
}

// startKube starts a test cluster with opts, and builds and pushes the
// runner image.
func startKube(t *testing.T, opts testcluster.Options) *kubeEnv {
	t.Helper()
	c := testcluster.StartWith(t, opts)
	exe := testcluster.BuildDagger(t)
	image := c.Push(t, exe, "dagger")
	pods, err := kubeexec.NewPods(c.REST, c.Namespace)
	if err != nil {
		t.Fatal(err)
	}
	env := slices.Concat(os.Environ(), c.DatastoreEnv, []string{
		// The driver has the rights of deploy/rbac.yaml's Role, no more.
		"KUBECONFIG=" + c.DriverKubeconfig,
		"DAGGER_NAMESPACE=" + c.Namespace,
		"DAGGER_CREDENTIALS_SECRET=" + c.CredentialsSecret,
		// --image wins over it.
		"DAGGER_REGISTRY=" + c.Registry + "/dagger",
	})
	return &kubeEnv{c: c, exe: exe, image: image, env: env, pods: pods}
}

// dagger runs the static dagger with args in the cluster's environment,
// with the datastore prefix ds, and returns what it did.
func (k *kubeEnv) dagger(t *testing.T, ds string, args ...string) result {
	t.Helper()
	cmd := k.command(t.Context(), ds, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := cmd.ProcessState.ExitCode()
	if err != nil && code < 0 {
		t.Fatalf("dagger %s: %v", strings.Join(args, " "), err)
	}
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

func (k *kubeEnv) command(ctx context.Context, ds string, args ...string) *osexec.Cmd {
	cmd := osexec.CommandContext(ctx, k.exe, args...)
	cmd.Env = append(slices.Clone(k.env), "DAGGER_DATASTORE="+k.c.DatastoreAt(ds))
	return cmd
}

// TestKubernetes runs flows with dagger kubernetes run on a test cluster
// (a real API server and scheduler, nodes that run each pod's image as a
// process), with the driver's least-privilege ServiceAccount.
func TestKubernetes(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: no test cluster")
	}
	t.Chdir(repoRoot)
	k := startKube(t, testcluster.Options{})

	// Every flow that TestRun runs prints here what it prints locally,
	// and records the same tasks, artifact hashes included.
	t.Run("flows", func(t *testing.T) {
		for _, flow := range slices.Concat(glob(t, "examples/*.star"), glob(t, "testdata/run/*.star")) {
			name := strings.TrimSuffix(filepath.Base(flow), ".star")
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				g := loadGraph(t, flow)
				want, err := os.ReadFile(filepath.Join("testdata/run", name+".txt"))
				if err != nil {
					t.Fatal(err)
				}
				dir := t.TempDir()
				r := k.dagger(t, name, slices.Concat([]string{"kubernetes", "run", "--store", dir, "--image", k.image, flow}, runArgs[flow])...)
				if diff := gocmp.Diff(string(want), formatResult(r, g)); diff != "" {
					t.Errorf("printed differently from a local run (-local +kubernetes):\n%s", diff)
				}
				local := t.TempDir()
				l := k.dagger(t, "", slices.Concat([]string{"run", "--store", local, flow}, runArgs[flow])...)
				ignore := cmpopts.IgnoreFields(store.Task{}, "RunID", "Started", "Ended")
				if diff := gocmp.Diff(runTasks(t, local, l.stdout), runTasks(t, dir, r.stdout), ignore); diff != "" {
					t.Errorf("recorded different tasks (-local +kubernetes):\n%s", diff)
				}
			})
		}
	})

	// The README's example prints what it says, with the environment
	// hack/testcluster up prints: the image is built from this dagger.
	t.Run("readme", func(t *testing.T) {
		data, err := os.ReadFile("README.md")
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.SplitAfter(string(data), "\n")
		found := 0
		for i, line := range lines {
			if strings.TrimSpace(line) != "<!-- kubernetes output -->" {
				continue
			}
			found++
			block, err := fenced(lines[i+1:])
			if err != nil {
				t.Fatalf("README.md:%d: %v", i+2, err)
			}
			command, want, _ := strings.Cut(block, "\n")
			rest, ok := strings.CutPrefix(command, "$ dagger kubernetes run ")
			if !ok || strings.ContainsAny(rest, `'"\$`) {
				t.Fatalf("README.md:%d: want $ dagger kubernetes run ARGS, without quotes or variables; got %s", i+2, command)
			}
			args := strings.Fields(rest)
			g := loadGraph(t, args[len(args)-1])
			r := k.dagger(t, "readme", slices.Concat([]string{"kubernetes", "run", "--store", t.TempDir()}, args)...)
			if diff := gocmp.Diff(normalizeRun(want, g), normalizeRun(r.stdout, g)); diff != "" {
				t.Errorf("README.md:%d: %s prints differently (-README +got):\n%s", i+2, command, diff)
			}
			if !strings.Contains(r.stderr, "runner image "+k.c.Registry+"/dagger:sha256-") {
				t.Errorf("README.md:%d: %s says nothing of its runner image on stderr:\n%s", i+2, command, r.stderr)
			}
		}
		if found == 0 {
			t.Error("README.md has no Kubernetes example to check")
		}
	})

	// dagger builds the runner image from itself, and pushes it once.
	// Its output and artifacts outlive the pods, in the datastore.
	t.Run("registry", func(t *testing.T) {
		st := t.TempDir()
		for i := range 2 {
			r := k.dagger(t, "registry", "kubernetes", "run", "--store", st, "--registry", k.c.Registry+"/self", "examples/hello.star")
			if r.code != exitOK || !strings.Contains(r.stdout, "hello| Hello, world!") || !strings.Contains(r.stderr, "runner image "+k.c.Registry+"/self:sha256-") {
				t.Fatalf("run %d: exit %d\n%s%s", i+1, r.code, r.stdout, r.stderr)
			}
		}
		if r := k.dagger(t, "registry", "logs", "--store", st, "latest"); r.code != exitOK || r.stdout != "hello| Hello, world!\n" {
			t.Errorf("dagger logs: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		if r := k.dagger(t, "registry", "inspect", "--store", st, "latest/start/who"); r.code != exitOK || !strings.Contains(r.stdout, `"world"`) {
			t.Errorf("dagger inspect: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	})

	// The join's spec is too large for the pod's environment, and comes
	// through the datastore.
	t.Run("wide join", func(t *testing.T) {
		r := k.dagger(t, "wide", "kubernetes", "run", "--store", t.TempDir(), "--image", k.image, "--max-workers", "30", "testdata/kubernetes/wide_join.star")
		if r.code != exitOK || !strings.Contains(r.stdout, "join| 60 inputs, total 3510") {
			t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	})

	// The driver's Role gives it no rights outside its namespace: it says
	// so before the run starts.
	t.Run("forbidden", func(t *testing.T) {
		st := t.TempDir()
		r := k.dagger(t, "forbidden", "kubernetes", "run", "--store", st, "--image", k.image, "-n", "default", "examples/hello.star")
		if r.code != exitInvalid || !strings.Contains(r.stderr, `dagger: listing the pods of namespace default at `) || !strings.Contains(r.stderr, `cannot list resource "pods" in API group "" in the namespace "default"`) {
			t.Errorf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("gpu", func(t *testing.T) {
		r := k.dagger(t, "gpu", "kubernetes", "run", "--store", t.TempDir(), "--image", k.image, "testdata/kubernetes/gpu.star")
		if r.code != exitOK || !strings.Contains(r.stdout, "train| trained") {
			t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	})

	// A pod no node can take says why while it waits, then fails its task.
	t.Run("unschedulable", func(t *testing.T) {
		r := k.dagger(t, "unschedulable", "kubernetes", "run", "--store", t.TempDir(), "--image", k.image, "--schedule-timeout", "3s", "testdata/kubernetes/unschedulable.star")
		for _, want := range []string{
			"… big waiting: unschedulable: 0/2 nodes are available: 2 Insufficient memory.",
			"✗ big (DUR) failed: pod ",
			"was not scheduled in 3s: unschedulable: 0/2 nodes are available",
		} {
			if !strings.Contains(normalizeRun(r.stdout, loadGraph(t, "testdata/kubernetes/unschedulable.star")), want) {
				t.Errorf("the output lacks %q: exit %d\n%s%s", want, r.code, r.stdout, r.stderr)
			}
		}
	})

	t.Run("missing image", func(t *testing.T) {
		image := k.c.Registry + "/dagger:missing"
		r := k.dagger(t, "missing", "kubernetes", "run", "--store", t.TempDir(), "--image", image, "--pull-timeout", "2s", "examples/hello.star")
		if r.code != exitFailed || !strings.Contains(r.stdout, "its image cannot be pulled after 2s: image "+image+": ") {
			t.Errorf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	})

	// An image whose entrypoint is not dagger exits with a code, which
	// the task's error gives with the last line it wrote.
	t.Run("exit code", func(t *testing.T) {
		image := k.c.Push(t, testcluster.BuildProgram(t, `package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "this is no dagger")
	os.Exit(3)
}
`), "exit3")
		r := k.dagger(t, "exit", "kubernetes", "run", "--store", t.TempDir(), "--image", image, "--keep-failed-pods", "examples/hello.star")
		if r.code != exitFailed || !strings.Contains(r.stdout, "the runner exited with code 3: this is no dagger") {
			t.Errorf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		// --keep-failed-pods kept it, for kubectl.
		m := runHeader.FindStringSubmatch(r.stdout)
		if m == nil {
			t.Fatalf("no run header:\n%s", r.stdout)
		}
		list, err := k.pods.List(t.Context(), metav1.ListOptions{LabelSelector: kube.LabelRun + "=" + m[1]})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Items) != 1 || list.Items[0].Status.Phase != corev1.PodFailed {
			t.Errorf("%d pods of the failed run are left, want its one failed pod", len(list.Items))
		}
	})

	// A step with an image of its own runs there, with dagger copied in,
	// and runs the image's programs.
	t.Run("own image", func(t *testing.T) {
		image := k.c.Push(t, testcluster.BuildProgram(t, `package main

import (
	"fmt"
	"os"
)

func main() { fmt.Println("hello from the image,", os.Args[1:]) }
`), "tool")
		r := k.dagger(t, "own", "kubernetes", "run", "--store", t.TempDir(), "--image", k.image, "--allow", "exec", "-p", "image="+image, "testdata/kubernetes/own_image.star")
		if r.code != exitOK || !strings.Contains(r.stdout, "finish| the image's program said: hello from the image, [hello]") {
			t.Errorf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	})

	// The flow's own files and file artifacts work in pods, and a step
	// reads its Secret, whose value it never shows.
	t.Run("files and secrets", func(t *testing.T) {
		const password = "hunter2-not-shown"
		secret := corev1.Secret{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
			ObjectMeta: metav1.ObjectMeta{Name: "db-creds"},
			StringData: map[string]string{"DB_PASSWORD": password},
		}
		body, err := json.Marshal(secret)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := k.c.Do(t.Context(), http.MethodPost, "/api/v1/namespaces/"+k.c.Namespace+"/secrets", body)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("creating the Secret: %s", resp.Status)
		}
		st := t.TempDir()
		r := k.dagger(t, "files", "kubernetes", "run", "--store", st, "--image", k.image, "--allow", "files,env", "testdata/kubernetes/files.star")
		if r.code != exitOK || !strings.Contains(r.stdout, "finish| HELLO FROM A FILE\nfinish| password: ***\n") {
			t.Errorf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		logs := k.dagger(t, "files", "logs", "--store", st, "latest")
		if strings.Contains(r.stdout+r.stderr+logs.stdout, password) || !strings.Contains(logs.stdout, "password: ***") {
			t.Errorf("the Secret's value shows, or the logs lack the line:\n%s%s%s", r.stdout, r.stderr, logs.stdout)
		}
	})

	// A pod deleted, or evicted, while its task runs is replaced.
	for _, fault := range []struct {
		name string
		do   func(context.Context, *corev1.Pod) error
		why  string
	}{
		{"deleted", func(ctx context.Context, p *corev1.Pod) error {
			return k.pods.Delete(ctx, p.Name, metav1.DeleteOptions{})
		}, "was deleted before its task finished"},
		{"evicted", func(ctx context.Context, p *corev1.Pod) error {
			return k.evict(ctx, p)
		}, "failed (Evicted): The node was low on resource: memory."},
	} {
		t.Run(fault.name, func(t *testing.T) {
			cmd := k.command(t.Context(), fault.name, "kubernetes", "run", "--store", t.TempDir(), "--image", k.image, "testdata/kubernetes/sleep.star")
			var stdout, stderr lockedBuffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			p := k.waitForPod(t, waitForRun(t, &stdout), "wait", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
			if err := fault.do(t.Context(), p); err != nil {
				t.Fatal(err)
			}
			cmd.Wait()
			out := stdout.String()
			for _, want := range []string{"… wait waiting: pod " + p.Name + " " + fault.why, "; starting another pod", "wait| waited 3s", "finish| n = 42"} {
				if !strings.Contains(out, want) {
					t.Errorf("the output lacks %q: exit %d\n%s%s", want, cmd.ProcessState.ExitCode(), out, stderr.String())
				}
			}
		})
	}

	// A driver killed while a task runs is resumed: the resumed run adopts
	// the pod that still runs the task, and starts no other.
	t.Run("killed and resumed", func(t *testing.T) {
		st := t.TempDir()
		created := k.countPods(t, "wait")
		cmd := k.command(t.Context(), "killed", "kubernetes", "run", "--store", st, "--image", k.image, "testdata/kubernetes/sleep.star")
		var stdout lockedBuffer
		cmd.Stdout = &stdout
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		run := waitForRun(t, &stdout)
		k.waitForPod(t, run, "wait", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
		cmd.Process.Kill()
		cmd.Wait()
		r := k.dagger(t, "killed", "resume", "--store", st, run)
		for _, want := range []string{"✓ start (reused)", "wait| waited 3s", "finish| n = 42"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("the resumed run's output lacks %q: exit %d\n%s%s", want, r.code, r.stdout, r.stderr)
			}
		}
		if n := created(); n != 1 {
			t.Errorf("%d pods ran task wait, want 1\n%s%s", n, r.stdout, r.stderr)
		}
	})

	// Ctrl-C cancels the run and deletes its pods.
	t.Run("interrupted", func(t *testing.T) {
		st := t.TempDir()
		cmd := k.command(t.Context(), "interrupted", "kubernetes", "run", "--store", st, "--image", k.image, "-p", "seconds=60", "testdata/kubernetes/sleep.star")
		var stdout, stderr lockedBuffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		p := k.waitForPod(t, waitForRun(t, &stdout), "wait", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
		cmd.Process.Signal(syscall.SIGINT)
		cmd.Wait()
		if code := cmd.ProcessState.ExitCode(); code != exitFailed || !strings.Contains(stdout.String(), "✗ wait") || !strings.Contains(stdout.String(), "cancelled") {
			t.Errorf("exit %d\n%s%s", code, stdout.String(), stderr.String())
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, err := k.pods.Get(t.Context(), p.Name, metav1.GetOptions{})
			if err != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("pod %s is still there after the run was interrupted", p.Name)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

// TestKubernetesTLS runs a flow on a test cluster whose datastore speaks
// HTTPS with a certificate of the cluster's own CA, which the runner image
// cannot know: the pods reach the datastore with --ca-secret, and fail
// with a certificate error without it, which shows that the path of
// certificate roots in pods is really taken.
func TestKubernetesTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: no test cluster")
	}
	t.Chdir(repoRoot)
	k := startKube(t, testcluster.Options{TLSDatastore: true})
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     []string // in the output
	}{
		{"ca-secret", []string{"--ca-secret", k.c.CASecret}, exitOK, []string{"hello| Hello, world!"}},
		{"without-ca-secret", nil, exitFailed, []string{"✗ start", "x509: certificate signed by unknown authority"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := slices.Concat([]string{"kubernetes", "run", "--store", t.TempDir(), "--image", k.image}, tt.args, []string{"examples/hello.star"})
			r := k.dagger(t, tt.name, args...)
			if r.code != tt.wantCode {
				t.Errorf("exit %d, want %d", r.code, tt.wantCode)
			}
			for _, want := range tt.want {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("the output lacks %q", want)
				}
			}
			if t.Failed() {
				t.Logf("output:\n%s%s", r.stdout, r.stderr)
			}
		})
	}
}

// A lockedBuffer keeps what a command writes, for a test to read while
// the command runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// waitForRun waits for the first line of a run in out, at most a minute,
// and returns the run's ID.
func waitForRun(t *testing.T, out *lockedBuffer) string {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := runHeader.FindStringSubmatch(out.String()); m != nil {
			return m[1]
		}
	}
	t.Fatalf("no run header within a minute:\n%s", out.String())
	return ""
}

// waitForPod returns the first pod of task of run that satisfies ok,
// waiting for it for at most a minute. Pods of other runs, which earlier
// tests may leave behind for a while, are not looked at.
func (k *kubeEnv) waitForPod(t *testing.T, run, task string, ok func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	w, err := k.pods.Watch(ctx, metav1.ListOptions{LabelSelector: kube.LabelRun + "=" + run + "," + kube.LabelTask + "=" + task})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	for ev := range w.ResultChan() {
		if p, isPod := ev.Object.(*corev1.Pod); isPod && ev.Type != watch.Deleted && ok(p) {
			return p
		}
	}
	t.Fatalf("no pod of task %s as awaited within a minute", task)
	return nil
}

// countPods counts the pods of task created from now on, until the
// function it returns is called, which returns the count.
func (k *kubeEnv) countPods(t *testing.T, task string) func() int {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	w, err := k.pods.Watch(ctx, metav1.ListOptions{LabelSelector: kube.LabelTask + "=" + task})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	names := make(map[string]bool)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			if p, isPod := ev.Object.(*corev1.Pod); isPod && ev.Type == watch.Added {
				mu.Lock()
				names[p.Name] = true
				mu.Unlock()
			}
		}
	}()
	return func() int {
		cancel()
		w.Stop()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return len(names)
	}
}

// evict marks pod p evicted, as a kubelet short of memory does.
func (k *kubeEnv) evict(ctx context.Context, p *corev1.Pod) error {
	p, err := k.pods.Get(ctx, p.Name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	p.Status.Phase = corev1.PodFailed
	p.Status.Reason = "Evicted"
	p.Status.Message = "The node was low on resource: memory."
	body, err := json.Marshal(p)
	if err != nil {
		return err
	}
	resp, err := k.c.Do(ctx, http.MethodPut, fmt.Sprintf("/api/v1/namespaces/%s/pods/%s/status", p.Namespace, p.Name), body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("evicting pod %s: %s: %s", p.Name, resp.Status, msg)
	}
	return nil
}
