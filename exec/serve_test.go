package exec

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/daggerflow/dagger/builtins"
	"github.com/daggerflow/dagger/datastore"
)

// TestServeTaskRef runs tasks as a pod's runner does, writing a result
// reference, and reads their results back with FetchResult: the reference
// fits a termination message however long the task's error, and the
// result is whole.
func TestServeTaskRef(t *testing.T) {
	path := writeFlow(t, map[string]string{"flow.star": `
def start(ctx):
    ctx.x = 1
    next_step(boom)

def boom(ctx):
    fail("it broke: " + "x" * 10000)
    next_step(finish)

def finish(ctx):
    pass
`})
	flow := loadFlow(t, path)
	dir := filepath.Join(t.TempDir(), "ds")
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	url := "file://" + filepath.ToSlash(dir)
	ds, err := datastore.Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	code, err := ds.Put(t.Context(), flow.Package.Encode())
	if err != nil {
		t.Fatal(err)
	}
	for _, test := range []struct {
		step   string
		ok     bool
		error  string // in the reference
		result string // in the result
	}{
		{"start", true, "", ""},
		{"boom", false, "Error in fail: fail: it broke: xxx", "in boom\n"},
	} {
		spec := &TaskSpec{RunID: "r", Code: string(code), Datastore: url, Step: test.step, TaskID: test.step, Attempt: 1, Artifacts: map[string]string{}}
		var out, ref bytes.Buffer
		if err := ServeTaskRef(t.Context(), spec, builtins.Standard(), &out, &ref); err != nil {
			t.Fatal(err)
		}
		if ref.Len() > MaxResultRef {
			t.Errorf("%s: the reference has %d bytes, more than %d", test.step, ref.Len(), MaxResultRef)
		}
		var r ResultRef
		if err := json.Unmarshal(ref.Bytes(), &r); err != nil {
			t.Fatalf("%s: %v: %s", test.step, err, ref.Bytes())
		}
		if r.OK != test.ok || !strings.HasPrefix(r.Error, test.error) || test.error != "" && !strings.HasSuffix(r.Error, "…") {
			t.Errorf("%s: reference %+v", test.step, r)
		}
		res, err := FetchResult(t.Context(), ds, ref.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if res.OK != test.ok || !strings.Contains(res.Error, test.result) || !test.ok && !strings.Contains(res.Error, strings.Repeat("x", 10000)) {
			t.Errorf("%s: result OK %v, error of %d bytes", test.step, res.OK, len(res.Error))
		}
	}
	for _, bad := range []string{`{"result": "sha256:zz"}`, `not json`, `{"result": "sha256:` + strings.Repeat("0", 64) + `"}`} {
		if _, err := FetchResult(t.Context(), ds, []byte(bad)); err == nil {
			t.Errorf("FetchResult(%s) succeeded", bad)
		}
	}
}
