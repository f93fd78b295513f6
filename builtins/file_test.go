package builtins_test

import (
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	sl "go.starlark.net/starlark"

	"github.com/daggerflow/dagger"
	"github.com/daggerflow/dagger/builtins"
	"github.com/daggerflow/dagger/dag"
	"github.com/daggerflow/dagger/starlark"
	"github.com/daggerflow/dagger/store"
)

// TestFilePath checks that a File saved as an artifact, encoded and
// decoded, becomes a file again in the directory of another task:
// under its name, or, when other content has the name, in a folder of
// its own.
func TestFilePath(t *testing.T) {
	blobs := openStore(t).Blobs()
	const content = "weights\x00\xff"
	first := &builtins.Task{Step: "train", Allow: filesCap, Blobs: blobs}
	defer first.Close()
	v, err := exec(t, first, `files.write("out/model.pt", b"weights\x00\xff")`+"\n"+`v = [files.artifact("out/model.pt")]`)
	if err != nil {
		t.Fatal(err)
	}
	data, err := starlark.Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	decoded, err := starlark.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	model := decoded.(*sl.List).Index(0)
	f := model.(builtins.File)
	if f.Name() != "model.pt" || f.Size() != int64(len(content)) || f.ContentHash() != store.HashOf(sha256.Sum256([]byte(content))) {
		t.Fatalf("decoded %v, want model.pt of %d bytes", f, len(content))
	}

	tests := []struct {
		name  string
		tree  map[string]string // what the task's directory holds first
		code  string
		want  string // v's repr
		allow []dag.Capability
	}{
		{name: "fresh", code: "v = [model.path(), model.path()]", want: `["model.pt", "model.pt"]`, allow: filesCap},
		{name: "same content there", tree: map[string]string{"model.pt": content}, code: "v = model.path()", want: `"model.pt"`, allow: filesCap},
		{name: "other content there", tree: map[string]string{"model.pt": "other"}, code: "v = [model.path(), model.path()]",
			want: `["` + f.ContentHash().Digest()[:16] + `/model.pt", "` + f.ContentHash().Digest()[:16] + `/model.pt"]`, allow: filesCap},
		{name: "folder there", tree: map[string]string{"model.pt/x": "x"}, code: "v = model.path()", want: `"` + f.ContentHash().Digest()[:16] + `/model.pt"`, allow: filesCap},
		{name: "undeclared", code: "v = model.path()", allow: nil,
			want: `file.path: step evaluate did not declare the capability files: add it to the step's options, as step(evaluate, allow = ["files"]), and grant it to the run with --allow files`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task := &builtins.Task{Step: "evaluate", Allow: tt.allow, Blobs: blobs}
			defer task.Close()
			dir := taskDir(t, task)
			writeFiles(t, dir, tt.tree)
			v, err := exec(t, task, tt.code, sl.StringDict{"model": model})
			got := ""
			if err != nil {
				got = errorText(err)
			} else {
				got = v.String()
			}
			if got != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
			if err != nil {
				return
			}
			p := got
			if l, ok := v.(*sl.List); ok {
				p = l.Index(0).String()
			}
			p = strings.Trim(p, `"`)
			data, err := os.ReadFile(filepath.Join(dir, p))
			if err != nil || string(data) != content {
				t.Errorf("%s holds %q, %v; want %q", p, data, err, content)
			}
			for name, was := range tt.tree {
				if data, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(data) != was {
					t.Errorf("%s holds %q, %v; want it unchanged, %q", name, data, err, was)
				}
			}
		})
	}
}

// TestFilePathCorrupt checks that path() refuses content that does not
// match its hash, and leaves no file behind.
func TestFilePathCorrupt(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	content := strings.Repeat("big enough to be a file, not a row of the database. ", 2000)
	h, err := st.Blobs().Put(t.Context(), []byte(content))
	if err != nil {
		t.Fatal(err)
	}
	blobFile := filepath.Join(dir, "blobs", h.Digest()[:2], h.Digest()[2:])
	if err := os.Chmod(blobFile, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(blobFile, []byte(strings.ToUpper(content)), 0o666); err != nil {
		t.Fatal(err)
	}
	f, err := builtins.NewFile(h, "m", int64(len(content)))
	if err != nil {
		t.Fatal(err)
	}
	task := &builtins.Task{Step: "s", Allow: filesCap, Blobs: st.Blobs()}
	defer task.Close()
	_, err = exec(t, task, "model.path()", sl.StringDict{"model": f})
	if err == nil || !strings.Contains(err.Error(), "blob is corrupt") {
		t.Errorf("path() of corrupt content: %v, want an error saying so", err)
	}
	if names, _ := os.ReadDir(taskDir(t, task)); len(names) != 0 {
		t.Errorf("path() left %v", names)
	}
}

// TestFileLarge checks that a 1 GiB file goes into the blobs of a store
// and comes back as a file in another task's directory without the heap
// growing with it, and logs how fast.
func TestFileLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 2 GiB")
	}
	const size = 1 << 30
	blobs := openStore(t).Blobs()
	train := &builtins.Task{Step: "train", Allow: filesCap, Blobs: blobs}
	defer train.Close()
	// Content that is not all zeros, made quickly: a 1 MiB pattern, over
	// and over.
	src, err := os.Create(filepath.Join(taskDir(t, train), "model.pt"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i * 7)
	}
	for range size / len(chunk) {
		if _, err := src.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}

	peak := watchHeap(t)
	start := time.Now()
	v, err := exec(t, train, `v = files.artifact("model.pt")`)
	if err != nil {
		t.Fatal(err)
	}
	stored := time.Since(start)
	data, err := starlark.Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	model, err := starlark.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	evaluate := &builtins.Task{Step: "evaluate", Allow: filesCap, Blobs: blobs}
	defer evaluate.Close()
	start = time.Now()
	p, err := exec(t, evaluate, "v = model.path()", sl.StringDict{"model": model})
	if err != nil {
		t.Fatal(err)
	}
	materialised := time.Since(start)
	heap := peak()

	mib := func(d time.Duration) float64 { return size / (1 << 20) / d.Seconds() }
	t.Logf("files.artifact: %v (%.0f MiB/s); path(): %v (%.0f MiB/s); peak heap in use %d MiB",
		stored, mib(stored), materialised, mib(materialised), heap>>20)
	if heap > 64<<20 {
		t.Errorf("the heap in use peaked at %d MiB, for a file of %d MiB", heap>>20, size>>20)
	}
	out, err := os.Open(filepath.Join(taskDir(t, evaluate), string(p.(sl.String))))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	h := sha256.New()
	n, err := io.Copy(h, out)
	if err != nil {
		t.Fatal(err)
	}
	got := store.HashOf([sha256.Size]byte(h.Sum(nil)))
	if diff := cmp.Diff(model.(builtins.File).ContentHash(), got); n != size || diff != "" {
		t.Errorf("path() made %d bytes, want %d; hash (-want +got):\n%s", n, size, diff)
	}
}

// watchHeap samples the heap in use until the function it returns is
// called, which returns the most it saw.
func watchHeap(t *testing.T) (peak func() uint64) {
	t.Helper()
	var (
		wg   sync.WaitGroup
		most uint64
		stop = make(chan struct{})
	)
	runtime.GC()
	wg.Go(func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			most = max(most, m.HeapInuse)
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})
	return func() uint64 {
		close(stop)
		wg.Wait()
		return most
	}
}

// TestFilesRun runs a flow whose steps write a file, keep it as an
// artifact, and read it back in a later task, through dagger.Run.
func TestFilesRun(t *testing.T) {
	const flow = `
def start(ctx):
    files.write("model.pt", "weights " * 1000)
    ctx.model = files.artifact("model.pt")
    ctx.models = {"best": [files.artifact("model.pt")]}
    next_step(evaluate)

def evaluate(ctx):
    p = ctx.model.path()
    ctx.check = struct(
        path = p,
        same = files.read(p) == "weights " * 1000,
        equal = ctx.models["best"][0] == ctx.model,
        listed = files.list(),
        size = ctx.model.size,
    )
    next_step(finish)

def finish(ctx):
    pass

step(start, allow = ["files"])
step(evaluate, allow = ["files"])
`
	path := filepath.Join(t.TempDir(), "files.star")
	if err := os.WriteFile(path, []byte(flow), 0o666); err != nil {
		t.Fatal(err)
	}
	f, err := dagger.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	st := openStore(t)
	run, err := dagger.Run(t.Context(), st, f, dagger.Options{Allow: filesCap})
	if err != nil {
		t.Fatal(err)
	}
	task, err := st.Task(t.Context(), run.ID, "evaluate")
	if err != nil {
		t.Fatal(err)
	}
	data, err := st.Blobs().Get(t.Context(), task.Artifacts["check"])
	if err != nil {
		t.Fatal(err)
	}
	check, err := starlark.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	const want = `struct(equal = True, listed = ["model.pt"], path = "model.pt", same = True, size = 8000)`
	if got := check.String(); got != want {
		t.Errorf("check = %s, want %s", got, want)
	}
}
