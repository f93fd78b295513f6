package kubeexec

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/daggerflow/dagger/datastore"
	"github.com/daggerflow/dagger/exec"
	"github.com/daggerflow/dagger/kube"
	"github.com/daggerflow/dagger/store"
)

// Config says where and how an Executor runs pods.
type Config struct {
	// Pods is the client of the pods of the namespace the tasks run in,
	// that of Pod.Namespace.
	Pods Pods
	// Pod says what kube.Pod takes from the driver: the runner image
	// above all.
	Pod kube.PodOptions
	// Adopt are runs whose pods the executor takes over rather than start
	// a task again: for a run that resumes one whose driver was stopped,
	// its origin, whose pods may still be running or may have finished
	// unseen. A pod is adopted only by a task whose spec is the pod's own
	// but for the run ID and attempt.
	Adopt []string
	// KeepFailedPods keeps the pods of failed tasks, for kubectl to
	// inspect; they are deleted otherwise, as are those of tasks that
	// succeeded.
	KeepFailedPods bool
	// PullTimeout is how long a pod's image may fail to pull before its
	// task fails; 0 means DefaultPullTimeout.
	PullTimeout time.Duration
	// ScheduleTimeout is how long a pod may stay unschedulable before its
	// task fails; 0 means DefaultScheduleTimeout.
	ScheduleTimeout time.Duration
	// PlatformRetries is how many more pods a task attempt gets when the
	// platform loses its pod (evicted, deleted by someone else, failed
	// before its container ran); 0 means DefaultPlatformRetries, a
	// negative number none.
	PlatformRetries int
}

// Defaults of Config.
const (
	DefaultPullTimeout     = 2 * time.Minute
	DefaultScheduleTimeout = 10 * time.Minute
	DefaultPlatformRetries = 3
)

// logGrace is how long the output of a finished task may take to arrive
// through pods/log before the executor reads it from the datastore.
const logGrace = 10 * time.Second

// An Executor runs each task attempt in a pod: see the package
// documentation.
type Executor struct {
	cfg Config

	mu         sync.Mutex
	watchers   map[string]*watcher             // by run ID
	datastores map[string]*datastore.Datastore // by URL
	adopted    map[string]bool                 // pods of other runs, by name
	closed     bool
}

// New returns an executor of the pods cfg describes.
func New(cfg Config) (*Executor, error) {
	switch {
	case cfg.Pods == nil:
		return nil, errors.New("kubeexec: no pods client")
	case cfg.Pod.Image == "":
		return nil, errors.New("kubeexec: no runner image")
	}
	if cfg.PullTimeout == 0 {
		cfg.PullTimeout = DefaultPullTimeout
	}
	if cfg.ScheduleTimeout == 0 {
		cfg.ScheduleTimeout = DefaultScheduleTimeout
	}
	switch {
	case cfg.PlatformRetries == 0:
		cfg.PlatformRetries = DefaultPlatformRetries
	case cfg.PlatformRetries < 0:
		cfg.PlatformRetries = 0
	}
	return &Executor{
		cfg:        cfg,
		watchers:   make(map[string]*watcher),
		datastores: make(map[string]*datastore.Datastore),
		adopted:    make(map[string]bool),
	}, nil
}

// Close stops the executor's watches and closes the datastores it opened.
// Call it once the runs it served have ended.
func (e *Executor) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed = true
	var errs []error
	for _, w := range e.watchers {
		w.stop()
	}
	for _, d := range e.datastores {
		errs = append(errs, d.Close())
	}
	clear(e.watchers)
	clear(e.datastores)
	return errors.Join(errs...)
}

// KeepsTimeouts says that the executor stops a task at its step's timeout
// itself, counted from when its pod runs: see exec.TimeoutKeeper.
func (e *Executor) KeepsTimeouts() {}

// Execute runs the task attempt of spec in a pod, and returns its result
// once the pod has finished. Lines the task prints reach print through
// pods/log as it prints them.
func (e *Executor) Execute(ctx context.Context, spec *exec.TaskSpec, print func(line string)) (*exec.TaskResult, error) {
	if spec.Datastore == "" {
		return nil, fmt.Errorf("task %s: pods need a datastore, and the run has none", spec.TaskID)
	}
	w, blobs, err := e.open(ctx, spec)
	if err != nil {
		return nil, fmt.Errorf("task %s: %w", spec.TaskID, err)
	}
	adopted := e.adoptable(ctx, w, blobs, spec)
	var lost []string
	for retry := 0; ; retry++ {
		t := &task{e: e, w: w, blobs: blobs, spec: spec, print: print}
		res, why, err := t.run(ctx, retry, adopted)
		if why == "" || err != nil {
			return res, err
		}
		adopted = nil
		lost = append(lost, why)
		if retry >= e.cfg.PlatformRetries {
			return &exec.TaskResult{Error: fmt.Sprintf("lost %d pods: %s", len(lost), strings.Join(lost, "; "))}, nil
		}
		exec.ReportWaiting(ctx, why+"; starting another pod")
	}
}

// open returns the watcher of the run of spec, started on first use, and
// the datastore the spec names.
func (e *Executor) open(ctx context.Context, spec *exec.TaskSpec) (*watcher, store.Blobs, error) {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, nil, errors.New("kubeexec: the executor is closed")
	}
	w, ok := e.watchers[spec.RunID]
	if !ok {
		runs := append([]string{kube.LabelValue(spec.RunID)}, e.cfg.Adopt...)
		for i := 1; i < len(runs); i++ {
			runs[i] = kube.LabelValue(runs[i])
		}
		selector := fmt.Sprintf("%s in (%s)", kube.LabelRun, strings.Join(runs, ","))
		// The watch serves every task of the run, not only this one.
		w = newWatcher(context.WithoutCancel(ctx), e.cfg.Pods, selector)
		e.watchers[spec.RunID] = w
	}
	d, ok := e.datastores[spec.Datastore]
	e.mu.Unlock()
	if !ok {
		var err error
		if d, err = datastore.Open(ctx, spec.Datastore); err != nil {
			return nil, nil, err
		}
		e.mu.Lock()
		if prev, ok := e.datastores[spec.Datastore]; ok {
			d.Close()
			d = prev
		} else {
			e.datastores[spec.Datastore] = d
		}
		e.mu.Unlock()
	}
	if err := w.wait(ctx); err != nil {
		return nil, nil, err
	}
	return w, d, nil
}

// adoptable returns a pod of a run of Config.Adopt that runs, or ran and
// succeeded, the task of spec, if one is still there, preferring one that
// runs; each pod is adopted once. It deletes the pods of those runs that
// run the same task with another spec (other code, other inputs), so that
// the task does not run twice at once.
func (e *Executor) adoptable(ctx context.Context, w *watcher, blobs store.Blobs, spec *exec.TaskSpec) *corev1.Pod {
	if len(e.cfg.Adopt) == 0 {
		return nil
	}
	want := comparable(spec)
	var best *corev1.Pod
	for _, p := range w.existing() {
		if p.Annotations[kube.AnnotationTaskID] != spec.TaskID || p.Labels[kube.LabelRun] == kube.LabelValue(spec.RunID) ||
			p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodFailed || failedResult(p) {
			continue
		}
		got, ok := specOf(p)
		if ok {
			// A spec the pod names rather than holds is read back.
			got, err := exec.LoadSpec(ctx, blobs, got)
			ok = err == nil && comparable(got) == want
		}
		if !ok {
			if p.Status.Phase != corev1.PodSucceeded {
				_ = e.cfg.Pods.Delete(context.WithoutCancel(ctx), p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
			}
			continue
		}
		if best == nil || p.Status.Phase != corev1.PodSucceeded && best.Status.Phase == corev1.PodSucceeded {
			best = p
		}
	}
	if best == nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.adopted[best.Name] {
		return nil
	}
	e.adopted[best.Name] = true
	return best
}

// failedResult reports whether the step container of p ended with the
// reference to a result that is not OK: a failed task, whose runner
// exits with 0 all the same.
func failedResult(p *corev1.Pod) bool {
	s := containerStatus(p.Status.ContainerStatuses)
	if s == nil || s.State.Terminated == nil {
		return false
	}
	var ref exec.ResultRef
	return json.Unmarshal([]byte(s.State.Terminated.Message), &ref) == nil && !ref.OK
}

// specOf returns the TaskSpec a pod runs, from its environment.
func specOf(p *corev1.Pod) (*exec.TaskSpec, bool) {
	for _, c := range p.Spec.Containers {
		if c.Name != kube.ContainerName {
			continue
		}
		for _, v := range c.Env {
			if v.Name == exec.SpecEnv {
				var spec exec.TaskSpec
				if json.Unmarshal([]byte(strings.ReplaceAll(v.Value, "$$", "$")), &spec) != nil {
					return nil, false
				}
				return &spec, true
			}
		}
	}
	return nil, false
}

// comparable returns spec as JSON without what may differ between the
// runs of a resumed run's chain and not change the task's outcome: the
// run, the attempt, and the folder that file names in backtraces start
// with, which is as the flow's path was given.
func comparable(spec *exec.TaskSpec) string {
	s := *spec
	s.RunID, s.Attempt, s.Dir = "", 0, ""
	data, _ := json.Marshal(&s) // a TaskSpec always encodes
	return string(data)
}

// A task is one pod of a task attempt, being followed.
type task struct {
	e     *Executor
	w     *watcher
	blobs store.Blobs
	spec  *exec.TaskSpec
	print func(string)

	name string
	uid  string
	logs *logStream
}

// run runs the task in a pod, the retry-th of its attempt, or follows the
// pod adopted, if not nil. When the platform lost the pod, it returns why,
// and no result.
func (t *task) run(ctx context.Context, retry int, adopted *corev1.Pod) (res *exec.TaskResult, lost string, err error) {
	e := t.e
	var pod *corev1.Pod
	if adopted != nil {
		t.name = adopted.Name
	} else if pod, err = t.pod(ctx, retry); err != nil {
		return nil, "", err
	}
	// Tracked before it is created, so that no event of it is missed.
	tr := t.w.track(t.name)
	defer t.w.untrack(t.name)
	if pod != nil {
		created, err := e.cfg.Pods.Create(ctx, pod, metav1.CreateOptions{})
		switch {
		case apierrors.IsAlreadyExists(err):
			// A driver of this run that was stopped made it: follow it
			// rather than run the task twice.
		case err != nil:
			// The request may have reached the server all the same: a pod
			// left there would run the task beside the next attempt.
			t.delete(ctx)
			if ctx.Err() != nil {
				return &exec.TaskResult{Error: context.Cause(ctx).Error()}, "", nil
			}
			return nil, "", fmt.Errorf("creating pod %s: %w", t.name, err)
		default:
			t.uid = string(created.UID)
		}
	}
	t.w.created(tr)
	defer t.stopLogs()

	var (
		why     string    // why the pod waits, as last reported
		pulling time.Time // since when its image fails to pull, or its container to be made
		unsched time.Time // since when it is unschedulable
		running time.Time // since when its step container runs
		timer   *time.Timer
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		var fire <-chan time.Time
		if timer != nil {
			fire = timer.C
		}
		select {
		case <-tr.changed:
		case <-fire:
		case <-t.w.done:
			t.delete(ctx)
			return nil, "", t.w.failure()
		case <-ctx.Done():
			t.delete(ctx)
			return &exec.TaskResult{Error: context.Cause(ctx).Error()}, "", nil
		}
		p, deleted := t.w.state(tr)
		if p == nil {
			continue
		}
		if t.uid == "" && p.UID != "" {
			t.uid = string(p.UID)
		}
		now := time.Now()
		var deadlines []time.Time
		// A pod being deleted, by someone else since this task did not,
		// is lost even when its runner, stopped, reports a result: the
		// task failed because the pod went, not on its own.
		gone := deleted || p.DeletionTimestamp != nil
		switch phase := p.Status.Phase; {
		case phase == corev1.PodSucceeded || phase == corev1.PodFailed:
			res, lost, err := t.finished(ctx, p)
			if gone && res != nil && !res.OK {
				return nil, fmt.Sprintf("pod %s was deleted before its task finished", t.name), nil
			}
			return res, lost, err
		case deleted:
			return nil, fmt.Sprintf("pod %s was deleted before its task finished", t.name), nil
		case gone:
			// Its end, or its deletion, comes next, unless its node is
			// gone too.
			end := p.DeletionTimestamp.Add(time.Duration(deref(p.DeletionGracePeriodSeconds))*time.Second + terminatingGrace)
			if !now.Before(end) {
				return nil, fmt.Sprintf("pod %s was deleted before its task finished, and is still terminating", t.name), nil
			}
			deadlines = append(deadlines, end)
		}
		if started(p) {
			t.startLogs(ctx)
			if running.IsZero() {
				running = now
			}
		}
		w := waitReason(p)
		if w.text != why {
			why = w.text
			exec.ReportWaiting(ctx, why)
		}
		if w.fatal {
			t.cleanUp(ctx, false)
			return &exec.TaskResult{Error: fmt.Sprintf("pod %s cannot run: %s", t.name, w.text)}, "", nil
		}
		pulling = since(pulling, w.pull, now)
		unsched = since(unsched, w.unschedulable, now)
		var fail string
		switch {
		case w.pull && !now.Before(pulling.Add(e.cfg.PullTimeout)):
			fail = fmt.Sprintf("pod %s: its image cannot be pulled after %s: %s", t.name, e.cfg.PullTimeout, w.text)
		case w.config && !now.Before(pulling.Add(e.cfg.PullTimeout)):
			fail = fmt.Sprintf("pod %s: its container could not be made in %s: %s", t.name, e.cfg.PullTimeout, w.text)
		case w.unschedulable && !now.Before(unsched.Add(e.cfg.ScheduleTimeout)):
			fail = fmt.Sprintf("pod %s was not scheduled in %s: %s", t.name, e.cfg.ScheduleTimeout, w.text)
		case t.spec.Timeout > 0 && !running.IsZero() && !now.Before(running.Add(t.spec.Timeout+timeoutGrace)):
			// The runner stops the task at its timeout; this pod's did
			// not.
			t.delete(ctx)
			return &exec.TaskResult{Error: fmt.Sprintf("step %s did not stop within %s of its timeout, %s", t.spec.Step, timeoutGrace, t.spec.Timeout)}, "", nil
		}
		if fail != "" {
			t.cleanUp(ctx, false)
			return &exec.TaskResult{Error: fail}, "", nil
		}
		switch {
		case w.pull || w.config:
			deadlines = append(deadlines, pulling.Add(e.cfg.PullTimeout))
		case w.unschedulable:
			deadlines = append(deadlines, unsched.Add(e.cfg.ScheduleTimeout))
		}
		if t.spec.Timeout > 0 && !running.IsZero() {
			deadlines = append(deadlines, running.Add(t.spec.Timeout+timeoutGrace))
		}
		if timer != nil {
			timer.Stop()
			timer = nil
		}
		if len(deadlines) > 0 {
			timer = time.NewTimer(time.Until(slices.MinFunc(deadlines, time.Time.Compare)))
		}
	}
}

// Margins of the executor's own deadlines.
const (
	// timeoutGrace is how long after its step's timeout a task that runs
	// has to stop before its pod is deleted.
	timeoutGrace = 30 * time.Second
	// terminatingGrace is how long after its grace period a pod being
	// deleted has to go, before it counts as lost with its node.
	terminatingGrace = time.Minute
)

// since returns when a state began: start if it goes on, now if it
// begins, zero if it does not hold.
func since(start time.Time, holds bool, now time.Time) time.Time {
	switch {
	case !holds:
		return time.Time{}
	case start.IsZero():
		return now
	}
	return start
}

// pod returns the retry-th pod of the task's attempt. A spec too large
// for the pod's environment is saved in the datastore, and the pod gets a
// reference to it.
func (t *task) pod(ctx context.Context, retry int) (*corev1.Pod, error) {
	opts := t.e.cfg.Pod
	opts.Retry = retry
	pod, err := kube.Pod(t.spec, opts)
	if errors.Is(err, kube.ErrSpecTooLarge) {
		var ref *exec.TaskSpec
		if ref, err = exec.SaveSpec(ctx, t.blobs, t.spec); err == nil {
			pod, err = kube.Pod(ref, opts)
		}
	}
	if err != nil {
		return nil, err
	}
	t.name = pod.Name
	return pod, nil
}

// finished returns the outcome of a pod that has ended.
func (t *task) finished(ctx context.Context, p *corev1.Pod) (*exec.TaskResult, string, error) {
	step := containerStatus(p.Status.ContainerStatuses)
	var term *corev1.ContainerStateTerminated
	if step != nil {
		term = step.State.Terminated
	}
	if term != nil {
		t.startLogs(ctx) // a task that ended before the watch saw it run
	}
	logs := t.stopLogs()
	var res *exec.TaskResult
	switch {
	case p.Status.Reason == "DeadlineExceeded":
		res = &exec.TaskResult{Error: fmt.Sprintf("timed out: pod %s was active longer than its activeDeadlineSeconds, %ds", t.name, deref(p.Spec.ActiveDeadlineSeconds))}
	case p.Status.Reason == "Evicted" || disrupted(p) || term == nil && p.Status.Phase == corev1.PodFailed && !initFailed(p):
		// The platform stopped the pod (eviction, preemption, a node
		// shut down), or it failed before its task ran: the task itself
		// did not fail.
		t.cleanUp(ctx, false)
		if p.Status.Reason == "" {
			return nil, fmt.Sprintf("pod %s failed before its container ran: %s", t.name, oneLine(p.Status.Message)), nil
		}
		return nil, fmt.Sprintf("pod %s failed (%s): %s", t.name, p.Status.Reason, oneLine(p.Status.Message)), nil
	case term == nil:
		res = &exec.TaskResult{Error: fmt.Sprintf("pod %s: %s", t.name, initFailure(p))}
	default:
		var err error
		res, err = t.result(ctx, term)
		if err != nil {
			t.cleanUp(ctx, false)
			return nil, "", err
		}
	}
	if !res.OK && res.Logs == "" && logs.err != nil {
		res.Error += fmt.Sprintf(" (its output could not be read: %v)", logs.err)
	}
	if logs.err != nil && res.Logs != "" {
		t.printSaved(ctx, res.Logs, logs.lines)
	}
	t.cleanUp(ctx, res.OK)
	return res, "", nil
}

// result returns the result of a task whose step container ended as term
// says.
func (t *task) result(ctx context.Context, term *corev1.ContainerStateTerminated) (*exec.TaskResult, error) {
	msg := strings.TrimSpace(term.Message)
	if strings.HasPrefix(msg, "{") {
		res, err := t.fetch(ctx, msg)
		if err == nil {
			return res, nil
		} else if term.ExitCode == 0 {
			return nil, fmt.Errorf("pod %s: %w", t.name, err)
		}
	}
	switch {
	case term.Reason == "OOMKilled":
		limit := "its memory limit"
		if m := t.spec.Resources.Memory; m != "" {
			limit += ", " + m
		}
		return &exec.TaskResult{Error: fmt.Sprintf("out of memory: pod %s was killed at %s (OOMKilled)", t.name, limit)}, nil
	case term.ExitCode == 0:
		return nil, fmt.Errorf("pod %s ended without a result: the runner image's entrypoint must run `dagger step`", t.name)
	}
	detail := lastLine(msg)
	if detail == "" {
		detail = term.Reason
	}
	return &exec.TaskResult{Error: fmt.Sprintf("pod %s: the runner exited with code %d: %s", t.name, term.ExitCode, detail)}, nil
}

// fetch returns the result that ref names, trying a few times: a result
// lost to a datastore's passing error would be a task run again.
func (t *task) fetch(ctx context.Context, ref string) (*exec.TaskResult, error) {
	var err error
	for i := range fetchTries {
		var res *exec.TaskResult
		if res, err = exec.FetchResult(ctx, t.blobs, []byte(ref)); err == nil {
			return res, nil
		}
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) || i == fetchTries-1 {
			break // no reference, but a log line that looks like one
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(time.Duration(i+1) * time.Second):
		}
	}
	return nil, err
}

// fetchTries is how many times fetch tries.
const fetchTries = 3

// printSaved prints the lines of the task's output, saved in the
// datastore, that pods/log did not give.
func (t *task) printSaved(ctx context.Context, logs string, printed int) {
	data, err := t.blobs.Get(ctx, store.Hash(logs))
	if err != nil {
		return // the run records the blob; `dagger logs` will say what is wrong
	}
	for i, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		if i >= printed && (line != "" || len(data) > 0) {
			t.print(line)
		}
	}
}

// cleanUp deletes the pod, unless it failed and the config keeps those.
func (t *task) cleanUp(ctx context.Context, ok bool) {
	if ok || !t.e.cfg.KeepFailedPods {
		t.delete(ctx)
	}
}

// delete deletes the pod, even when ctx is cancelled: a cancelled run
// removes its pods. Errors are not the task's: a pod left behind is
// garbage, which `kubectl delete pods -l dagger.dev/run=RUN` removes.
func (t *task) delete(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	opts := metav1.DeleteOptions{}
	if t.uid != "" {
		opts.Preconditions = &metav1.Preconditions{UID: new(types.UID(t.uid))}
	}
	_ = t.e.cfg.Pods.Delete(ctx, t.name, opts)
}

// A logStream follows the output of the step container.
type logStream struct {
	cancel context.CancelFunc
	done   chan struct{}
	lines  int   // printed
	err    error // why it stopped before the end, if it did
}

// startLogs starts following the pod's output, once.
func (t *task) startLogs(ctx context.Context) {
	if t.logs != nil {
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &logStream{cancel: cancel, done: make(chan struct{})}
	t.logs = s
	go func() {
		defer close(s.done)
		rc, err := t.e.cfg.Pods.GetLogs(t.name, &corev1.PodLogOptions{Container: kube.ContainerName, Follow: true}).Stream(ctx)
		if err != nil {
			s.err = err
			return
		}
		defer rc.Close()
		r := bufio.NewReader(rc)
		for {
			line, err := r.ReadString('\n')
			if line != "" {
				t.print(strings.TrimSuffix(line, "\n"))
				s.lines++
			}
			if err != nil {
				if err != io.EOF {
					s.err = err
				}
				return
			}
		}
	}()
}

// stopLogs waits, for a while, for the output of a pod that ended to come
// to its end, and returns how it went; a stream never started counts as
// failed, so that the output is read from the datastore.
func (t *task) stopLogs() *logStream {
	s := t.logs
	if s == nil {
		return &logStream{err: errors.New("the pod's output was never followed")}
	}
	select {
	case <-s.done:
	case <-time.After(logGrace):
		s.cancel()
		<-s.done
		if s.err == nil {
			s.err = errors.New("its end did not come")
		}
	}
	s.cancel()
	return s
}

// started reports whether the step container of p has started.
func started(p *corev1.Pod) bool {
	s := containerStatus(p.Status.ContainerStatuses)
	return s != nil && (s.State.Running != nil || s.State.Terminated != nil)
}

func containerStatus(statuses []corev1.ContainerStatus) *corev1.ContainerStatus {
	for i := range statuses {
		if statuses[i].Name == kube.ContainerName {
			return &statuses[i]
		}
	}
	return nil
}

// A wait says why a pending pod is not running.
type wait struct {
	text          string
	pull          bool // its image cannot be pulled, yet
	config        bool // its container cannot be made, yet: a Secret or ConfigMap is missing
	unschedulable bool
	fatal         bool // it never will run
}

// waitReason returns why the pending pod p waits, "" if it does not say.
func waitReason(p *corev1.Pod) wait {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			return wait{text: "unschedulable: " + oneLine(cmp.Or(c.Message, c.Reason)), unschedulable: c.Reason == corev1.PodReasonUnschedulable}
		}
	}
	for _, s := range slices.Concat(p.Status.InitContainerStatuses, p.Status.ContainerStatuses) {
		w := s.State.Waiting
		if w == nil {
			continue
		}
		text := fmt.Sprintf("%s: %s", w.Reason, oneLine(w.Message))
		switch w.Reason {
		case "ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "RegistryUnavailable":
			return wait{text: fmt.Sprintf("image %s: %s", s.Image, text), pull: true}
		case "InvalidImageName":
			return wait{text: fmt.Sprintf("image %s: %s", s.Image, text), fatal: true}
		case "CreateContainerConfigError", "CreateContainerError":
			// A missing Secret may yet be created: wait as for a pull.
			return wait{text: text, config: true}
		case "ContainerCreating", "PodInitializing":
			continue
		}
		if w.Reason != "" {
			return wait{text: text}
		}
	}
	return wait{}
}

// disrupted reports whether the platform says it stopped p: a
// DisruptionTarget condition, set for preemption, eviction and node
// shutdown.
func disrupted(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.DisruptionTarget && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// initFailed reports whether an init container of p failed.
func initFailed(p *corev1.Pod) bool { return initFailure(p) != "" }

// initFailure says how an init container of p failed, "" if none did.
func initFailure(p *corev1.Pod) string {
	for _, s := range p.Status.InitContainerStatuses {
		if term := s.State.Terminated; term != nil && term.ExitCode != 0 {
			return fmt.Sprintf("init container %s exited with code %d: %s", s.Name, term.ExitCode, cmp.Or(lastLine(term.Message), term.Reason))
		}
	}
	return ""
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	return strings.TrimSpace(s[strings.LastIndexByte(s, '\n')+1:])
}

func deref(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}
