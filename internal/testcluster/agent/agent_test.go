package agent_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	osexec "os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/registry"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"

	"github.com/daggerflow/dagger/exec"
	"github.com/daggerflow/dagger/internal/testcluster"
	"github.com/daggerflow/dagger/internal/testcluster/agent"
	"github.com/daggerflow/dagger/kube"
	"github.com/daggerflow/dagger/runnerimage"
)

func TestMain(m *testing.M) { testcluster.Main(m) }

// The nodes of the agent under test; the test cluster has nodes of its
// own, from an agent of its own.
const (
	nodeA = "agent-a"
	nodeB = "agent-b"
)

// An env is what the subtests of TestAgent share: one API server, one
// agent, one registry with the helper's images.
type env struct {
	client    corev1client.CoreV1Interface
	image     string // the helper, as a runner image: entrypoint /dagger
	stepImage string // the same, in another repository
}

func TestAgent(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the test cluster")
	}
	helper := buildHelper(t)
	c := testcluster.Start(t)
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)

	ctx := t.Context()
	im, err := runnerimage.FromExecutable(helper, runtime.GOARCH)
	if err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(srv.URL, "http://")
	var e env
	if e.image, err = im.Push(ctx, host+"/helper", runnerimage.Insecure()); err != nil {
		t.Fatal(err)
	}
	if e.stepImage, err = im.Push(ctx, host+"/step", runnerimage.Insecure()); err != nil {
		t.Fatal(err)
	}
	if e.client, err = corev1client.NewForConfig(c.REST); err != nil {
		t.Fatal(err)
	}

	gpu := corev1.ResourceList{"nvidia.com/gpu": resource.MustParse("2")}
	a, err := agent.Start(ctx, agent.Config{
		REST: c.REST,
		Nodes: []agent.Node{
			{Name: nodeA},
			{Name: nodeB, Labels: map[string]string{"gpu": "true"}, Capacity: gpu},
		},
		Dir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := a.Close(); err != nil {
			t.Error(err)
		}
	})

	t.Run("nodes", func(t *testing.T) { testNodes(t, &e) })
	t.Run("runs", func(t *testing.T) { testRuns(t, &e) })
	t.Run("missing image", func(t *testing.T) { testMissingImage(t, &e) })
	t.Run("invalid image name", func(t *testing.T) { testInvalidImageName(t, &e) })
	t.Run("deadline", func(t *testing.T) { testDeadline(t, &e) })
	t.Run("deletion", func(t *testing.T) { testDeletion(t, &e) })
	t.Run("ended by another", func(t *testing.T) { testEndedByAnother(t, &e) })
	t.Run("logs", func(t *testing.T) { testLogs(t, &e) })
}

// buildHelper builds testdata/helper, static, and returns its path.
func buildHelper(t *testing.T) string {
	t.Helper()
	exe := filepath.Join(t.TempDir(), "helper")
	cmd := osexec.Command("go", "build", "-trimpath", "-o", exe, "./testdata/helper")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the helper: %v\n%s", err, out)
	}
	return exe
}

func testNodes(t *testing.T, e *env) {
	t.Parallel()
	for _, name := range []string{nodeA, nodeB} {
		node, err := e.client.Nodes().Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var ready corev1.ConditionStatus
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady {
				ready = c.Status
			}
		}
		if ready != corev1.ConditionTrue {
			t.Errorf("node %s: Ready is %q", name, ready)
		}
		if len(node.Spec.Taints) != 0 {
			t.Errorf("node %s: taints %v", name, node.Spec.Taints)
		}
		if want := []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}}; !cmp.Equal(node.Status.Addresses, want) {
			t.Errorf("node %s: addresses %v, want %v", name, node.Status.Addresses, want)
		}
		if node.Status.DaemonEndpoints.KubeletEndpoint.Port == 0 {
			t.Errorf("node %s: no kubelet port", name)
		}
		if node.Labels["kubernetes.io/hostname"] != name {
			t.Errorf("node %s: labels %v", name, node.Labels)
		}
		gpu := node.Status.Allocatable["nvidia.com/gpu"]
		if want := map[string]int64{nodeA: 0, nodeB: 2}[name]; gpu.Value() != want {
			t.Errorf("node %s: %v GPUs allocatable, want %d", name, gpu.Value(), want)
		}
		if pods := node.Status.Capacity[corev1.ResourcePods]; pods.Value() != 110 {
			t.Errorf("node %s: capacity for %v pods, want 110", name, pods.Value())
		}
	}
}

// A result is what the tests compare of a container that ended.
type result struct {
	ExitCode int32
	Reason   string
	Message  string
}

func testRuns(t *testing.T, e *env) {
	token := "not $(HOME)" // expanded by no one
	long := strings.Repeat("x", 5000) + "END"
	var tail80 strings.Builder
	for i := 21; i <= 100; i++ {
		fmt.Fprintf(&tail80, "line %d\n", i)
	}
	spec := &exec.TaskSpec{
		RunID: "r1", Step: "start", TaskID: "start.1", Attempt: 1,
		Params: map[string]string{"p": "$(HOME) and $$ and $(TMPDIR)"},
	}
	stepSpec := *spec
	stepSpec.Resources.Image = e.stepImage
	stepLog := "uid=65532 gid=65532 groups=[]\nparam p=$(HOME) and $$ and $(TMPDIR)\n"

	tests := []struct {
		name       string
		restricted bool // whether the namespace enforces the restricted standard
		asRoot     bool // whether the test needs the agent to run as root
		pod        func(t *testing.T, ns string) *corev1.Pod
		phase      corev1.PodPhase
		results    map[string]result // by container
		logs       map[string]string // by container
	}{{
		name:    "succeeds",
		pod:     func(t *testing.T, ns string) *corev1.Pod { return e.pod(ns, "print:hello", "msg:all done") },
		phase:   corev1.PodSucceeded,
		results: map[string]result{"main": {0, "Completed", "all done"}},
		logs:    map[string]string{"main": "hello\n"},
	}, {
		name:    "fails with its log",
		pod:     func(t *testing.T, ns string) *corev1.Pod { return e.pod(ns, "print:one", "stderr:two", "exit:3") },
		phase:   corev1.PodFailed,
		results: map[string]result{"main": {3, "Error", "one\ntwo\n"}},
	}, {
		name:    "fails with its message",
		pod:     func(t *testing.T, ns string) *corev1.Pod { return e.pod(ns, "print:one", "msg:why", "exit:1") },
		phase:   corev1.PodFailed,
		results: map[string]result{"main": {1, "Error", "why"}},
	}, {
		name:    "fails with the end of its log",
		pod:     func(t *testing.T, ns string) *corev1.Pod { return e.pod(ns, "lines:100", "exit:1") },
		phase:   corev1.PodFailed,
		results: map[string]result{"main": {1, "Error", tail80.String()}},
	}, {
		name:    "long message",
		pod:     func(t *testing.T, ns string) *corev1.Pod { return e.pod(ns, "msg:"+long) },
		phase:   corev1.PodSucceeded,
		results: map[string]result{"main": {0, "Completed", long[len(long)-4096:]}},
	}, {
		name: "missing executable",
		pod: func(t *testing.T, ns string) *corev1.Pod {
			p := e.pod(ns)
			p.Spec.Containers[0].Command = []string{"nothing"}
			return p
		},
		phase: corev1.PodFailed,
		results: map[string]result{"main": {128, "StartError",
			`exec: "nothing": executable file not found in $PATH`}},
	}, {
		name: "init container and emptyDir",
		pod: func(t *testing.T, ns string) *corev1.Pod {
			p := e.pod(ns, "cat:/shared/x", "cat:/other/x")
			p.Spec.Volumes = []corev1.Volume{{Name: "shared", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
			c := &p.Spec.Containers[0]
			c.VolumeMounts = []corev1.VolumeMount{{Name: "shared", MountPath: "/shared"}, {Name: "shared", MountPath: "/other"}}
			init := *c.DeepCopy()
			init.Name, init.Args = "init", []string{"write:/shared/x=from init", "msg:init done"}
			init.VolumeMounts = init.VolumeMounts[:1]
			p.Spec.InitContainers = []corev1.Container{init}
			return p
		},
		phase: corev1.PodSucceeded,
		results: map[string]result{
			"init": {0, "Completed", "init done"},
			"main": {0, "Completed", ""},
		},
		logs: map[string]string{"main": "from init\nfrom init\n"},
	}, {
		name: "failed init container",
		pod: func(t *testing.T, ns string) *corev1.Pod {
			p := e.pod(ns, "print:never")
			init := *p.Spec.Containers[0].DeepCopy()
			init.Name, init.Args = "init", []string{"print:failing", "exit:7"}
			p.Spec.InitContainers = []corev1.Container{init}
			return p
		},
		phase:   corev1.PodFailed,
		results: map[string]result{"init": {7, "Error", "failing\n"}},
	}, {
		name: "env",
		pod: func(t *testing.T, ns string) *corev1.Pod {
			p := e.pod(ns, "env:A", "env:B", "env:SECRET", "env:S_token", "env:PATH", "env:NONE", "print:$(A)$$(A)")
			c := &p.Spec.Containers[0]
			c.Env = []corev1.EnvVar{
				{Name: "A", Value: "a"},
				{Name: "B", Value: "$(A)-$$(A)-$(NOPE)-$(C)-$(S_token)-$(A"},
				{Name: "C", Value: "c"},
				{Name: "SECRET", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
					LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Key: "token"}}},
			}
			c.EnvFrom = []corev1.EnvFromSource{{Prefix: "S_", SecretRef: &corev1.SecretEnvSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}}}}
			return p
		},
		phase:   corev1.PodSucceeded,
		results: map[string]result{"main": {0, "Completed", ""}},
		logs: map[string]string{"main": "A=a\nB=a-$(A)-$(NOPE)-$(C)-" + token + "-$(A\nSECRET=" + token + "\nS_token=" + token +
			"\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nNONE unset\na$(A)\n"},
	}, {
		name:   "chroot and identity",
		asRoot: true,
		pod: func(t *testing.T, ns string) *corev1.Pod {
			p := e.pod(ns, "id:", "ls:/", "ls:/data")
			p.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: new(int64(65532)), FSGroup: new(int64(42))}
			p.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "creds"}}}}
			c := &p.Spec.Containers[0]
			c.SecurityContext = &corev1.SecurityContext{RunAsUser: new(int64(1234)), RunAsGroup: new(int64(5678))}
			c.VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
			return p
		},
		phase:   corev1.PodSucceeded,
		results: map[string]result{"main": {0, "Completed", ""}},
		logs:    map[string]string{"main": "uid=1234 gid=5678 groups=[42]\ndagger\ndata\ndev\netc\nproc\ntoken\n"},
	}, {
		name:       "restricted pod of kube.Pod",
		restricted: true,
		asRoot:     true,
		pod:        func(t *testing.T, ns string) *corev1.Pod { return e.kubePod(t, ns, spec) },
		phase:      corev1.PodSucceeded,
		results:    map[string]result{"step": {0, "Completed", "result of start.1"}},
		logs:       map[string]string{"step": stepLog},
	}, {
		name:       "restricted pod of kube.Pod with a step image",
		restricted: true,
		asRoot:     true,
		pod:        func(t *testing.T, ns string) *corev1.Pod { return e.kubePod(t, ns, &stepSpec) },
		phase:      corev1.PodSucceeded,
		results: map[string]result{
			"copy-runner": {0, "Completed", ""},
			"step":        {0, "Completed", "result of start.1"},
		},
		logs: map[string]string{
			"copy-runner": "copied /dagger to /dagger-bin/dagger\n",
			"step":        stepLog,
		},
	}}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			t.Parallel()
			if test.asRoot && os.Geteuid() != 0 {
				t.Skip("needs the agent to run as root")
			}
			ns := e.namespace(t, test.restricted, map[string]string{"token": token})
			pod := e.create(t, test.pod(t, ns))
			pod = e.waitPod(t, pod, func(p *corev1.Pod) bool { return p.Status.Phase == test.phase })
			got := make(map[string]result)
			for _, s := range append(pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses...) {
				if term := s.State.Terminated; term != nil {
					got[s.Name] = result{term.ExitCode, term.Reason, term.Message}
				}
			}
			if diff := cmp.Diff(test.results, got); diff != "" {
				t.Errorf("containers ended otherwise (-want +got):\n%s", diff)
			}
			for container, want := range test.logs {
				if got := e.logs(t, pod, &corev1.PodLogOptions{Container: container}); got != want {
					t.Errorf("log of %s: %q, want %q", container, got, want)
				}
			}
			var conds []string
			for _, c := range pod.Status.Conditions {
				conds = append(conds, string(c.Type)+"="+string(c.Status))
			}
			ready := "True"
			if len(pod.Status.InitContainerStatuses) > 0 && test.phase == corev1.PodFailed {
				ready = "False"
			}
			wantConds := []string{"PodScheduled=True", "PodReadyToStartContainers=True", "Initialized=" + ready, "ContainersReady=False", "Ready=False"}
			if diff := cmp.Diff(wantConds, conds); diff != "" {
				t.Errorf("conditions (-want +got):\n%s", diff)
			}
			if pod.Status.PodIP != "127.0.0.1" || pod.Status.HostIP != "127.0.0.1" || pod.Status.StartTime == nil {
				t.Errorf("pod IP %q, host IP %q, start time %v", pod.Status.PodIP, pod.Status.HostIP, pod.Status.StartTime)
			}
		})
	}
}

func testMissingImage(t *testing.T, e *env) {
	t.Parallel()
	ns := e.namespace(t, false, nil)
	p := e.pod(ns)
	p.Spec.Containers[0].Image = strings.Split(e.image, "/")[0] + "/nothing:here"
	pod := e.create(t, p)
	seen := make(map[string]string)
	pod = e.waitPod(t, pod, func(p *corev1.Pod) bool {
		if p.Status.Phase != corev1.PodPending {
			t.Fatalf("phase %s, want Pending", p.Status.Phase)
		}
		if s := p.Status.ContainerStatuses; len(s) == 1 && s[0].State.Waiting != nil {
			seen[s[0].State.Waiting.Reason] = s[0].State.Waiting.Message
		}
		return seen["ErrImagePull"] != "" && seen["ImagePullBackOff"] != ""
	})
	if msg := seen["ImagePullBackOff"]; !strings.HasPrefix(msg, fmt.Sprintf("Back-off pulling image %q: ErrImagePull: ", p.Spec.Containers[0].Image)) ||
		!strings.Contains(msg, seen["ErrImagePull"]) {
		t.Errorf("ImagePullBackOff message %q, ErrImagePull message %q", msg, seen["ErrImagePull"])
	}
	// A kubelet keeps trying: the pod stays Pending.
	time.Sleep(1500 * time.Millisecond)
	pod, err := e.client.Pods(ns).Get(t.Context(), pod.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pod.Status.Phase != corev1.PodPending {
		t.Errorf("phase %s, want Pending", pod.Status.Phase)
	}
}

func testInvalidImageName(t *testing.T, e *env) {
	t.Parallel()
	ns := e.namespace(t, false, nil)
	p := e.pod(ns)
	p.Spec.Containers[0].Image = "UPPER/case:not:valid"
	pod := e.create(t, p)
	e.waitPod(t, pod, func(p *corev1.Pod) bool {
		s := p.Status.ContainerStatuses
		return len(s) == 1 && s[0].State.Waiting != nil && s[0].State.Waiting.Reason == "InvalidImageName"
	})
}

func testDeadline(t *testing.T, e *env) {
	t.Parallel()
	ns := e.namespace(t, false, nil)
	p := e.pod(ns, "sleep:1m")
	p.Spec.ActiveDeadlineSeconds = new(int64(1))
	start := time.Now()
	pod := e.waitPod(t, e.create(t, p), func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("the pod took %v to fail", d)
	}
	got := []string{pod.Status.Reason, pod.Status.Message}
	want := []string{"DeadlineExceeded", "Pod was active on the node longer than the specified deadline"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// SIGTERM, which the helper does not catch.
	if term := pod.Status.ContainerStatuses[0].State.Terminated; term == nil || term.ExitCode != 128+int32(syscall.SIGTERM) {
		t.Errorf("container state %+v, want terminated by SIGTERM", pod.Status.ContainerStatuses[0].State)
	}
}

func testDeletion(t *testing.T, e *env) {
	t.Parallel()
	ns := e.namespace(t, false, nil)
	pod := e.create(t, e.pod(ns, "pid:", "sleep:1m"))
	pid := e.runningPID(t, pod)
	if err := e.client.Pods(ns).Delete(t.Context(), pod.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := e.client.Pods(ns).Get(t.Context(), pod.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the pod is still there 20 s after its deletion")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("the pod's process %d is still there after its deletion (kill: %v)", pid, err)
	}
}

func testEndedByAnother(t *testing.T, e *env) {
	t.Parallel()
	ns := e.namespace(t, false, nil)
	pod := e.create(t, e.pod(ns, "pid:", "sleep:1m"))
	pid := e.runningPID(t, pod)
	pod, err := e.client.Pods(ns).Get(t.Context(), pod.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod.Status.Phase, pod.Status.Reason, pod.Status.Message = corev1.PodFailed, "Evicted", "evicted by the test"
	if _, err := e.client.Pods(ns).UpdateStatus(t.Context(), pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid)
	time.Sleep(200 * time.Millisecond) // for a status update that should not come
	pod, err = e.client.Pods(ns).Get(t.Context(), pod.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pod.Status.Phase != corev1.PodFailed || pod.Status.Reason != "Evicted" || pod.Status.ContainerStatuses[0].State.Running == nil {
		t.Errorf("the agent changed the status that another set: %+v", pod.Status)
	}
}

func testLogs(t *testing.T, e *env) {
	t.Parallel()
	ns := e.namespace(t, false, nil)
	pod := e.create(t, e.pod(ns, "print:first", "sleep:1s", "print:second"))
	e.waitPod(t, pod, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	stream, err := e.client.Pods(ns).GetLogs(pod.Name, &corev1.PodLogOptions{Follow: true}).Stream(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	r := bufio.NewReader(stream)
	first, err := r.ReadString('\n')
	if err != nil || first != "first\n" {
		t.Fatalf("first followed line %q, %v", first, err)
	}
	// Followed as it is written: the container is still sleeping.
	got, err := e.client.Pods(ns).Get(t.Context(), pod.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.Phase != corev1.PodRunning {
		t.Errorf("phase %s after the first line, want Running", got.Status.Phase)
	}
	rest, err := io.ReadAll(r)
	if err != nil || string(rest) != "second\n" {
		t.Errorf("rest of the followed log %q, %v", rest, err)
	}
	e.waitPod(t, pod, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })
	for _, test := range []struct {
		opts corev1.PodLogOptions
		want string
	}{
		{corev1.PodLogOptions{}, "first\nsecond\n"},
		{corev1.PodLogOptions{TailLines: new(int64(1))}, "second\n"},
		{corev1.PodLogOptions{TailLines: new(int64(0))}, ""},
		{corev1.PodLogOptions{LimitBytes: new(int64(3))}, "fir"},
		{corev1.PodLogOptions{Follow: true, TailLines: new(int64(1))}, "second\n"},
	} {
		if got := e.logs(t, pod, &test.opts); got != test.want {
			t.Errorf("logs with %+v: %q, want %q", test.opts, got, test.want)
		}
	}
}

// pod returns a pod of the helper image on nodeA, with args.
func (e *env) pod(ns string, args ...string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: ns},
		Spec: corev1.PodSpec{
			NodeName:      nodeA,
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name:                     "main",
				Image:                    e.image,
				Args:                     args,
				TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
			}},
		},
	}
}

// kubePod returns the pod that kube.Pod makes of spec, on nodeB.
func (e *env) kubePod(t *testing.T, ns string, spec *exec.TaskSpec) *corev1.Pod {
	t.Helper()
	p, err := kube.Pod(spec, kube.PodOptions{Namespace: ns, Image: e.image})
	if err != nil {
		t.Fatal(err)
	}
	p.Spec.NodeName = nodeB
	return p
}

// namespace creates a namespace for t, enforcing the restricted Pod
// Security Standard or not, with a Secret "creds" of data.
func (e *env) namespace(t *testing.T, restricted bool, data map[string]string) string {
	t.Helper()
	name := "t-" + strings.Trim(regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	name = name[:min(len(name), 63)]
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if restricted {
		ns.Labels = map[string]string{"pod-security.kubernetes.io/enforce": "restricted"}
	}
	if _, err := e.client.Namespaces().Create(t.Context(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds"}, StringData: data}
	if _, err := e.client.Secrets(name).Create(t.Context(), secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return name
}

func (e *env) create(t *testing.T, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	pod, err := e.client.Pods(pod.Namespace).Create(t.Context(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return pod
}

// waitPod watches pod from its version until done reports true of a
// version, which it returns, for at most 30 s.
func (e *env) waitPod(t *testing.T, pod *corev1.Pod, done func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	if done(pod) {
		return pod
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	w, err := e.client.Pods(pod.Namespace).Watch(ctx, metav1.ListOptions{
		FieldSelector:   "metadata.name=" + pod.Name,
		ResourceVersion: pod.ResourceVersion,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	last := pod
	for ev := range w.ResultChan() {
		switch ev.Type {
		case watch.Added, watch.Modified:
			last = ev.Object.(*corev1.Pod)
			if done(last) {
				return last
			}
		default:
			t.Fatalf("watching pod %s: %s event: %v", pod.Name, ev.Type, ev.Object)
		}
	}
	t.Fatalf("pod %s: not there after 30 s; its last status: %+v", pod.Name, last.Status)
	return nil
}

// runningPID waits for pod to run and returns the pid its helper prints.
func (e *env) runningPID(t *testing.T, pod *corev1.Pod) int {
	t.Helper()
	e.waitPod(t, pod, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	for range 100 {
		if s, ok := strings.CutPrefix(e.logs(t, pod, &corev1.PodLogOptions{}), "pid="); ok {
			pid, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil {
				t.Fatal(err)
			}
			return pid
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("no pid in the log")
	return 0
}

// waitGone waits for the process pid to end, for at most 20 s.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	for range 400 {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("process %d still there after 20 s", pid)
}

// logs returns the log of pod through the API server's pods/log.
func (e *env) logs(t *testing.T, pod *corev1.Pod, opts *corev1.PodLogOptions) string {
	t.Helper()
	data, err := e.client.Pods(pod.Namespace).GetLogs(pod.Name, opts).DoRaw(t.Context())
	if err != nil {
		t.Fatalf("logs of %s/%s: %v", pod.Name, opts.Container, err)
	}
	return string(data)
}
