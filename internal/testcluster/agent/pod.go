package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// podIP is the address of every pod, and of every node: pods share this
// machine's network.
const podIP = "127.0.0.1"

const (
	defaultGrace = 30 * time.Second // a pod's default terminationGracePeriodSeconds
	maxGrace     = 10 * time.Second // what the agent waits at most for a process to stop
	minBackoff   = time.Second      // before trying again to start a container
	maxBackoff   = 10 * time.Second
)

// Why a pod's run stops before its containers have ended, besides
// errClosed.
var (
	errDeleting = errors.New("pod marked for deletion")
	errEnded    = errors.New("pod ended by another") // who set a terminal phase
	errGone     = errors.New("pod gone from the API")
	errDeadline = errors.New("pod's active deadline passed")
)

// A podRun runs one pod, from when the agent first sees it until it
// leaves the API.
type podRun struct {
	a       *Agent
	uid     types.UID
	key     string // namespace/name
	dir     string // the pod's folder: root/, logs/
	rootDir string

	mu       sync.Mutex
	latest   *corev1.Pod         // the newest version seen
	ending   bool                // whether the agent has given the pod a terminal phase, or is about to
	logs     map[string]*logFile // by container
	changed  chan struct{}       // receives when latest changes
	gone     chan struct{}       // closed when the pod has left the API
	goneOnce sync.Once

	// Owned by run's goroutine.
	stop    context.CancelCauseFunc // stops the containers, with why
	root    *os.Root
	volumes map[string]string // by name, the name in root of each made
	status  corev1.PodStatus  // what the agent reports
}

func newPodRun(a *Agent, pod *corev1.Pod) *podRun {
	dir := filepath.Join(a.dir, "pods", string(pod.UID))
	return &podRun{
		a:       a,
		uid:     pod.UID,
		key:     pod.Namespace + "/" + pod.Name,
		dir:     dir,
		rootDir: filepath.Join(dir, "root"),
		latest:  pod,
		logs:    make(map[string]*logFile),
		changed: make(chan struct{}, 1),
		gone:    make(chan struct{}),
		volumes: make(map[string]string),
	}
}

// update records a version of the pod seen on the watch or returned by
// the API server.
func (p *podRun) update(pod *corev1.Pod) {
	p.mu.Lock()
	if newer(pod, p.latest) {
		p.latest = pod
	}
	p.mu.Unlock()
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

// newer reports whether a is no older than b. Resource versions are
// opaque, but this API server's are etcd revisions; if they are not
// numbers, a wins.
func newer(a, b *corev1.Pod) bool {
	x, err := strconv.ParseUint(a.ResourceVersion, 10, 64)
	y, err2 := strconv.ParseUint(b.ResourceVersion, 10, 64)
	return err != nil || err2 != nil || x >= y
}

// current returns the newest version of the pod and whether the agent
// has ended it.
func (p *podRun) current() (*corev1.Pod, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.latest, p.ending
}

func (p *podRun) markGone() { p.goneOnce.Do(func() { close(p.gone) }) }

// log returns the log of the container named, or nil if it has not
// started.
func (p *podRun) log(container string) *logFile {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs[container]
}

// run runs the pod until it has ended and left the API, or ctx is done,
// and then removes its folder.
func (p *podRun) run(ctx context.Context) {
	defer p.cleanup()
	runCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	p.stop = stop
	// A pod already marked for deletion when the agent first sees it is
	// only deleted: it never ran here, or ran before the agent restarted,
	// or the agent has deleted it and this is the echo of an old version.
	if pod, _ := p.current(); pod.DeletionTimestamp == nil {
		var supervisor sync.WaitGroup
		supervisor.Go(func() { p.supervise(runCtx) })
		p.execute(runCtx)
		stop(nil) // ends the supervisor
		supervisor.Wait()
	}
	p.awaitDeletion(ctx)
}

// supervise stops the run, until ctx is done, when the pod is marked for
// deletion, ended by another or gone.
func (p *podRun) supervise(ctx context.Context) {
	for {
		switch pod, ending := p.current(); {
		case pod.DeletionTimestamp != nil:
			p.stop(errDeleting)
			return
		case isTerminal(pod.Status.Phase) && !ending:
			p.stop(errEnded)
			return
		}
		select {
		case <-p.changed:
		case <-p.gone:
			p.stop(errGone)
			return
		case <-ctx.Done():
			return
		}
	}
}

// execute runs the pod's containers, reporting their status, until they
// have all ended or ctx is done.
func (p *podRun) execute(ctx context.Context) {
	pod, _ := p.current()
	start := time.Now()
	p.status = corev1.PodStatus{
		Phase:     corev1.PodPending,
		HostIP:    podIP,
		HostIPs:   []corev1.HostIP{{IP: podIP}},
		PodIP:     podIP,
		PodIPs:    []corev1.PodIP{{IP: podIP}},
		StartTime: &metav1.Time{Time: start},
	}
	mainReason := reasonContainerCreating
	if len(pod.Spec.InitContainers) > 0 {
		mainReason = reasonPodInitializing
	}
	for i := range pod.Spec.InitContainers {
		p.status.InitContainerStatuses = append(p.status.InitContainerStatuses, waitingStatus(&pod.Spec.InitContainers[i], reasonPodInitializing))
	}
	for i := range pod.Spec.Containers {
		p.status.ContainerStatuses = append(p.status.ContainerStatuses, waitingStatus(&pod.Spec.Containers[i], mainReason))
	}
	if err := p.makeRoot(); err != nil {
		p.status.Phase = corev1.PodFailed
		p.status.Message = fmt.Sprintf("making the pod's root: %v", err)
		p.push()
		return
	}
	p.push()
	if d := pod.Spec.ActiveDeadlineSeconds; d != nil {
		// The deadline counts from the start time, pulls included.
		t := time.AfterFunc(time.Until(start.Add(time.Duration(*d)*time.Second)), func() { p.stop(errDeadline) })
		defer t.Stop()
	}

	for i := range pod.Spec.InitContainers {
		p.status.InitContainerStatuses[i].State.Waiting.Reason = reasonContainerCreating
		p.push()
		ok, done := p.runGroup(ctx, pod, pod.Spec.InitContainers[i:i+1], p.status.InitContainerStatuses[i:i+1], false)
		if !done {
			p.interrupted(context.Cause(ctx))
			return
		}
		if !ok {
			p.status.Phase = corev1.PodFailed
			p.push()
			return
		}
	}
	if len(pod.Spec.InitContainers) > 0 {
		for i := range p.status.ContainerStatuses {
			p.status.ContainerStatuses[i].State.Waiting.Reason = reasonContainerCreating
		}
		p.push()
	}
	ok, done := p.runGroup(ctx, pod, pod.Spec.Containers, p.status.ContainerStatuses, true)
	if !done {
		p.interrupted(context.Cause(ctx))
		return
	}
	p.status.Phase = corev1.PodSucceeded
	if !ok {
		p.status.Phase = corev1.PodFailed
	}
	p.push()
}

// makeRoot makes the pod's folder, with its root and logs.
func (p *podRun) makeRoot() error {
	for _, d := range []string{p.rootDir, filepath.Join(p.dir, "logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	root, err := os.OpenRoot(p.rootDir)
	if err != nil {
		return err
	}
	p.root = root
	return nil
}

// waitingStatus returns the status of c before it starts.
func waitingStatus(c *corev1.Container, reason string) corev1.ContainerStatus {
	return corev1.ContainerStatus{
		Name:    c.Name,
		Image:   c.Image,
		State:   corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason}},
		Started: new(false),
	}
}

// runGroup prepares the containers cs in order, whose statuses are those
// of the same index, starts them, and waits for them all to end. It
// reports whether they all exited 0, and whether they ended, rather than
// ctx being done, in which case it has stopped those that ran.
func (p *podRun) runGroup(ctx context.Context, pod *corev1.Pod, cs []corev1.Container, statuses []corev1.ContainerStatus, main bool) (ok, done bool) {
	launches := make([]*launch, len(cs))
	for i := range cs {
		l, ready := p.prepareRetrying(ctx, pod, &cs[i], &statuses[i])
		if !ready {
			return false, false
		}
		launches[i] = l
	}
	procs := make([]*process, len(cs))
	exited := make(chan int, len(cs))
	running := 0
	for i := range cs {
		procs[i] = p.start(&cs[i], launches[i], &statuses[i], main)
		if pr := procs[i]; pr != nil {
			running++
			go func() {
				<-pr.done
				exited <- i
			}()
		}
	}
	if main && running > 0 {
		p.status.Phase = corev1.PodRunning
	}
	p.push()

	for running > 0 {
		select {
		case i := <-exited:
			p.recordExit(&cs[i], &statuses[i], procs[i], main)
			if running--; running > 0 {
				p.push()
			}
		case <-ctx.Done():
			grace := p.grace(context.Cause(ctx))
			var stopping sync.WaitGroup
			for _, pr := range procs {
				if pr != nil {
					stopping.Go(func() { pr.stop(grace) })
				}
			}
			stopping.Wait()
			for ; running > 0; running-- {
				i := <-exited
				p.recordExit(&cs[i], &statuses[i], procs[i], main)
			}
			return false, false
		}
	}
	for _, s := range statuses {
		if s.State.Terminated == nil || s.State.Terminated.ExitCode != 0 {
			return false, true
		}
	}
	return true, true
}

// prepareRetrying prepares c, reporting why it cannot start while it
// cannot and trying again with back-off, as a kubelet does, until it can
// or ctx is done.
func (p *podRun) prepareRetrying(ctx context.Context, pod *corev1.Pod, c *corev1.Container, cs *corev1.ContainerStatus) (*launch, bool) {
	backoff := minBackoff
	for {
		l, err := p.prepare(ctx, pod, c)
		if err == nil {
			return l, true
		}
		if ctx.Err() != nil {
			return nil, false
		}
		var we *waitError
		if !errors.As(err, &we) {
			we = &waitError{reasonCreateError, err}
		}
		cs.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: we.reason, Message: we.Error()}}
		p.push()
		switch we.reason {
		case reasonInvalidImageName:
			<-ctx.Done() // as a kubelet, which tries no more
			return nil, false
		case reasonErrImagePull:
			if !sleep(ctx, backoff/2) {
				return nil, false
			}
			msg := fmt.Sprintf("Back-off pulling image %q: %s: %s", c.Image, reasonErrImagePull, we.Error())
			cs.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reasonImagePullBackOff, Message: msg}}
			p.push()
			if !sleep(ctx, backoff/2) {
				return nil, false
			}
		default:
			if !sleep(ctx, backoff) {
				return nil, false
			}
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// sleep waits for d, or for ctx, and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// start starts c as l says and records it in cs; it returns nil if c
// could not start, which cs then says, as a runtime does.
func (p *podRun) start(c *corev1.Container, l *launch, cs *corev1.ContainerStatus, main bool) *process {
	cs.ImageID = l.image.id
	cs.ContainerID = "agent://" + string(p.uid) + "/" + c.Name
	now := metav1.Now()
	log, err := createLog(filepath.Join(p.dir, "logs", c.Name+".log"))
	if err == nil {
		p.mu.Lock()
		p.logs[c.Name] = log
		p.mu.Unlock()
		err = l.startErr
		if err == nil {
			var pr *process
			if pr, err = p.startProcess(l, log); err == nil {
				cs.State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(pr.startedAt)}}
				cs.Started = new(true)
				cs.Ready = main // no probes: running is ready
				return pr
			}
		}
		log.finish()
	}
	cs.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
		ExitCode:    128,
		Reason:      reasonStartError,
		Message:     err.Error(),
		StartedAt:   now,
		FinishedAt:  now,
		ContainerID: cs.ContainerID,
	}}
	return nil
}

// recordExit records in cs how c's process pr ended.
func (p *podRun) recordExit(c *corev1.Container, cs *corev1.ContainerStatus, pr *process, main bool) {
	reason := reasonCompleted
	if pr.exitCode != 0 {
		reason = reasonError
	}
	cs.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
		ExitCode:    pr.exitCode,
		Reason:      reason,
		Message:     p.terminationMessage(c, pr.exitCode, pr.log.path),
		StartedAt:   metav1.NewTime(pr.startedAt),
		FinishedAt:  metav1.NewTime(pr.finishedAt),
		ContainerID: cs.ContainerID,
	}}
	cs.Started = new(false)
	// An init container is ready once it has succeeded.
	cs.Ready = !main && pr.exitCode == 0
}

// interrupted reports the end of a run that cause stopped, if the agent
// is to report it.
func (p *podRun) interrupted(cause error) {
	switch {
	case errors.Is(cause, errDeadline):
		p.status.Phase = corev1.PodFailed
		p.status.Reason = "DeadlineExceeded"
		p.status.Message = "Pod was active on the node longer than the specified deadline"
	case errors.Is(cause, errDeleting):
		// A kubelet ends a pod it stops for deletion before deleting it.
		p.status.Phase = corev1.PodSucceeded
		for _, s := range p.status.ContainerStatuses {
			if s.State.Terminated == nil || s.State.Terminated.ExitCode != 0 {
				p.status.Phase = corev1.PodFailed
			}
		}
	default:
		return
	}
	p.push()
}

// grace returns how long to let processes stop for cause before killing
// them.
func (p *podRun) grace(cause error) time.Duration {
	if errors.Is(cause, errGone) || errors.Is(cause, errClosed) {
		return 0
	}
	pod, _ := p.current()
	d := defaultGrace
	if s := pod.Spec.TerminationGracePeriodSeconds; s != nil {
		d = time.Duration(*s) * time.Second
	}
	if s := pod.DeletionGracePeriodSeconds; errors.Is(cause, errDeleting) && s != nil {
		d = time.Duration(*s) * time.Second
	}
	return min(d, maxGrace)
}

// push writes the status to the API server, with the conditions that
// follow from it, unless someone else has ended the pod or it is gone,
// which stops the run. It tries again until it succeeds or the agent
// closes.
func (p *podRun) push() {
	ctx := p.a.ctx
	if isTerminal(p.status.Phase) {
		p.mu.Lock()
		p.ending = true
		p.mu.Unlock()
	}
	backoff := 100 * time.Millisecond
	for {
		pod, ending := p.current()
		if isTerminal(pod.Status.Phase) {
			if !ending {
				p.stop(errEnded)
			}
			return
		}
		next := pod.DeepCopy()
		setConditions(&p.status, pod.Status.Conditions)
		next.Status = *p.status.DeepCopy()
		next.Status.QOSClass = pod.Status.QOSClass
		for _, c := range pod.Status.Conditions {
			if !isOurCondition(c.Type) {
				next.Status.Conditions = append(next.Status.Conditions, c)
			}
		}
		pods := p.a.client.Pods(pod.Namespace)
		out, err := pods.UpdateStatus(ctx, next, metav1.UpdateOptions{})
		switch {
		case err == nil:
			p.update(out)
			return
		case apierrors.IsConflict(err):
			fresh, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
			if err == nil && fresh.UID == p.uid {
				p.update(fresh)
				continue
			}
			if err == nil || apierrors.IsNotFound(err) {
				p.markGone()
				p.stop(errGone)
				return
			}
		case apierrors.IsNotFound(err):
			p.markGone()
			p.stop(errGone)
			return
		}
		if !sleep(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// awaitDeletion waits until the pod has left the API, or ctx is done,
// deleting it at once when it is marked for deletion: its processes have
// stopped.
func (p *podRun) awaitDeletion(ctx context.Context) {
	for {
		var retry <-chan time.Time
		if pod, _ := p.current(); pod.DeletionTimestamp != nil {
			err := p.a.client.Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
				GracePeriodSeconds: new(int64(0)),
				Preconditions:      metav1.NewUIDPreconditions(string(p.uid)),
			})
			switch {
			case err == nil, apierrors.IsNotFound(err), apierrors.IsConflict(err):
				// Deleted, by the agent or another; or the name is another
				// pod's: this one is gone.
				p.markGone()
			default:
				retry = time.After(time.Second)
			}
		}
		select {
		case <-p.changed:
		case <-retry:
		case <-p.gone:
			return
		case <-ctx.Done():
			return
		}
	}
}

// cleanup forgets the pod and removes its folder.
func (p *podRun) cleanup() {
	p.a.forget(p)
	if p.root != nil {
		p.root.Close()
	}
	os.RemoveAll(p.dir)
}

// The conditions that the agent reports.
var ourConditions = []corev1.PodConditionType{
	corev1.PodScheduled,
	corev1.PodReadyToStartContainers,
	corev1.PodInitialized,
	corev1.ContainersReady,
	corev1.PodReady,
}

func isOurCondition(t corev1.PodConditionType) bool {
	for _, o := range ourConditions {
		if o == t {
			return true
		}
	}
	return false
}

// setConditions sets the conditions of st that follow from its phase and
// container statuses, as a kubelet words them, keeping the transition
// times of those in prev that have not changed.
func setConditions(st *corev1.PodStatus, prev []corev1.PodCondition) {
	var incomplete, unready []string
	for _, s := range st.InitContainerStatuses {
		if t := s.State.Terminated; t == nil || t.ExitCode != 0 {
			incomplete = append(incomplete, s.Name)
		}
	}
	for _, s := range st.ContainerStatuses {
		if !s.Ready {
			unready = append(unready, s.Name)
		}
	}
	cond := func(t corev1.PodConditionType, ok bool, reason, msg string) corev1.PodCondition {
		c := corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}
		if !ok {
			c.Status, c.Reason, c.Message = corev1.ConditionFalse, reason, msg
		}
		for _, pc := range prev {
			if pc.Type == t && pc.Status == c.Status {
				c.LastTransitionTime = pc.LastTransitionTime
			}
		}
		return c
	}
	readyReason, readyMsg := "ContainersNotReady", fmt.Sprintf("containers with unready status: %s", unready)
	if st.Phase == corev1.PodSucceeded {
		readyReason, readyMsg = "PodCompleted", ""
	}
	st.Conditions = []corev1.PodCondition{
		cond(corev1.PodScheduled, true, "", ""),
		cond(corev1.PodReadyToStartContainers, true, "", ""),
		cond(corev1.PodInitialized, len(incomplete) == 0, "ContainersNotInitialized", fmt.Sprintf("containers with incomplete status: %s", incomplete)),
		cond(corev1.ContainersReady, len(unready) == 0, readyReason, readyMsg),
		cond(corev1.PodReady, len(unready) == 0, readyReason, readyMsg),
	}
}
