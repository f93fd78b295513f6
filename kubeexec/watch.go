package kubeexec

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// A watcher follows the pods that match a label selector with one list and
// one watch, which it resumes where it stopped, and lists again only when
// the server has forgotten that point. It keeps the latest state of each
// pod that someone tracks, and tells them when it changes.
type watcher struct {
	pods     Pods
	selector string

	mu      sync.Mutex
	tracked map[string]*tracker // by pod name
	seen    map[string]*corev1.Pod
	err     error // why the watch stopped for good
	ready   chan struct{}
	done    chan struct{}
	cancel  context.CancelFunc
}

// A tracker is what one waiter knows of one pod.
type tracker struct {
	pod     *corev1.Pod // the latest state seen; nil until then
	deleted bool
	created bool          // its creation returned: a list that lacks it means it is gone
	changed chan struct{} // has a value when pod or deleted changed
}

func newWatcher(ctx context.Context, pods Pods, selector string) *watcher {
	ctx, cancel := context.WithCancel(ctx)
	w := &watcher{
		pods:     pods,
		selector: selector,
		tracked:  make(map[string]*tracker),
		seen:     make(map[string]*corev1.Pod),
		ready:    make(chan struct{}),
		done:     make(chan struct{}),
		cancel:   cancel,
	}
	go w.run(ctx)
	return w
}

// wait returns once the first list is done, or the error that stopped
// the watcher.
func (w *watcher) wait(ctx context.Context) error {
	select {
	case <-w.ready:
		return nil
	case <-w.done:
		return w.err
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// failure returns why the watcher stopped, once done is closed.
func (w *watcher) failure() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// stop stops the watch and waits for it.
func (w *watcher) stop() {
	w.cancel()
	<-w.done
}

// existing returns the pods the watcher has seen and not seen deleted.
func (w *watcher) existing() []*corev1.Pod {
	w.mu.Lock()
	defer w.mu.Unlock()
	pods := make([]*corev1.Pod, 0, len(w.seen))
	for _, p := range w.seen {
		pods = append(pods, p)
	}
	return pods
}

// track returns the tracker of the pod called name, from now until untrack.
func (w *watcher) track(name string) *tracker {
	w.mu.Lock()
	defer w.mu.Unlock()
	t := &tracker{changed: make(chan struct{}, 1)}
	if p, ok := w.seen[name]; ok {
		t.pod = p
		t.changed <- struct{}{}
	}
	w.tracked[name] = t
	return t
}

// created marks the pod of t as created: from now on a list that lacks it
// means it was deleted, where before it could have been made after the
// list.
func (w *watcher) created(t *tracker) {
	w.mu.Lock()
	t.created = true
	w.mu.Unlock()
}

func (w *watcher) untrack(name string) {
	w.mu.Lock()
	delete(w.tracked, name)
	w.mu.Unlock()
}

// state returns what the tracker knows now.
func (w *watcher) state(t *tracker) (*corev1.Pod, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return t.pod, t.deleted
}

// update records the state of a pod, or its deletion.
func (w *watcher) update(p *corev1.Pod, deleted bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if deleted {
		delete(w.seen, p.Name)
	} else {
		w.seen[p.Name] = p
	}
	if t, ok := w.tracked[p.Name]; ok {
		t.pod, t.deleted = p, deleted
		select {
		case t.changed <- struct{}{}:
		default:
		}
	}
}

// Bounds of the pause between failed attempts to list or watch.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 10 * time.Second
)

func (w *watcher) run(ctx context.Context) {
	defer close(w.done)
	var (
		listed  bool // the first list is done
		started = time.Now()
		backoff = minBackoff
		rv      string
		err     error
	)
	for ctx.Err() == nil {
		if rv == "" {
			rv, err = w.list(ctx, !listed)
			if err == nil && !listed {
				listed = true
				close(w.ready)
			}
		}
		if err == nil {
			begun := time.Now()
			var gone bool
			gone, rv, err = w.watch(ctx, rv)
			if gone {
				rv = "" // the server forgot rv: list again
			}
			if err == nil && time.Since(begun) > time.Second {
				backoff = minBackoff
				continue
			}
		}
		if ctx.Err() != nil {
			break
		}
		// Credentials or rights that do not allow listing or watching the
		// pods will not do better later, nor will a cluster that could
		// not be reached for a first list: the tasks fail, and say why.
		if err != nil && (isPermanent(err) || !listed && time.Since(started) > firstListTimeout) {
			w.mu.Lock()
			w.err = fmt.Errorf("following the run's pods: %w", err)
			w.mu.Unlock()
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
	w.mu.Lock()
	w.err = fmt.Errorf("following the run's pods: %w", context.Cause(ctx))
	w.mu.Unlock()
}

// firstListTimeout is how long the watcher tries its first list.
const firstListTimeout = 30 * time.Second

// list lists the pods and returns the resource version to watch from. A
// tracked pod that the list lacks was deleted while no watch ran, or
// created after the list's snapshot: a get tells which.
func (w *watcher) list(ctx context.Context, first bool) (string, error) {
	list, err := w.pods.List(ctx, metav1.ListOptions{LabelSelector: w.selector})
	if err != nil {
		return "", err
	}
	listed := make(map[string]bool, len(list.Items))
	for i := range list.Items {
		p := &list.Items[i]
		listed[p.Name] = true
		w.update(p, false)
	}
	if first {
		return list.ResourceVersion, nil
	}
	w.mu.Lock()
	var missing []string
	for name := range w.seen {
		if !listed[name] && w.tracked[name] == nil {
			delete(w.seen, name)
		}
	}
	for name, t := range w.tracked {
		if !listed[name] && t.created {
			missing = append(missing, name)
		}
	}
	w.mu.Unlock()
	for _, name := range missing {
		p, err := w.pods.Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			w.update(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}}, true)
		case err != nil:
			return "", err
		default:
			w.update(p, false)
		}
	}
	return list.ResourceVersion, nil
}

// watch follows the pods from resource version rv until the watch ends,
// and returns the version to resume from, and whether the server has
// forgotten it.
func (w *watcher) watch(ctx context.Context, rv string) (gone bool, next string, err error) {
	wi, err := w.pods.Watch(ctx, metav1.ListOptions{
		LabelSelector:       w.selector,
		ResourceVersion:     rv,
		AllowWatchBookmarks: true,
	})
	if err != nil {
		return apierrors.IsResourceExpired(err) || apierrors.IsGone(err), rv, err
	}
	defer wi.Stop()
	for {
		select {
		case <-ctx.Done():
			return false, rv, context.Cause(ctx)
		case ev, ok := <-wi.ResultChan():
			if !ok {
				return false, rv, nil // the server ended the watch: resume it
			}
			switch ev.Type {
			case watch.Error:
				err := apierrors.FromObject(ev.Object)
				var status apierrors.APIStatus
				if errors.As(err, &status) && (status.Status().Code == http.StatusGone || apierrors.IsResourceExpired(err)) {
					return true, "", nil
				}
				return false, rv, err
			case watch.Bookmark:
				if p, ok := ev.Object.(*corev1.Pod); ok {
					rv = p.ResourceVersion
				}
			case watch.Added, watch.Modified, watch.Deleted:
				p, ok := ev.Object.(*corev1.Pod)
				if !ok {
					continue
				}
				rv = p.ResourceVersion
				w.update(p, ev.Type == watch.Deleted)
			}
		}
	}
}

// isPermanent reports whether err, from the API server, will be the same
// on a second try.
func isPermanent(err error) bool {
	return apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) || apierrors.IsNotFound(err) || apierrors.IsBadRequest(err) || apierrors.IsInvalid(err)
}
