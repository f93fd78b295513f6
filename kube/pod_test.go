package kube

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/daggerflow/dagger/exec"
	"github.com/daggerflow/dagger/runnerimage"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const longStep = "transform_every_record_of_the_customer_database_into_parquet_files"

var testOpts = PodOptions{
	Namespace:         "flows",
	Image:             "registry.example/dagger:sha256-0123456789abcdef",
	ServiceAccount:    "dagger-task",
	CredentialsSecret: "datastore-credentials",
	ImagePullSecrets:  []string{"registry"},
	Labels:            map[string]string{"team": "data", LabelRun: "not this"},
}

// task returns the spec of an attempt of a task of step at index, with
// what every task has.
func task(step string, index []int, attempt int) *exec.TaskSpec {
	return &exec.TaskSpec{
		RunID:     "1m89nzs2917d",
		Code:      "sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03",
		Datastore: "s3://flows/datastore",
		Params:    map[string]string{"day": "2026-12-01"},
		Step:      step,
		TaskID:    taskID(step, index),
		Attempt:   attempt,
		Index:     index,
	}
}

func taskID(step string, index []int) string {
	id := step
	for _, i := range index {
		id += fmt.Sprintf(".%d", i)
	}
	return id
}

// podCase is a task whose pod, made with opts, the tests check.
type podCase struct {
	name string
	spec *exec.TaskSpec
	opts PodOptions
}

// podCases returns the tasks whose pods have golden files: a plain one,
// one deep in foreach fan-outs, one with every resource, one whose step
// has an image of its own, and one that trusts a CA of its Secret.
func podCases() []podCase {
	foreach := task(longStep, []int{12, 3, 999, 4, 0, 7, 5, 5, 5, 5}, 3)
	foreach.Input = "sha256:00d5f3e4c2a1b0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5"
	everything := task("train", nil, 1)
	everything.Timeout = 90*time.Second + time.Millisecond
	// The kubelet would expand $(NAME) and turn $$ into $.
	everything.Params = map[string]string{"note": "costs $$5 $(AWS_SECRET_ACCESS_KEY)"}
	everything.Resources = exec.Resources{
		CPU:            "1500m",
		Memory:         "2Gi",
		GPU:            2,
		Env:            map[string]string{"MODEL": "small", "HOME": "/tmp/home", "A_FIRST": "1", "PRICE": "$5 $(AWS_SECRET_ACCESS_KEY)"},
		NodeSelector:   map[string]string{"cloud.google.com/gke-accelerator": "nvidia-l4"},
		ServiceAccount: "trainer",
		Secrets:        []string{"hf-token", "db-creds"},
	}
	ownImage := task("render", []int{2}, 2)
	ownImage.Resources = exec.Resources{Image: "python:3.13-slim", Memory: "512Mi"}
	withCA := testOpts
	withCA.CASecret = "dagger-ca"
	// The step's selector wins where both name a label.
	withArch := testOpts
	withArch.NodeSelector = map[string]string{"kubernetes.io/arch": "arm64", "cloud.google.com/gke-accelerator": "none"}
	return []podCase{
		{"plain", task("start", nil, 1), testOpts},
		{"foreach", foreach, testOpts},
		{"resources", everything, withArch},
		{"own-image", ownImage, testOpts},
		{"ca-secret", task("start", nil, 1), withCA},
	}
}

func TestPod(t *testing.T) {
	for _, tc := range podCases() {
		t.Run(tc.name, func(t *testing.T) {
			pod, err := Pod(tc.spec, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			again, err := Pod(tc.spec, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(pod, again); diff != "" {
				t.Errorf("a second call gave another pod (-first +second):\n%s", diff)
			}
			checkRestricted(t, pod, tc.spec)
			checkIdentity(t, pod, tc.spec)
			got, err := json.MarshalIndent(pod, "", "\t")
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", tc.name+".json")
			if *update {
				if err := os.WriteFile(golden, append(got, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), string(got)+"\n"); diff != "" {
				t.Errorf("pod differs from %s (-want +got):\n%s", golden, diff)
			}
		})
	}
}

// checkIdentity checks that pod's name, labels and annotations are valid
// and say which attempt of which task of spec it runs.
func checkIdentity(t *testing.T, pod *corev1.Pod, spec *exec.TaskSpec) {
	t.Helper()
	for _, msg := range validation.IsDNS1123Label(pod.Name) {
		t.Errorf("name %q: %s", pod.Name, msg)
	}
	for key, value := range pod.Labels {
		for _, msg := range validation.IsValidLabelValue(value) {
			t.Errorf("label %s=%q: %s", key, value, msg)
		}
	}
	want := map[string]string{
		LabelRun:     spec.RunID,
		LabelStep:    LabelValue(spec.Step),
		LabelTask:    LabelValue(spec.TaskID),
		LabelAttempt: fmt.Sprint(spec.Attempt),
	}
	for key, value := range want {
		if pod.Labels[key] != value {
			t.Errorf("label %s = %q, want %q", key, pod.Labels[key], value)
		}
	}
	if got := pod.Annotations[AnnotationTaskID]; got != spec.TaskID {
		t.Errorf("annotation %s = %q, want %q", AnnotationTaskID, got, spec.TaskID)
	}
}

// checkRestricted checks that pod, which runs spec, meets the restricted
// Pod Security Standard and the rules dagger adds to it, one by one.
func checkRestricted(t *testing.T, pod *corev1.Pod, spec *exec.TaskSpec) {
	t.Helper()
	ps := pod.Spec.SecurityContext
	containers := slices.Concat(pod.Spec.InitContainers, pod.Spec.Containers)
	// each returns an error for the first container that check rejects.
	each := func(check func(c *corev1.Container, sc *corev1.SecurityContext) error) error {
		for _, c := range containers {
			sc := c.SecurityContext
			if sc == nil {
				sc = &corev1.SecurityContext{}
			}
			if err := check(&c, sc); err != nil {
				return fmt.Errorf("container %s: %w", c.Name, err)
			}
		}
		return nil
	}
	rules := []struct {
		name  string
		check func() error
	}{
		{"no host namespaces or privileged containers", func() error {
			if pod.Spec.HostNetwork || pod.Spec.HostPID || pod.Spec.HostIPC {
				return fmt.Errorf("host namespaces")
			}
			return each(func(c *corev1.Container, sc *corev1.SecurityContext) error {
				if sc.Privileged != nil && *sc.Privileged {
					return fmt.Errorf("privileged")
				}
				return nil
			})
		}},
		{"volumes of restricted types only", func() error {
			for _, v := range pod.Spec.Volumes {
				if v.EmptyDir == nil && v.Secret == nil {
					return fmt.Errorf("volume %s is neither an emptyDir nor a secret", v.Name)
				}
			}
			return nil
		}},
		{"runAsNonRoot", func() error {
			if ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot {
				return fmt.Errorf("pod runAsNonRoot is not true")
			}
			return each(func(c *corev1.Container, sc *corev1.SecurityContext) error {
				if sc.RunAsNonRoot != nil && !*sc.RunAsNonRoot {
					return fmt.Errorf("runAsNonRoot false")
				}
				return nil
			})
		}},
		{"runAsUser and runAsGroup 65532", func() error {
			if ps.RunAsUser == nil || *ps.RunAsUser != 65532 || ps.RunAsGroup == nil || *ps.RunAsGroup != 65532 {
				return fmt.Errorf("pod runs as %v:%v", ps.RunAsUser, ps.RunAsGroup)
			}
			return each(func(c *corev1.Container, sc *corev1.SecurityContext) error {
				if sc.RunAsUser != nil || sc.RunAsGroup != nil {
					return fmt.Errorf("user or group of its own")
				}
				return nil
			})
		}},
		{"allowPrivilegeEscalation false", func() error {
			return each(func(c *corev1.Container, sc *corev1.SecurityContext) error {
				if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
					return fmt.Errorf("allowPrivilegeEscalation is not false")
				}
				return nil
			})
		}},
		{"capabilities drop ALL", func() error {
			return each(func(c *corev1.Container, sc *corev1.SecurityContext) error {
				if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
					return fmt.Errorf("capabilities %+v", sc.Capabilities)
				}
				return nil
			})
		}},
		{"seccompProfile RuntimeDefault", func() error {
			if ps.SeccompProfile == nil || ps.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				return fmt.Errorf("pod seccomp profile %+v", ps.SeccompProfile)
			}
			return each(func(c *corev1.Container, sc *corev1.SecurityContext) error {
				if sc.SeccompProfile != nil {
					return fmt.Errorf("seccomp profile of its own")
				}
				return nil
			})
		}},
		{"readOnlyRootFilesystem", func() error {
			return each(func(c *corev1.Container, sc *corev1.SecurityContext) error {
				if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
					return fmt.Errorf("root file system is writable")
				}
				return nil
			})
		}},
		{"TMPDIR on an emptyDir", func() error {
			c := pod.Spec.Containers[0]
			i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "TMPDIR" })
			if i < 0 {
				return fmt.Errorf("no TMPDIR")
			}
			for _, m := range c.VolumeMounts {
				if m.MountPath == c.Env[i].Value && !m.ReadOnly {
					return nil
				}
			}
			return fmt.Errorf("TMPDIR %s is not a writable mount", c.Env[i].Value)
		}},
		{"service account token only when named", func() error {
			a := pod.Spec.AutomountServiceAccountToken
			if a == nil || *a != (spec.Resources.ServiceAccount != "") {
				return fmt.Errorf("automountServiceAccountToken %v with step service account %q", a, spec.Resources.ServiceAccount)
			}
			return nil
		}},
	}
	for _, r := range rules {
		if err := r.check(); err != nil {
			t.Errorf("restricted: %s: %v", r.name, err)
		}
	}
}

// TestPodNames checks that every attempt of every task gets a pod name of
// its own, valid, and the same on every call.
func TestPodNames(t *testing.T) {
	seen := make(map[string]string)
	for _, step := range []string{"start", "Start", "a_b", "a", longStep, longStep + "_2", "_private"} {
		for _, index := range [][]int{nil, {0}, {1, 2}, {12}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}} {
			for attempt := 1; attempt <= 3; attempt++ {
				for retry := range 3 {
					spec := task(step, index, attempt)
					opts := testOpts
					opts.Retry = retry
					pod, err := Pod(spec, opts)
					if err != nil {
						t.Fatal(err)
					}
					checkIdentity(t, pod, spec)
					id := fmt.Sprintf("%s attempt %d retry %d", spec.TaskID, attempt, retry)
					if other, ok := seen[pod.Name]; ok {
						t.Errorf("%s and %s both have pod %s", other, id, pod.Name)
					}
					seen[pod.Name] = id
					if again := podName(spec.RunID, spec.TaskID, fmt.Sprint(attempt), retry); again != pod.Name {
						t.Errorf("%s: pod %s, then %s", id, pod.Name, again)
					}
				}
			}
		}
	}
}

func TestLabelValue(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"square.3", "square.3"},
		{"Start_1", "Start_1"},
		{"_private", "private-7jjc4ibggfhe"},
		{"a_", "a-asfr1oob9nck"},
		{strings.Repeat("x", 63), strings.Repeat("x", 63)},
		{strings.Repeat("x", 64), strings.Repeat("x", 50) + "-fjgg15ovcjjg"},
	} {
		if got := LabelValue(tc.in); got != tc.want {
			t.Errorf("LabelValue(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestPodErrors(t *testing.T) {
	// fill returns a spec whose JSON is n bytes long.
	fill := func(n int) *exec.TaskSpec {
		spec := task("start", nil, 1)
		spec.Params["fill"] = ""
		data, err := json.Marshal(spec)
		if err != nil {
			t.Fatal(err)
		}
		spec.Params["fill"] = strings.Repeat("x", n-len(data))
		return spec
	}
	if _, err := Pod(fill(MaxSpecSize), testOpts); err != nil {
		t.Errorf("spec of MaxSpecSize bytes: %v", err)
	}
	badCPU := task("start", nil, 1)
	badCPU.Resources.CPU = "lots"
	specEnv := task("start", nil, 1)
	specEnv.Resources.Env = map[string]string{SpecEnv: "{}"}
	noImage := testOpts
	noImage.Image = ""
	for _, tc := range []struct {
		name string
		spec *exec.TaskSpec
		opts PodOptions
		want string
	}{
		{"too large", fill(MaxSpecSize + 1), testOpts, fmt.Sprintf("kube: task start: the task spec is %d bytes of JSON, more than the %d a pod can carry in its environment: save it in the datastore and give the pod a reference", MaxSpecSize+1, MaxSpecSize)},
		{"no run", &exec.TaskSpec{Step: "start", TaskID: "start", Attempt: 1}, testOpts, `kube: task spec without a run ID, a task ID or a step (run "", task "start", step "start")`},
		{"attempt 0", task("start", nil, 0), testOpts, "kube: task start: attempt 0, want 1 or more"},
		{"no image", task("start", nil, 1), noImage, "kube: no runner image given"},
		{"bad cpu", badCPU, testOpts, `kube: task start: cpu "lots": quantities must match the regular expression`},
		{"spec env", specEnv, testOpts, "kube: task start: step start sets env DAGGER_TASK_SPEC, which dagger sets"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod, err := Pod(tc.spec, tc.opts)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("Pod: %v, %v; want the error %q", pod, err, tc.want)
			}
		})
	}
}

// TestRunnerImage checks that pods agree with the images of package
// runnerimage, which kube does not import.
func TestRunnerImage(t *testing.T) {
	if runnerPath != runnerimage.Path || runnerUID != runnerimage.UID {
		t.Errorf("kube runs %s as %d, runnerimage has %s as %d", runnerPath, runnerUID, runnerimage.Path, runnerimage.UID)
	}
}

// TestEnvEscaped checks that what the kubelet makes of the pod's
// environment values is what was written: it turns $$ into $ and expands
// $(NAME), which must never happen to a param or a step's env.
func TestEnvEscaped(t *testing.T) {
	spec := task("train", nil, 1)
	spec.Params = map[string]string{"note": "costs $$5 $(AWS_SECRET_ACCESS_KEY)"}
	spec.Resources.Env = map[string]string{"PRICE": "$5 $(HOME)"}
	pod, err := Pod(spec, testOpts)
	if err != nil {
		t.Fatal(err)
	}
	got := make(map[string]string)
	for _, v := range pod.Spec.Containers[0].Env {
		if strings.Contains(strings.ReplaceAll(v.Value, "$$", ""), "$") {
			t.Errorf("env %s = %q has a $ the kubelet would expand", v.Name, v.Value)
		}
		got[v.Name] = strings.ReplaceAll(v.Value, "$$", "$")
	}
	var back exec.TaskSpec
	if err := json.Unmarshal([]byte(got[SpecEnv]), &back); err != nil {
		t.Fatal(err)
	}
	if back.Params["note"] != spec.Params["note"] || got["PRICE"] != "$5 $(HOME)" {
		t.Errorf("the kubelet would give the task params %v and PRICE %q", back.Params, got["PRICE"])
	}
}
