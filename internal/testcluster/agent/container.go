package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	osexec "os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A launch is what starts a container's process.
type launch struct {
	image    *image
	startErr error    // why it cannot start, if it cannot: it then ends at once
	path     string   // the executable, as the agent passes it to execve
	argv     []string // with argv[0] as the pod gives it
	env      []string
	dir      string // the working folder, as the agent passes it
	cred     *syscall.Credential
}

// A waitError is why a container cannot start yet: its waiting reason,
// such as ErrImagePull, and the error.
type waitError struct {
	reason string
	err    error
}

func (e *waitError) Error() string { return e.err.Error() }
func (e *waitError) Unwrap() error { return e.err }

// The reasons of a container's states, as a kubelet and a runtime give
// them.
const (
	reasonInvalidImageName  = "InvalidImageName"
	reasonErrImagePull      = "ErrImagePull"
	reasonImagePullBackOff  = "ImagePullBackOff"
	reasonConfigError       = "CreateContainerConfigError"
	reasonCreateError       = "CreateContainerError"
	reasonContainerCreating = "ContainerCreating"
	reasonPodInitializing   = "PodInitializing"
	reasonStartError        = "StartError" // with exit code 128
	reasonCompleted         = "Completed"
	reasonError             = "Error"
)

// defaultPath is the PATH of a container whose image sets none, as
// container runtimes give it.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

const (
	maxSymlinks  = 40              // that Linux follows in a path
	drainTimeout = 2 * time.Second // for the output of a process that has exited
)

// prepare pulls c's image, lays it into the pod's root with c's volumes,
// and works out how to start c. Its errors are *waitError.
func (p *podRun) prepare(ctx context.Context, pod *corev1.Pod, c *corev1.Container) (*launch, error) {
	ref, err := parseImage(c.Image)
	if err != nil {
		return nil, &waitError{reasonInvalidImageName, fmt.Errorf("failed to apply default image tag %q: %w", c.Image, err)}
	}
	img, err := p.a.images.pull(ctx, ref)
	if err != nil {
		return nil, &waitError{reasonErrImagePull, fmt.Errorf("failed to pull and unpack image %q: %w", c.Image, err)}
	}
	l := &launch{image: img}
	kubeEnv, err := p.environment(ctx, pod, c)
	if err != nil {
		return nil, &waitError{reasonConfigError, err}
	}
	l.env = mergeEnv(img.config.Env, kubeEnv)
	if l.cred, err = identity(pod, c, img.config.User); err != nil {
		return nil, &waitError{reasonConfigError, err}
	}
	if !p.a.chroot {
		l.cred = nil // only root can take another's identity
	}
	if err := layImage(p.root, img.rootfs, p.a.chroot); err != nil {
		return nil, &waitError{reasonCreateError, fmt.Errorf("laying image %s into the pod's root: %w", img.id, err)}
	}
	if err := p.mountVolumes(ctx, pod, c); err != nil {
		return nil, &waitError{reasonConfigError, err}
	}

	// The runtime's part: the image's entrypoint and command, unless the
	// container has its own, which the kubelet expands.
	lookup := lookupIn(kubeEnv)
	argv := img.config.Entrypoint
	args := img.config.Cmd
	if len(c.Command) > 0 {
		argv = expandAll(c.Command, lookup)
		args = nil
	}
	if len(c.Args) > 0 {
		args = expandAll(c.Args, lookup)
	}
	l.argv = append(slices.Clone(argv), args...)
	if len(l.argv) == 0 {
		return nil, &waitError{reasonCreateError, errors.New("no command given and none in the image")}
	}
	l.dir = cmp.Or(c.WorkingDir, img.config.WorkingDir, "/")
	dirName, err := rootName(l.dir)
	if err != nil {
		return nil, &waitError{reasonCreateError, fmt.Errorf("working folder: %w", err)}
	}
	if err := p.root.MkdirAll(dirName, 0o755); err != nil {
		return nil, &waitError{reasonCreateError, fmt.Errorf("working folder: %w", err)}
	}
	exe, err := p.lookPath(l.argv[0], l.dir, l.env)
	if err != nil {
		l.startErr = err
		return l, nil
	}
	l.path = exe
	if err := p.prepareFiles(pod, c, exe); err != nil {
		return nil, &waitError{reasonCreateError, err}
	}
	if !p.a.chroot {
		l.path = filepath.Join(p.rootDir, exe)
		l.dir = filepath.Join(p.rootDir, l.dir)
	}
	return l, nil
}

// lookPath returns the path of the executable file that name is, from
// the working folder dir, or that it finds in the PATH of env, as a
// container sees it.
func (p *podRun) lookPath(name, dir string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		if !path.IsAbs(name) {
			name = path.Join(dir, name)
		}
		return name, p.isExecutable(name)
	}
	for _, dir := range filepath.SplitList(envValue(env, "PATH")) {
		if !path.IsAbs(dir) {
			continue
		}
		if exe := path.Join(dir, name); p.isExecutable(exe) == nil {
			return exe, nil
		}
	}
	return "", fmt.Errorf("exec: %q: executable file not found in $PATH", name)
}

// isExecutable returns why the container's file exe is not an executable
// file, or nil. Symbolic links are followed as a container sees them:
// absolute ones from its root.
func (p *podRun) isExecutable(exe string) error {
	name, err := p.resolve(exe)
	if err != nil {
		return err
	}
	info, err := p.root.Stat(name)
	if err != nil {
		return err
	}
	if !info.Mode().IsRegular() || info.Mode()&0o111 == 0 {
		return fmt.Errorf("exec: %q: permission denied", exe)
	}
	return nil
}

// resolve returns the name in the root of the container's path name with
// every symbolic link in it followed, absolute ones from the root.
func (p *podRun) resolve(name string) (string, error) {
	var done []string // resolved parts
	todo := strings.Split(strings.Trim(name, "/"), "/")
	for links := 0; len(todo) > 0; {
		part := todo[0]
		todo = todo[1:]
		switch part {
		case "", ".":
			continue
		case "..":
			done = done[:max(0, len(done)-1)]
			continue
		}
		cur := path.Join(append(done, part)...)
		info, err := p.root.Lstat(cur)
		if err != nil {
			return "", err
		}
		if info.Mode()&fs.ModeSymlink == 0 {
			done = append(done, part)
			continue
		}
		if links++; links > maxSymlinks {
			return "", fmt.Errorf("%s: too many symbolic links", name)
		}
		target, err := p.root.Readlink(cur)
		if err != nil {
			return "", err
		}
		if path.IsAbs(target) {
			done = nil
		}
		todo = append(strings.Split(strings.Trim(target, "/"), "/"), todo...)
	}
	return path.Join(append([]string{"."}, done...)...), nil
}

// environment returns the variables that a kubelet gives c, in order:
// those of its envFrom sources, then its env, which replace them, each
// value with $(NAME) expanded from those before.
func (p *podRun) environment(ctx context.Context, pod *corev1.Pod, c *corev1.Container) ([][2]string, error) {
	var env [][2]string
	index := make(map[string]int)
	set := func(name, value string) {
		if i, ok := index[name]; ok {
			env[i][1] = value
			return
		}
		index[name] = len(env)
		env = append(env, [2]string{name, value})
	}
	for _, from := range c.EnvFrom {
		var data map[string][]byte
		switch {
		case from.SecretRef != nil:
			s, err := p.a.client.Secrets(pod.Namespace).Get(ctx, from.SecretRef.Name, metav1.GetOptions{})
			if err != nil {
				if isOptionalMissing(err, from.SecretRef.Optional) {
					continue
				}
				return nil, err
			}
			data = s.Data
		case from.ConfigMapRef != nil:
			cm, err := p.a.client.ConfigMaps(pod.Namespace).Get(ctx, from.ConfigMapRef.Name, metav1.GetOptions{})
			if err != nil {
				if isOptionalMissing(err, from.ConfigMapRef.Optional) {
					continue
				}
				return nil, err
			}
			data = make(map[string][]byte, len(cm.Data))
			for k, v := range cm.Data {
				data[k] = []byte(v)
			}
		}
		for _, k := range slices.Sorted(maps.Keys(data)) {
			set(from.Prefix+k, string(data[k]))
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			set(e.Name, expand(e.Value, lookupIn(env)))
			continue
		}
		v, ok, err := p.valueFrom(ctx, pod, e.ValueFrom)
		if err != nil {
			return nil, fmt.Errorf("env %s: %w", e.Name, err)
		}
		if ok {
			set(e.Name, v)
		}
	}
	return env, nil
}

// valueFrom returns the value of an env var that src gives, and whether
// there is one: an optional key that is missing gives none.
func (p *podRun) valueFrom(ctx context.Context, pod *corev1.Pod, src *corev1.EnvVarSource) (string, bool, error) {
	switch {
	case src.SecretKeyRef != nil:
		ref := src.SecretKeyRef
		s, err := p.a.client.Secrets(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			if isOptionalMissing(err, ref.Optional) {
				return "", false, nil
			}
			return "", false, err
		}
		v, ok := s.Data[ref.Key]
		if !ok && (ref.Optional == nil || !*ref.Optional) {
			return "", false, fmt.Errorf("couldn't find key %s in Secret %s/%s", ref.Key, pod.Namespace, ref.Name)
		}
		return string(v), ok, nil
	case src.ConfigMapKeyRef != nil:
		ref := src.ConfigMapKeyRef
		cm, err := p.a.client.ConfigMaps(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			if isOptionalMissing(err, ref.Optional) {
				return "", false, nil
			}
			return "", false, err
		}
		v, ok := cm.Data[ref.Key]
		if !ok && (ref.Optional == nil || !*ref.Optional) {
			return "", false, fmt.Errorf("couldn't find key %s in ConfigMap %s/%s", ref.Key, pod.Namespace, ref.Name)
		}
		return v, ok, nil
	case src.FieldRef != nil:
		switch f := src.FieldRef.FieldPath; f {
		case "metadata.name":
			return pod.Name, true, nil
		case "metadata.namespace":
			return pod.Namespace, true, nil
		case "metadata.uid":
			return string(pod.UID), true, nil
		case "spec.nodeName":
			return pod.Spec.NodeName, true, nil
		case "spec.serviceAccountName":
			return pod.Spec.ServiceAccountName, true, nil
		case "status.hostIP", "status.podIP":
			return podIP, true, nil
		default:
			return "", false, fmt.Errorf("the test agent does not support fieldRef %s", f)
		}
	}
	return "", false, errors.New("the test agent supports only secretKeyRef, configMapKeyRef and fieldRef")
}

// isOptionalMissing reports whether err is the absence of an object that
// is optional.
func isOptionalMissing(err error, optional *bool) bool {
	return apierrors.IsNotFound(err) && optional != nil && *optional
}

// lookupIn returns a function that finds a variable in env.
func lookupIn(env [][2]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		for _, kv := range slices.Backward(env) {
			if kv[0] == name {
				return kv[1], true
			}
		}
		return "", false
	}
}

// expand returns s with $(NAME) replaced by the value of NAME that lookup
// gives, or left as it is if there is none, and $$ replaced by $, as the
// kubelet expands env values, commands and args.
func expand(s string, lookup func(string) (string, bool)) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '$')
		if i < 0 || i+1 == len(s) {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		switch rest := s[i+1:]; rest[0] {
		case '$':
			b.WriteByte('$')
			s = rest[1:]
		case '(':
			end := strings.IndexByte(rest, ')')
			if end < 0 {
				// An unterminated reference stays as it is.
				b.WriteString("$(")
				s = rest[1:]
				continue
			}
			name := rest[1:end]
			if v, ok := lookup(name); ok {
				b.WriteString(v)
			} else {
				b.WriteString("$(" + name + ")")
			}
			s = rest[end+1:]
		default:
			b.WriteByte('$')
			s = rest
		}
	}
}

func expandAll(ss []string, lookup func(string) (string, bool)) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = expand(s, lookup)
	}
	return out
}

// mergeEnv returns the environment of a process: the image's, then the
// kubelet's, which replaces it, with a default PATH if neither has one,
// as container runtimes give.
func mergeEnv(image []string, kube [][2]string) []string {
	var env []string
	index := make(map[string]int)
	set := func(name, value string) {
		if i, ok := index[name]; ok {
			env[i] = name + "=" + value
			return
		}
		index[name] = len(env)
		env = append(env, name+"="+value)
	}
	for _, kv := range image {
		name, value, _ := strings.Cut(kv, "=")
		set(name, value)
	}
	for _, kv := range kube {
		set(kv[0], kv[1])
	}
	if _, ok := index["PATH"]; !ok {
		env = append(env, "PATH="+defaultPath)
	}
	return env
}

// envValue returns the value of name in env, a list of NAME=value.
func envValue(env []string, name string) string {
	for _, kv := range slices.Backward(env) {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	return ""
}

// identity returns the user and groups c runs as: those of its security
// context, else of its pod's, else of the image's user, which must then
// be numeric (images have no passwd file here). It refuses root under
// runAsNonRoot, as a kubelet does.
func identity(pod *corev1.Pod, c *corev1.Container, imageUser string) (*syscall.Credential, error) {
	var uid, gid *int64
	var nonRoot *bool
	var groups []uint32
	if sc := pod.Spec.SecurityContext; sc != nil {
		uid, gid, nonRoot = sc.RunAsUser, sc.RunAsGroup, sc.RunAsNonRoot
		for _, g := range sc.SupplementalGroups {
			groups = append(groups, uint32(g))
		}
		if sc.FSGroup != nil {
			groups = append(groups, uint32(*sc.FSGroup))
		}
	}
	if sc := c.SecurityContext; sc != nil {
		uid = cmp.Or(sc.RunAsUser, uid)
		gid = cmp.Or(sc.RunAsGroup, gid)
		nonRoot = cmp.Or(sc.RunAsNonRoot, nonRoot)
	}
	user, group, _ := strings.Cut(imageUser, ":")
	if uid == nil && user != "" {
		n, err := strconv.ParseInt(user, 10, 64)
		if err != nil {
			if nonRoot != nil && *nonRoot {
				return nil, fmt.Errorf("container has runAsNonRoot and image has non-numeric user (%s), cannot verify user is non-root (pod: %s/%s, container: %s)", user, pod.Namespace, pod.Name, c.Name)
			}
			return nil, fmt.Errorf("image user %q: the test agent supports only numeric users", imageUser)
		}
		uid = &n
	}
	if gid == nil && group != "" {
		n, err := strconv.ParseInt(group, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("image user %q: the test agent supports only numeric groups", imageUser)
		}
		gid = &n
	}
	cred := &syscall.Credential{Groups: groups}
	if uid != nil {
		cred.Uid = uint32(*uid)
	}
	if gid != nil {
		cred.Gid = uint32(*gid)
	}
	if nonRoot != nil && *nonRoot && cred.Uid == 0 {
		return nil, fmt.Errorf("container has runAsNonRoot and image will run as root (pod: %s/%s, container: %s)", pod.Namespace, pod.Name, c.Name)
	}
	return cred, nil
}

// A process is a container's running process, in a process group of its
// own.
type process struct {
	pid       int
	log       *logFile
	startedAt time.Time
	done      chan struct{} // closed when it has exited and its output is in

	// Set before done is closed.
	exitCode   int32
	finishedAt time.Time
}

// startProcess starts the process of l, its output going to log.
func (p *podRun) startProcess(l *launch, log *logFile) (*process, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	attr := &syscall.SysProcAttr{
		Setpgid:    true,            // so that stopping it stops what it started
		Pdeathsig:  syscall.SIGKILL, // never outlive the agent
		Credential: l.cred,
	}
	if p.a.chroot {
		attr.Chroot = p.rootDir
	}
	cmd := &osexec.Cmd{
		Path:        l.path,
		Args:        l.argv,
		Env:         l.env,
		Dir:         l.dir,
		Stdout:      w,
		Stderr:      w,
		SysProcAttr: attr,
	}
	err = cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		return nil, err
	}
	pr := &process{pid: cmd.Process.Pid, log: log, startedAt: time.Now(), done: make(chan struct{})}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		io.Copy(log, r)
	}()
	go func() {
		cmd.Wait()
		pr.finishedAt = time.Now()
		ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
		pr.exitCode = int32(ws.ExitStatus())
		if ws.Signaled() {
			pr.exitCode = 128 + int32(ws.Signal())
		}
		// A container ends with its first process: what it leaves
		// behind goes too, and its output with it, unless something
		// escaped the group with the pipe.
		syscall.Kill(-pr.pid, syscall.SIGKILL)
		select {
		case <-copied:
		case <-time.After(drainTimeout):
		}
		r.Close()
		<-copied
		log.finish()
		close(pr.done)
	}()
	return pr, nil
}

// stop stops the process: SIGTERM to its group, then SIGKILL after grace
// if it is still there, and waits for its end.
func (pr *process) stop(grace time.Duration) {
	if grace > 0 {
		select {
		case <-pr.done:
			return
		default:
		}
		syscall.Kill(-pr.pid, syscall.SIGTERM)
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-pr.done:
			return
		case <-t.C:
		}
	}
	select {
	case <-pr.done:
	default:
		syscall.Kill(-pr.pid, syscall.SIGKILL)
		<-pr.done
	}
}
