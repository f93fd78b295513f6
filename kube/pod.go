package kube

import (
	"cmp"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/daggerflow/dagger/exec"
)

// The labels and the annotation of every pod.
const (
	LabelRun         = "dagger.dev/run"
	LabelStep        = "dagger.dev/step"
	LabelTask        = "dagger.dev/task"
	LabelAttempt     = "dagger.dev/attempt"
	AnnotationTaskID = "dagger.dev/task-id"
)

// SpecEnv is the environment variable that holds the TaskSpec, as JSON,
// which `dagger step` reads.
const SpecEnv = exec.SpecEnv

// MaxSpecSize is the largest TaskSpec, in bytes of JSON, that a pod can
// carry: Linux's MAX_ARG_STRLEN, 128 KiB, counts "NAME=value" and its
// terminating NUL.
const MaxSpecSize = 128<<10 - len(SpecEnv+"=") - 1

// ErrSpecTooLarge is the error Pod wraps for a spec of more than
// MaxSpecSize bytes, which must travel through the datastore instead (see
// exec.SaveSpec).
var ErrSpecTooLarge = errors.New("save it in the datastore and give the pod a reference")

// deadlineSlack is what a pod's deadline adds to its step's timeout: the
// time to pull its image and start the runner, which the step's timeout,
// applied by the runner to the task itself, does not count. The deadline
// only matters when neither the runner nor the driver can stop the task.
const deadlineSlack = 10 * time.Minute

// ContainerName is the name of the container that runs the task, whose
// logs are the task's output.
const ContainerName = "step"

// Paths and identity in the pod. runnerPath and runnerUID are those of
// package runnerimage, which kube does not import so as not to link an
// image registry client into whatever uses it.
const (
	runnerPath = "/dagger"
	runnerUID  = 65532
	binDir     = "/dagger-bin" // where a step's own image finds dagger
	scratchDir = "/tmp"
	resultPath = corev1.TerminationMessagePathDefault
	hashLen    = 12 // characters of base32, 60 bits
	maxNameLen = 63 // of a DNS label, and of a label value
)

// Where the step finds the CA certificates of PodOptions.CASecret: the
// Secret is mounted at caDir, and its key is caKey, as cert-manager and
// kubectl name it.
const (
	caDir = "/etc/dagger/ca"
	caKey = "ca.crt"
)

// PodOptions are what Pod takes from the driver rather than from the task.
type PodOptions struct {
	Namespace string
	// Image is the runner image, whose entrypoint is the dagger
	// executable. Steps that name an image of their own run in that
	// image, with dagger copied from this one.
	Image string
	// ServiceAccount runs the steps that name none; its token is not
	// mounted. Empty for the namespace's default.
	ServiceAccount string
	// CredentialsSecret names a Secret each key of which becomes an
	// environment variable of the step, such as AWS_SECRET_ACCESS_KEY for
	// an s3:// datastore. Empty for none.
	CredentialsSecret string
	// CASecret names a Secret whose key ca.crt holds, in PEM, the CA
	// certificates that the step trusts in place of the image's (the
	// runner image has none, and trusts Mozilla's roots built in), such as
	// a private CA that signed the datastore's certificate. Empty for the
	// image's own.
	CASecret string
	// ImagePullSecrets name the Secrets to pull images with.
	ImagePullSecrets []string
	// Labels are added to the pod's own.
	Labels map[string]string
	// NodeSelector is added to the step's node_selector, which wins where
	// both name a label: for a runner image made for one architecture,
	// kubernetes.io/arch.
	NodeSelector map[string]string
	// Retry counts the pods of the same attempt that the platform lost
	// before this one (evicted, deleted, never started): each gets a name
	// of its own. 0 for an attempt's first pod.
	Retry int
}

// Pod returns the pod that runs the attempt of the task that spec
// describes. It fails when spec lacks what names the pod, has a quantity
// that Kubernetes does not read or sets SpecEnv, or is larger than
// MaxSpecSize.
func Pod(spec *exec.TaskSpec, opts PodOptions) (*corev1.Pod, error) {
	switch {
	case spec.RunID == "" || spec.TaskID == "" || spec.Step == "":
		return nil, fmt.Errorf("kube: task spec without a run ID, a task ID or a step (run %q, task %q, step %q)", spec.RunID, spec.TaskID, spec.Step)
	case spec.Attempt < 1:
		return nil, fmt.Errorf("kube: task %s: attempt %d, want 1 or more", spec.TaskID, spec.Attempt)
	case opts.Image == "":
		return nil, errors.New("kube: no runner image given")
	}
	res := &spec.Resources
	image, exe := opts.Image, runnerPath
	if res.Image != "" {
		image, exe = res.Image, binDir+"/dagger"
	}
	container, err := stepContainer(spec, image, exe, &opts)
	if err != nil {
		return nil, fmt.Errorf("kube: task %s: %w", spec.TaskID, err)
	}
	attempt := strconv.Itoa(spec.Attempt)
	labels := maps.Clone(opts.Labels)
	if labels == nil {
		labels = make(map[string]string, 4)
	}
	labels[LabelRun] = LabelValue(spec.RunID)
	labels[LabelStep] = LabelValue(spec.Step)
	labels[LabelTask] = LabelValue(spec.TaskID)
	labels[LabelAttempt] = attempt

	pod := &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        podName(spec.RunID, spec.TaskID, attempt, opts.Retry),
			Namespace:   opts.Namespace,
			Labels:      labels,
			Annotations: map[string]string{AnnotationTaskID: spec.TaskID},
		},
		Spec: corev1.PodSpec{
			RestartPolicy:                corev1.RestartPolicyNever,
			ServiceAccountName:           cmp.Or(res.ServiceAccount, opts.ServiceAccount),
			AutomountServiceAccountToken: new(res.ServiceAccount != ""),
			NodeSelector:                 nodeSelector(opts.NodeSelector, res.NodeSelector),
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   new(true),
				RunAsUser:      new(int64(runnerUID)),
				RunAsGroup:     new(int64(runnerUID)),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{container},
			Volumes:    []corev1.Volume{emptyDir("tmp")},
		},
	}
	if spec.Timeout > 0 {
		d := spec.Timeout + deadlineSlack
		pod.Spec.ActiveDeadlineSeconds = new(int64((d + time.Second - 1) / time.Second))
	}
	if opts.CASecret != "" {
		// Only the key ca.crt, not the others a cert-manager Secret has,
		// such as a private key, which the task has no business reading.
		pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: "ca", VolumeSource: corev1.VolumeSource{
			Secret: &corev1.SecretVolumeSource{
				SecretName: opts.CASecret,
				Items:      []corev1.KeyToPath{{Key: caKey, Path: caKey}},
			},
		}})
	}
	for _, name := range opts.ImagePullSecrets {
		pod.Spec.ImagePullSecrets = append(pod.Spec.ImagePullSecrets, corev1.LocalObjectReference{Name: name})
	}
	if res.Image != "" {
		// The step's image need not hold dagger: an init container copies
		// it there from the runner image.
		c := &pod.Spec.Containers[0]
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "dagger-bin", MountPath: binDir, ReadOnly: true})
		pod.Spec.Volumes = append(pod.Spec.Volumes, emptyDir("dagger-bin"))
		pod.Spec.InitContainers = []corev1.Container{{
			Name:                     "copy-runner",
			Image:                    opts.Image,
			Command:                  []string{runnerPath, "copy-runner", exe},
			VolumeMounts:             []corev1.VolumeMount{{Name: "dagger-bin", MountPath: binDir}},
			TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
			SecurityContext:          containerSecurity(),
		}}
	}
	return pod, nil
}

// nodeSelector returns the labels of both selectors, those of step where
// both have one; nil for none.
func nodeSelector(driver, step map[string]string) map[string]string {
	if len(driver)+len(step) == 0 {
		return nil
	}
	m := maps.Clone(driver)
	if m == nil {
		m = make(map[string]string, len(step))
	}
	maps.Copy(m, step)
	return m
}

// stepContainer returns the container that runs the task of spec with the
// dagger executable exe of image, the datastore's credentials and CA
// certificates coming from the Secrets that opts names.
func stepContainer(spec *exec.TaskSpec, image, exe string, opts *PodOptions) (corev1.Container, error) {
	data, err := json.Marshal(spec)
	if err != nil {
		return corev1.Container{}, fmt.Errorf("encoding the task spec: %w", err)
	}
	if len(data) > MaxSpecSize {
		return corev1.Container{}, fmt.Errorf("the task spec is %d bytes of JSON, more than the %d a pod can carry in its environment: %w", len(data), MaxSpecSize, ErrSpecTooLarge)
	}
	res := &spec.Resources
	if _, ok := res.Env[SpecEnv]; ok {
		return corev1.Container{}, fmt.Errorf("step %s sets env %s, which dagger sets", spec.Step, SpecEnv)
	}
	resources, err := resourceRequirements(res)
	if err != nil {
		return corev1.Container{}, err
	}
	env := map[string]string{"TMPDIR": scratchDir, "HOME": scratchDir}
	if opts.CASecret != "" {
		// Go, OpenSSL and what uses them read the roots there, in
		// place of the system's.
		env["SSL_CERT_FILE"] = caDir + "/" + caKey
	}
	maps.Copy(env, res.Env)
	env[SpecEnv] = string(data)
	var vars []corev1.EnvVar
	for _, name := range slices.Sorted(maps.Keys(env)) {
		// The kubelet expands $(NAME) in values, which would let a param
		// or an env value copy a credential from the Secret into the
		// spec, and turns $$ into $: escaped, every value arrives as
		// written, as with the process executor.
		vars = append(vars, corev1.EnvVar{Name: name, Value: strings.ReplaceAll(env[name], "$", "$$")})
	}
	c := corev1.Container{
		Name:                     ContainerName,
		Image:                    image,
		Command:                  []string{exe, "step", "--result-ref", resultPath},
		Env:                      vars,
		Resources:                resources,
		VolumeMounts:             []corev1.VolumeMount{{Name: "tmp", MountPath: scratchDir}},
		TerminationMessagePath:   resultPath,
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		SecurityContext:          containerSecurity(),
	}
	if opts.CASecret != "" {
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "ca", MountPath: caDir, ReadOnly: true})
	}
	// The step's own Secrets come after the datastore's, whose keys they
	// may then replace: the step asked for them.
	for _, name := range slices.Concat([]string{opts.CredentialsSecret}, res.Secrets) {
		if name != "" {
			c.EnvFrom = append(c.EnvFrom, corev1.EnvFromSource{SecretRef: &corev1.SecretEnvSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: name},
			}})
		}
	}
	return c, nil
}

// resourceRequirements returns the requests and limits that res asks for.
func resourceRequirements(res *exec.Resources) (corev1.ResourceRequirements, error) {
	list := corev1.ResourceList{}
	for _, r := range []struct {
		name corev1.ResourceName
		s    string
	}{{corev1.ResourceCPU, res.CPU}, {corev1.ResourceMemory, res.Memory}} {
		if r.s == "" {
			continue
		}
		q, err := resource.ParseQuantity(r.s)
		if err != nil {
			return corev1.ResourceRequirements{}, fmt.Errorf("%s %q: %w", r.name, r.s, err)
		}
		list[r.name] = q
	}
	var rr corev1.ResourceRequirements
	if len(list) > 0 {
		rr.Requests = list
		rr.Limits = maps.Clone(list)
	}
	if res.GPU > 0 {
		if rr.Limits == nil {
			rr.Limits = corev1.ResourceList{}
		}
		// Extended resources are requested through limits alone: the
		// request defaults to the limit.
		rr.Limits["nvidia.com/gpu"] = *resource.NewQuantity(int64(res.GPU), resource.DecimalSI)
	}
	return rr, nil
}

// containerSecurity returns what every container of a pod needs for the
// restricted Pod Security Standard, with a read-only root file system.
func containerSecurity() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		AllowPrivilegeEscalation: new(false),
		ReadOnlyRootFilesystem:   new(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
}

// emptyDir returns an emptyDir volume.
func emptyDir(name string) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
}

// podName returns the name of the pod of an attempt, as the package
// documentation describes it.
func podName(runID, taskID, attempt string, retry int) string {
	if retry > 0 {
		attempt += "-r" + strconv.Itoa(retry)
	}
	readable := clean(strings.ToLower(runID+"-"+taskID+"-"+attempt), isDNSChar, maxNameLen-1-hashLen)
	return join(readable, hash(runID, taskID, attempt))
}

// LabelValue returns s as Pod puts it in a label: s itself when it is a
// valid label value, else s with the characters a label value cannot hold
// replaced by "-" and cut, followed by a hash of s.
func LabelValue(s string) string {
	if isLabelValue(s) {
		return s
	}
	return join(clean(s, isLabelChar, maxNameLen-1-hashLen), hash(s))
}

// clean returns s with each character that valid rejects replaced by "-",
// runs of "-" made one, cut to at most n bytes and trimmed of what is not
// alphanumeric at both ends.
func clean(s string, valid func(r rune) bool, n int) string {
	var b strings.Builder
	prev := rune(0)
	for _, r := range s {
		if !valid(r) {
			r = '-'
		}
		if r != '-' || prev != '-' {
			b.WriteRune(r)
		}
		prev = r
	}
	out := b.String()
	return strings.TrimFunc(out[:min(len(out), n)], func(r rune) bool { return !isAlnum(r) })
}

// join returns readable and hash joined by "-", or hash alone when there
// is nothing readable.
func join(readable, hash string) string {
	if readable == "" {
		return hash
	}
	return readable + "-" + hash
}

// hash returns a short hash of parts, lowercase alphanumeric.
func hash(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return strings.ToLower(base32.HexEncoding.EncodeToString(sum[:]))[:hashLen]
}

// isLabelValue reports whether s is a valid label value.
func isLabelValue(s string) bool {
	return s == "" || len(s) <= maxNameLen && isAlnum(rune(s[0])) && isAlnum(rune(s[len(s)-1])) &&
		!strings.ContainsFunc(s, func(r rune) bool { return !isLabelChar(r) })
}

func isAlnum(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9'
}

func isDNSChar(r rune) bool { return 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-' }

func isLabelChar(r rune) bool { return isAlnum(r) || r == '-' || r == '_' || r == '.' }
