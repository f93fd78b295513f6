package exec

import (
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/daggerflow/dagger/store"
)

// TestArtifactsSavedOnlyIfChanged checks that a task stores again only
// the artifacts it set or changed: one it only read, however large, or
// mutable but left as it was, keeps its blob and is not stored anew.
func TestArtifactsSavedOnlyIfChanged(t *testing.T) {
	path := writeFlow(t, map[string]string{"flow.star": `
def start(ctx):
    ctx.big = b"x" * (2 * 1024 * 1024)
    ctx.text = "t" * (100 * 1024)
    ctx.same = ["same"]
    ctx.grown = ["grown"]
    ctx.unread = ["unread"]
    next_step(read)

def read(ctx):
    ctx.n = len(ctx.big) + len(ctx.text) + len(ctx.same)
    ctx.grown.append(2)
    next_step(finish)

def finish(ctx):
    pass
`})
	var (
		mu   sync.Mutex
		puts = make(map[store.Hash]int)
	)
	count := func(data []byte) error {
		mu.Lock()
		defer mu.Unlock()
		puts[store.HashParts(data)]++
		return nil
	}
	flow := loadFlow(t, path)
	st, err := store.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	run, err := Run(t.Context(), st, flow, Options{Blobs: faultyBlobs{st.Blobs(), count}})
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := st.Tasks(t.Context(), run.ID)
	if err != nil {
		t.Fatal(err)
	}
	byStep := make(map[string]store.Task)
	for _, tk := range tasks {
		byStep[tk.Step] = tk
	}
	start, read := byStep["start"].Artifacts, byStep["read"].Artifacts
	for _, name := range []string{"big", "text", "same", "unread"} {
		if read[name] != start[name] {
			t.Errorf("artifact %s: read has %s, start %s; want the same blob", name, read[name], start[name])
		}
		if puts[start[name]] != 1 {
			t.Errorf("artifact %s: stored %d times, want once", name, puts[start[name]])
		}
	}
	if read["grown"] == start["grown"] {
		t.Errorf("artifact grown, appended to, kept the blob of start")
	}
	o := &outcome{st: st, tasks: map[string]store.Task{"read": byStep["read"]}}
	got := map[string]string{"grown": o.value(t, "read", "grown"), "n": o.value(t, "read", "n")}
	want := map[string]string{"grown": `["grown", 2]`, "n": "2199553"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("artifacts of read (-want +got):\n%s", diff)
	}
}
