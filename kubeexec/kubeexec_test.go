package kubeexec_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/daggerflow/dagger"
	"github.com/daggerflow/dagger/internal/testcluster"
	"github.com/daggerflow/dagger/kube"
	"github.com/daggerflow/dagger/kubeexec"
	"github.com/daggerflow/dagger/store"
)

// A counter counts the requests a client sends, by verb and resource.
type counter struct {
	mu    sync.Mutex
	count map[string]int
	next  http.RoundTripper
}

func (c *counter) RoundTrip(req *http.Request) (*http.Response, error) {
	key := req.Method + " " + resource(req.URL.Path)
	if req.URL.Query().Get("watch") == "true" {
		key = "WATCH " + resource(req.URL.Path)
	}
	c.mu.Lock()
	c.count[key]++
	c.mu.Unlock()
	return c.next.RoundTrip(req)
}

// resource returns the resource a request path names: pods, or pods/log.
func resource(path string) string {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	// api/v1/namespaces/NS/pods[/NAME[/SUB]]
	if len(parts) < 5 {
		return path
	}
	if len(parts) == 7 {
		return parts[4] + "/" + parts[6]
	}
	return parts[4]
}

func (c *counter) counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.count))
	for k, v := range c.count {
		out[k] = v
	}
	return out
}

// A cluster is a test cluster with dagger's runner image in its registry.
type cluster struct {
	*testcluster.Cluster
	image string
}

func startCluster(tb testing.TB) *cluster {
	tb.Helper()
	c := testcluster.Start(tb)
	image := c.Push(tb, testcluster.BuildDagger(tb), "dagger")
	for _, kv := range c.DatastoreEnv {
		name, value, _ := strings.Cut(kv, "=")
		tb.Setenv(name, value)
	}
	return &cluster{Cluster: c, image: image}
}

// executor returns an executor whose requests c counts.
func (c *cluster) executor(tb testing.TB, count *counter) *kubeexec.Executor {
	tb.Helper()
	rc := rest.CopyConfig(c.REST)
	rc.QPS, rc.Burst = 1000, 1000
	rc.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		count.next = rt
		return count
	}
	pods, err := kubeexec.NewPods(rc, c.Namespace)
	if err != nil {
		tb.Fatal(err)
	}
	e, err := kubeexec.New(kubeexec.Config{
		Pods: pods,
		Pod:  kube.PodOptions{Namespace: c.Namespace, Image: c.image, CredentialsSecret: c.CredentialsSecret},
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.Close() })
	return e
}

// foreach is a flow that fans out to n tasks.
const foreach = `
n = param("n", default = 10)

def start(ctx):
    next_step(square, foreach = list(range(n)))

def square(ctx):
    ctx.y = ctx.input * ctx.input
    next_step(join)

def join(ctx, inputs):
    total = 0
    for task in inputs:
        total += task.y
    print("total", total)
    next_step(finish)

def finish(ctx):
    pass
`

// run runs the foreach flow with n tasks on the cluster, and returns the
// requests its executor sent.
func (c *cluster) run(tb testing.TB, n, workers int, ds string) (map[string]int, store.Run) {
	tb.Helper()
	dir := tb.TempDir()
	path := filepath.Join(dir, "foreach.star")
	if err := os.WriteFile(path, []byte(foreach), 0o666); err != nil {
		tb.Fatal(err)
	}
	flow, err := dagger.Load(path, nil)
	if err != nil {
		tb.Fatal(err)
	}
	st, err := store.Open(tb.Context(), filepath.Join(dir, "store"))
	if err != nil {
		tb.Fatal(err)
	}
	defer st.Close()
	count := &counter{count: make(map[string]int)}
	run, err := dagger.Run(tb.Context(), st, flow, dagger.Options{
		Params:     map[string]string{"n": fmt.Sprint(n)},
		MaxWorkers: workers,
		Executor:   c.executor(tb, count),
		Datastore:  c.DatastoreAt(ds),
	})
	if err != nil {
		tb.Fatal(err)
	}
	return count.counts(), run
}

// TestRequests checks that a task attempt costs the API server three
// requests: create, logs and delete, plus the run's one list and watch.
func TestRequests(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: no test cluster")
	}
	c := startCluster(t)
	const n = 10
	got, _ := c.run(t, n, 4, "requests")
	tasks := n + 3
	want := map[string]int{
		"POST pods":    tasks,
		"GET pods/log": tasks,
		"DELETE pods":  tasks,
		"GET pods":     1, // the first list
		"WATCH pods":   1,
	}
	for key, w := range want {
		if got[key] != w {
			t.Errorf("%d requests %s, want %d; all: %v", got[key], key, w, got)
		}
	}
}

// BenchmarkForeach runs a foreach of 500 tasks with 50 pods at once, and
// reports tasks a second and API requests a task.
func BenchmarkForeach(b *testing.B) {
	if testing.Short() {
		b.Skip("-short: no test cluster")
	}
	c := startCluster(b)
	const n = 500
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		got, _ := c.run(b, n, 50, fmt.Sprintf("bench-%d", i))
		total := 0
		for _, v := range got {
			total += v
		}
		b.ReportMetric(float64(n+3)/time.Since(start).Seconds(), "tasks/s")
		b.ReportMetric(float64(total)/float64(n+3), "requests/task")
	}
}
