package kubeexec

import (
	"context"
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
			wait{text: `CreateContainerConfigError: secret "creds" not found`, config: true}},
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
	failed := func(name string) *corev1.Pod {
		p := pod(name, nil, corev1.PodSucceeded)
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: kube.ContainerName, State: corev1.ContainerState{
			Terminated: &corev1.ContainerStateTerminated{Message: `{"result":"sha256:r","ok":false,"error":"boom"}`},
		}}}
		return p
	}
	for _, tc := range []struct {
		name    string
		pods    []*corev1.Pod
		want    string
		deleted []string
	}{
		{"none", nil, "", nil},
		{"running", []*corev1.Pod{pod("a", nil, corev1.PodRunning)}, "a", nil},
		{"succeeded", []*corev1.Pod{pod("a", nil, corev1.PodSucceeded)}, "a", nil},
		{"running first", []*corev1.Pod{pod("a", nil, corev1.PodSucceeded), pod("b", nil, corev1.PodRunning)}, "b", nil},
		{"failed", []*corev1.Pod{pod("a", nil, corev1.PodFailed)}, "", nil},
		{"failed task", []*corev1.Pod{failed("a")}, "", nil},
		{"other code", []*corev1.Pod{pod("a", func(s *exec.TaskSpec) { s.Code = "sha256:d" }, corev1.PodRunning)}, "", []string{"a"}},
		{"other task", []*corev1.Pod{pod("a", func(s *exec.TaskSpec) { s.TaskID = "square.4" }, corev1.PodRunning)}, "", nil},
		{"this run", []*corev1.Pod{pod("a", func(s *exec.TaskSpec) { s.RunID = "new" }, corev1.PodRunning)}, "", nil},
		{"deleting", []*corev1.Pod{func() *corev1.Pod {
			p := pod("a", nil, corev1.PodRunning)
			p.DeletionTimestamp = &metav1.Time{}
			return p
		}()}, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &watcher{seen: make(map[string]*corev1.Pod)}
			for _, p := range tc.pods {
				w.seen[p.Name] = p
			}
			pods := &deletions{}
			e, err := New(Config{Pods: pods, Pod: kube.PodOptions{Image: "runner"}, Adopt: []string{"old"}})
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if p := e.adoptable(t.Context(), w, nil, spec); p != nil {
				got = p.Name
			}
			if got != tc.want {
				t.Errorf("adopted %q, want %q", got, tc.want)
			}
			if diff := cmp.Diff(tc.deleted, pods.names); diff != "" {
				t.Errorf("deleted pods (-want +got):\n%s", diff)
			}
			if got != "" {
				if again := e.adoptable(t.Context(), w, nil, spec); again != nil {
					t.Errorf("pod %s adopted twice", again.Name)
				}
			}
		})
	}
}

// deletions records the pods deleted, and has no other method: adoptable
// needs no other.
type deletions struct {
	Pods
	names []string
}

func (d *deletions) Delete(_ context.Context, name string, _ metav1.DeleteOptions) error {
	d.names = append(d.names, name)
	return nil
}

// TestResult checks the errors of tasks whose runner ended without a
// result, as a kubelet reports their container.
func TestResult(t *testing.T) {
	spec := &exec.TaskSpec{Step: "train", TaskID: "train", Resources: exec.Resources{Memory: "2Gi"}}
	for _, tc := range []struct {
		name string
		term corev1.ContainerStateTerminated
		want string // the task's error; "" for an error of Execute
	}{
		{"exit code", corev1.ContainerStateTerminated{ExitCode: 3, Reason: "Error", Message: "starting\nthis is no dagger\n"},
			"pod p: the runner exited with code 3: this is no dagger"},
		{"no output", corev1.ContainerStateTerminated{ExitCode: 137, Reason: "Error"},
			"pod p: the runner exited with code 137: Error"},
		{"out of memory", corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled"},
			"out of memory: pod p was killed at its memory limit, 2Gi (OOMKilled)"},
		{"a log line like a reference", corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error", Message: "{not json"},
			"pod p: the runner exited with code 1: {not json"},
		{"no result", corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			task := &task{spec: spec, name: "p"}
			res, err := task.result(t.Context(), &tc.term)
			switch {
			case tc.want == "" && err == nil:
				t.Errorf("result %+v, want an error", res)
			case tc.want != "" && err != nil:
				t.Errorf("error %v, want a result", err)
			case tc.want != "" && (res.OK || res.Error != tc.want):
				t.Errorf("result %+v, want the error %q", res, tc.want)
			}
		})
	}
}
