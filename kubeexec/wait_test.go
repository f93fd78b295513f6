package kubeexec

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/daggerflow/dagger/exec"
	"github.com/daggerflow/dagger/kube"
)

// TestWaitReason checks what the driver says of pending pods, from the
// conditions and container states a scheduler and a kubelet report.
func TestWaitReason(t *testing.T) {
	waiting := func(reason, msg string) corev1.PodStatus {
		return corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{
			Name: kube.ContainerName, Image: "registry.example.com/dagger:abc",
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}},
		}}}
	}
	for _, tc := range []struct {
		name   string
		status corev1.PodStatus
		want   wait
	}{
		{"just created", corev1.PodStatus{}, wait{}},
		{"unschedulable", corev1.PodStatus{Conditions: []corev1.PodCondition{{
			Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable,
			Message: "0/3 nodes are available: 3 Insufficient memory.\npreemption: 0/3 nodes are available",
		}}}, wait{text: "unschedulable: 0/3 nodes are available: 3 Insufficient memory. preemption: 0/3 nodes are available", unschedulable: true}},
		{"scheduled", corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}}}, wait{}},
		{"creating", waiting("ContainerCreating", ""), wait{}},
		{"pull error", waiting("ErrImagePull", "manifest unknown"),
			wait{text: "image registry.example.com/dagger:abc: ErrImagePull: manifest unknown", pull: true}},
		{"pull back-off", waiting("ImagePullBackOff", "Back-off pulling image"),
			wait{text: "image registry.example.com/dagger:abc: ImagePullBackOff: Back-off pulling image", pull: true}},
		{"invalid name", waiting("InvalidImageName", "couldn't parse image name"),
			wait{text: "image registry.example.com/dagger:abc: InvalidImageName: couldn't parse image name", fatal: true}},
		{"missing secret", waiting("CreateContainerConfigError", `secret "creds" not found`),
			wait{text: `CreateContainerConfigError: secret "creds" not found`, pull: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := waitReason(&corev1.Pod{Status: tc.status})
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(wait{})); diff != "" {
				t.Errorf("waitReason (-want +got):\n%s", diff)
			}
		})
	}
}

// TestAdoptable checks which pods of an earlier run a task takes over:
// only those that run its very spec, and have not failed.
func TestAdoptable(t *testing.T) {
	spec := &exec.TaskSpec{RunID: "new", Code: "sha256:c", Datastore: "s3://b/r", Step: "square", TaskID: "square.3", Attempt: 1, Index: []int{3},
		Params: map[string]string{"price": "$5"}}
	pod := func(name string, mutate func(*exec.TaskSpec), phase corev1.PodPhase) *corev1.Pod {
		s := *spec
		s.RunID, s.Attempt = "old", 2
		if mutate != nil {
			mutate(&s)
		}
		p, err := kube.Pod(&s, kube.PodOptions{Image: "runner"})
		if err != nil {
			t.Fatal(err)
		}
		p.Name, p.Status.Phase = name, phase
		return p
	}
	for _, tc := range []struct {
		name string
		pods []*corev1.Pod
		want string
	}{
		{"none", nil, ""},
		{"running", []*corev1.Pod{pod("a", nil, corev1.PodRunning)}, "a"},
		{"succeeded", []*corev1.Pod{pod("a", nil, corev1.PodSucceeded)}, "a"},
		{"failed", []*corev1.Pod{pod("a", nil, corev1.PodFailed)}, ""},
		{"other code", []*corev1.Pod{pod("a", func(s *exec.TaskSpec) { s.Code = "sha256:d" }, corev1.PodRunning)}, ""},
		{"other task", []*corev1.Pod{pod("a", func(s *exec.TaskSpec) { s.TaskID = "square.4" }, corev1.PodRunning)}, ""},
		{"this run", []*corev1.Pod{pod("a", func(s *exec.TaskSpec) { s.RunID = "new" }, corev1.PodRunning)}, ""},
		{"deleting", []*corev1.Pod{func() *corev1.Pod {
			p := pod("a", nil, corev1.PodRunning)
			p.DeletionTimestamp = &metav1.Time{}
			return p
		}()}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &watcher{seen: make(map[string]*corev1.Pod)}
			for _, p := range tc.pods {
				w.seen[p.Name] = p
			}
			e := &Executor{cfg: Config{Adopt: []string{"old"}}}
			got := ""
			if p := e.adoptable(w, spec); p != nil {
				got = p.Name
			}
			if got != tc.want {
				t.Errorf("adopted %q, want %q", got, tc.want)
			}
		})
	}
}
