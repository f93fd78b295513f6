// Package agent plays the kubelet for the Nodes of a test cluster that has
// no container runtime: it registers the nodes with the API server, runs
// the pods bound to them as plain processes of this machine, reports their
// status as a kubelet does, and serves their logs to the API server's
// pods/log.
//
// # Pods
//
// Each pod gets a folder of its own, its root, into which the image of
// each of its containers is laid just before that container starts: the
// image is pulled once per digest with go-containerregistry (with plain
// HTTP from a registry on loopback), unpacked once into the agent's
// folder, and linked into the root file by file, or copied where the
// container could write. All the containers of a pod share its root, and
// so see each other's files, not only those of the volumes they share. A
// volume is a folder of the root at the mount path of the first container
// that mounts it, to which other mount paths of the same volume are
// symbolic links: emptyDir volumes are writable by all, as a kubelet makes
// them; secret and configMap volumes are written as files, read through
// the API. The runtime's files are there too: /etc/hosts, and an empty
// termination message file before each container starts.
//
// A container runs as a process in a process group of its own, with the
// user, groups, environment, working folder and command that a kubelet and
// a container runtime would give it. When the agent runs as root, the
// process is confined to the pod's root with chroot, which holds no /proc
// but a link /proc/self/exe to the container's executable, for Go's
// os.Executable; otherwise it runs in this machine's file system, started
// from the root's copy of its executable, as the agent's user. The
// processes share the machine's network and host name: 127.0.0.1 in a pod
// is this machine.
//
// Status, deadlines (activeDeadlineSeconds), image pull back-off, graceful
// deletion and termination messages follow a kubelet, with the same
// reasons and messages. A pod that someone else ends, such as by setting
// its phase to Failed, has its processes stopped and its status left
// alone.
//
// # What is left out
//
// No resource limits (and so no OOMKilled), no restarts (every restart
// policy acts as Never), no sidecar init containers, no probes (a running
// container is ready), no readOnlyRootFilesystem or read-only mounts, no
// capabilities, no seccomp, no subPath, no volumes other than emptyDir,
// secret and configMap, no image pull secrets, no node leases or
// heartbeats, no events. Containers that run at once share their
// termination message file if their terminationMessagePath is the same.
// Logs ignore previous, sinceSeconds and timestamps. Device files in
// images are not created.
package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"syscall"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
)

// A Node is a node the agent plays the kubelet for.
type Node struct {
	Name   string
	Labels map[string]string
	// Capacity is also the node's allocatable. Resources it does not name
	// among cpu, memory and pods are this machine's: its processors, its
	// memory, and 110 pods, a kubelet's default. An extended resource
	// such as "nvidia.com/gpu" must be a whole number.
	Capacity corev1.ResourceList
}

// Config says what an agent plays the kubelet for.
type Config struct {
	REST  *rest.Config // admin credentials to the API server
	Nodes []Node
	// Dir is the agent's own folder: pulled images, pods' roots, logs.
	// Images stay there, for a later agent on the same folder; pods' roots
	// go when their pods leave the API, and all of them at Close.
	Dir string
}

// An Agent plays the kubelet for some nodes, from Start to Close.
type Agent struct {
	client  corev1client.CoreV1Interface
	dir     string
	chroot  bool // whether pods run confined to their roots
	images  *imageStore
	ctx     context.Context // done at Close
	cancel  context.CancelCauseFunc
	workers sync.WaitGroup // the informers, the pods' goroutines
	server  *http.Server
	served  chan struct{} // closed when server has returned

	mu     sync.Mutex
	pods   map[types.UID]*podRun
	byName map[string]*podRun // by namespace/name, for logs
}

// errClosed is the cause of the agent's context at Close.
var errClosed = errors.New("agent closed")

// kubeletPods is a kubelet's default number of pods per node.
const kubeletPods = 110

// Start registers the nodes (Ready, with capacity/allocatable, InternalIP
// 127.0.0.1, daemonEndpoints.kubeletEndpoint.Port = the agent's HTTPS
// port, and the node.kubernetes.io/not-ready:NoSchedule taint removed),
// serves container logs, and runs the pods bound to its nodes until Close.
// It returns once it has listed the pods already bound to them; ctx bounds
// that, not the agent's life.
func Start(ctx context.Context, cfg Config) (a *Agent, err error) {
	switch {
	case cfg.REST == nil:
		return nil, errors.New("agent: no REST config")
	case cfg.Dir == "":
		return nil, errors.New("agent: no folder")
	case len(cfg.Nodes) == 0:
		return nil, errors.New("agent: no nodes")
	}
	for i, n := range cfg.Nodes {
		if n.Name == "" || slices.ContainsFunc(cfg.Nodes[:i], func(m Node) bool { return m.Name == n.Name }) {
			return nil, fmt.Errorf("agent: node name %q empty or given twice", n.Name)
		}
	}
	rc := rest.CopyConfig(cfg.REST)
	// A kubelet's defaults: client-go's own, 5 requests a second, would
	// hold back the status updates of a few pods started at once.
	rc.QPS, rc.Burst = 50, 100
	rc.UserAgent = "dagger-test-agent"
	client, err := corev1client.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	for _, d := range []string{"images", "pods"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
	}

	cert, err := selfSignedCert()
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	actx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	asRoot := os.Geteuid() == 0
	a = &Agent{
		client: client,
		dir:    dir,
		chroot: asRoot,
		images: newImageStore(filepath.Join(dir, "images"), asRoot),
		ctx:    actx,
		cancel: cancel,
		served: make(chan struct{}),
		pods:   make(map[types.UID]*podRun),
		byName: make(map[string]*podRun),
	}
	a.server = &http.Server{
		Handler:     a.logHandler(),
		BaseContext: func(net.Listener) context.Context { return actx },
	}
	go func() {
		defer close(a.served)
		a.server.Serve(tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}}))
	}()
	defer func() {
		if err != nil {
			a.Close()
			a = nil
		}
	}()

	port := ln.Addr().(*net.TCPAddr).Port
	var synced []cache.InformerSynced
	for _, n := range cfg.Nodes {
		if err := a.register(ctx, n, port); err != nil {
			return nil, fmt.Errorf("agent: registering node %s: %w", n.Name, err)
		}
		synced = append(synced, a.watchPods(n.Name))
	}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return nil, fmt.Errorf("agent: listing the nodes' pods: %w", context.Cause(ctx))
	}
	return a, nil
}

// Close stops every pod's processes, the log server and the watch, and
// waits for them. It removes the pods' roots and logs, but leaves the
// nodes registered.
func (a *Agent) Close() error {
	a.cancel(errClosed)
	err := a.server.Close()
	<-a.served
	a.workers.Wait()
	return errors.Join(err, os.RemoveAll(filepath.Join(a.dir, "pods")))
}

// register creates the node n, or updates it, and makes it Ready and
// schedulable, with the kubelet's port.
func (a *Agent) register(ctx context.Context, n Node, port int) error {
	labels := map[string]string{
		"kubernetes.io/hostname": n.Name,
		"kubernetes.io/os":       "linux",
		"kubernetes.io/arch":     runtime.GOARCH,
	}
	for k, v := range n.Labels {
		labels[k] = v
	}
	nodes := a.client.Nodes()
	node, err := nodes.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: labels}}, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		node, err = nodes.Get(ctx, n.Name, metav1.GetOptions{})
	}
	if err != nil {
		return err
	}

	capacity := n.Capacity.DeepCopy()
	if capacity == nil {
		capacity = corev1.ResourceList{}
	}
	var info syscall.Sysinfo_t
	if err := syscall.Sysinfo(&info); err != nil {
		return fmt.Errorf("reading the machine's memory: %w", err)
	}
	for name, q := range map[corev1.ResourceName]resource.Quantity{
		corev1.ResourceCPU:    *resource.NewQuantity(int64(runtime.NumCPU()), resource.DecimalSI),
		corev1.ResourceMemory: *resource.NewQuantity(int64(info.Totalram)*int64(info.Unit), resource.BinarySI),
		corev1.ResourcePods:   *resource.NewQuantity(kubeletPods, resource.DecimalSI),
	} {
		if _, ok := capacity[name]; !ok {
			capacity[name] = q
		}
	}
	now := metav1.Now()
	condition := func(t corev1.NodeConditionType, s corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: t, Status: s, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: now}
	}
	node.Status = corev1.NodeStatus{
		Capacity:    capacity,
		Allocatable: capacity.DeepCopy(),
		Phase:       corev1.NodeRunning,
		Conditions: []corev1.NodeCondition{
			condition(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
			condition(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
			condition(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
			condition(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "kubelet is posting ready status"),
		},
		// No Hostname address: the API server would try it for pods/log,
		// and the node's name does not resolve.
		Addresses:       []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(port)}},
		NodeInfo: corev1.NodeSystemInfo{
			OperatingSystem: "linux",
			Architecture:    runtime.GOARCH,
			KubeletVersion:  "v0.0.0-dagger-test-agent",
		},
	}
	if _, err := nodes.UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		return err
	}

	// The API server's TaintNodesByCondition admission taints a new node
	// not-ready, and no controller-manager will lift it.
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		node, err := nodes.Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		taints := slices.DeleteFunc(slices.Clone(node.Spec.Taints), func(t corev1.Taint) bool {
			return t.Key == corev1.TaintNodeNotReady
		})
		if len(taints) == len(node.Spec.Taints) {
			return nil
		}
		node.Spec.Taints = taints
		_, err = nodes.Update(ctx, node, metav1.UpdateOptions{})
		return err
	})
}

// watchPods starts an informer on the pods bound to the node, until
// Close, and returns what reports its first list done.
func (a *Agent) watchPods(node string) cache.InformerSynced {
	selector := fields.OneTermEqualSelector("spec.nodeName", node).String()
	pods := a.client.Pods(metav1.NamespaceAll)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (k8sruntime.Object, error) {
			opts.FieldSelector = selector
			return pods.List(ctx, opts)
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			opts.FieldSelector = selector
			return pods.Watch(ctx, opts)
		},
	}
	_, informer := cache.NewInformerWithOptions(cache.InformerOptions{
		ListerWatcher: lw,
		ObjectType:    &corev1.Pod{},
		Handler: cache.ResourceEventHandlerFuncs{
			AddFunc:    a.podChanged,
			UpdateFunc: func(_, obj any) { a.podChanged(obj) },
			DeleteFunc: a.podDeleted,
		},
	})
	a.workers.Go(func() { informer.RunWithContext(a.ctx) })
	return informer.HasSynced
}

// podChanged hands a pod seen on the watch to its podRun, starting one for
// a pod the agent has not run yet unless it has already ended.
func (a *Agent) podChanged(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if p := a.pods[pod.UID]; p != nil {
		p.update(pod)
		return
	}
	if isTerminal(pod.Status.Phase) || a.ctx.Err() != nil {
		return
	}
	p := newPodRun(a, pod)
	a.pods[pod.UID] = p
	a.byName[p.key] = p
	a.workers.Go(func() { p.run(a.ctx) })
}

// podDeleted tells the podRun of a pod that left the API.
func (a *Agent) podDeleted(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	a.mu.Lock()
	p := a.pods[pod.UID]
	a.mu.Unlock()
	if p != nil {
		p.markGone()
	}
}

// forget removes p from the agent's pods once it is gone.
func (a *Agent) forget(p *podRun) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.pods, p.uid)
	if a.byName[p.key] == p {
		delete(a.byName, p.key)
	}
}

// podNamed returns the podRun of the pod namespace/name, or nil.
func (a *Agent) podNamed(namespace, name string) *podRun {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.byName[namespace+"/"+name]
}

func isTerminal(phase corev1.PodPhase) bool {
	return phase == corev1.PodSucceeded || phase == corev1.PodFailed
}
