package exec

import (
	"context"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/daggerflow/dagger/store"
)

// specRecorder is an Executor that runs tasks with the flow's runner and
// keeps the spec of each.
type specRecorder struct {
	mu    sync.Mutex
	specs map[string]TaskSpec
	run   func() Executor
}

func (r *specRecorder) Execute(ctx context.Context, spec *TaskSpec, print func(string)) (*TaskResult, error) {
	r.mu.Lock()
	r.specs[spec.TaskID] = *spec
	r.mu.Unlock()
	return r.run().Execute(ctx, spec, print)
}

// TestSpecResources checks that every task's spec carries its step's
// resources, as the top-level code resolved them, computed values too,
// and nothing for a step without any.
func TestSpecResources(t *testing.T) {
	path := writeFlow(t, map[string]string{"flow.star": `
def start(ctx):
    next_step(train)

def train(ctx):
    next_step(finish)

def finish(ctx):
    pass

gib = 2
step(train, image = "registry.local:5000/trainer:1", cpu = 0.5, memory = "%dGi" % gib, gpu = 1,
     env = {"MODEL_DIR": "/models"}, node_selector = {"disktype": "ssd"}, service_account = "trainer", timeout = "1m")
step(finish, cpu = 2, memory = 1048576)
`})
	flow := loadFlow(t, path)
	st, err := store.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rec := &specRecorder{specs: make(map[string]TaskSpec)}
	var runner *Runner
	rec.run = func() Executor { return runner }
	runner, err = NewRunner(t.Context(), flow, nil, st.Blobs(), func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Run(t.Context(), st, flow, Options{Executor: rec}); err != nil {
		t.Fatal(err)
	}
	want := map[string]Resources{
		"start": {},
		"train": {Image: "registry.local:5000/trainer:1", CPU: "0.5", Memory: "2Gi", GPU: 1,
			Env: map[string]string{"MODEL_DIR": "/models"}, NodeSelector: map[string]string{"disktype": "ssd"}, ServiceAccount: "trainer"},
		"finish": {CPU: "2", Memory: "1048576"},
	}
	got := make(map[string]Resources)
	for id, spec := range rec.specs {
		got[id] = spec.Resources
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("resources (-want +got):\n%s", diff)
	}
	if d := rec.specs["train"].Timeout.String(); d != "1m0s" {
		t.Errorf("train's timeout = %s", d)
	}
}

// TestRunDatastoreRefused checks the datastore options a run refuses
// before it records anything.
func TestRunDatastoreRefused(t *testing.T) {
	path := writeFlow(t, map[string]string{"flow.star": "def start(ctx):\n    next_step(finish)\n\ndef finish(ctx):\n    pass\n"})
	flow := loadFlow(t, path)
	st, err := store.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"not open", Options{Datastore: "s3://bucket/p"}, "datastore s3://bucket/p is named but not open"},
		{"resumed elsewhere", Options{Blobs: st.Blobs(), Datastore: "file:///elsewhere", Resume: &Resume{Origin: store.Run{ID: "r1"}}},
			"run r1 keeps its blobs in the store, not in file:///elsewhere: a resumed run keeps them where its origin does"},
	}
	for _, test := range tests {
		if _, err := Run(t.Context(), st, flow, test.opts); err == nil || err.Error() != test.want {
			t.Errorf("%s: Run error = %v, want %q", test.name, err, test.want)
		}
	}
	if runs, err := st.Runs(t.Context(), store.RunFilter{}); err != nil || len(runs) != 0 {
		t.Errorf("the refused runs were recorded: %v, %v", runs, err)
	}
}
