package exec

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	sl "go.starlark.net/starlark"

	"github.com/daggerflow/dagger/builtins"
	"github.com/daggerflow/dagger/datastore"
	"github.com/daggerflow/dagger/starlark"
)

// BenchmarkServeTask runs one task of testdata/bench/foreach.star's foreach
// as `dagger step` does, in this process: opening the file datastore,
// fetching and checking the code, running its top-level code and the task,
// and syncing what it wrote. It is the share of `--executor process`'s cost
// a task that is not starting the process; -cpuprofile splits it.
//
//	go test -run '^$' -bench ServeTask ./exec
func BenchmarkServeTask(b *testing.B) {
	flow, err := starlark.Load("../testdata/bench/foreach.star", builtins.Standard())
	if err != nil {
		b.Fatal(err)
	}
	dir := filepath.Join(b.TempDir(), "ds")
	if err := os.Mkdir(dir, 0o777); err != nil {
		b.Fatal(err)
	}
	url := "file://" + filepath.ToSlash(dir)
	ds, err := datastore.Open(b.Context(), url)
	if err != nil {
		b.Fatal(err)
	}
	defer ds.Close()
	code, err := ds.Put(b.Context(), flow.Package.Encode())
	if err != nil {
		b.Fatal(err)
	}
	elem, err := starlark.Encode(sl.MakeInt(7))
	if err != nil {
		b.Fatal(err)
	}
	input, err := ds.Put(b.Context(), elem)
	if err != nil {
		b.Fatal(err)
	}
	if err := ds.Sync(b.Context()); err != nil {
		b.Fatal(err)
	}
	set := builtins.Standard()
	for b.Loop() {
		spec := &TaskSpec{RunID: "r", Code: string(code), Datastore: url, Step: "work", TaskID: "work/7", Attempt: 1,
			Index: []int{7}, Input: string(input), Params: map[string]string{"n": "1000"}, Artifacts: map[string]string{}}
		if err := ServeTask(b.Context(), spec, set, io.Discard, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}
