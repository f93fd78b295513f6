package exec

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/daggerflow/dagger/internal/smalldisk"
	"github.com/daggerflow/dagger/store"
)

// TestDiskFull runs a wide foreach whose output and artifacts fill the
// disk of the store: the run fails saying so, and no task stays running.
func TestDiskFull(t *testing.T) {
	dir := filepath.Join(smalldisk.Mount(t, "2m"), "store")
	path := writeFlow(t, map[string]string{"flow.star": `
def start(ctx):
    next_step(body, foreach = range(60))

def body(ctx):
    print("x" * 50000)
    ctx.big = str(ctx.index) + "y" * 60000
    next_step(join)

step(body, catch = "error")

def join(ctx, inputs):
    next_step(finish)

def finish(ctx):
    pass
`})
	st, err := store.Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	run, err := Run(t.Context(), st, loadFlow(t, path), Options{MaxWorkers: 4})
	if err == nil || run.Status != store.RunFailed || !strings.Contains(err.Error(), "store "+dir+": its disk is full") {
		t.Fatalf("run %s, error %v; want it failed because the disk of %s is full", run.Status, err, dir)
	}
	tasks, err := st.Tasks(t.Context(), run.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range tasks {
		if tk.Status == store.TaskRunning {
			t.Errorf("task %s left running", tk.ID)
		}
	}
}
