package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/daggerflow/dagger"
	"github.com/daggerflow/dagger/store"
)

// mainEnv, set to 1, makes the test binary this program: the process
// executor runs it, as os.Executable(), to run each task.
const mainEnv = "EMBED_TEST_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(mainEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// readmeMarker comes before the block of README.md that shows what this
// program prints.
const readmeMarker = "<!-- output: go run ./examples/embed -->"

// TestDemo runs the program's demo, with both executors, and compares
// what it prints with what README.md shows. Tasks run in parallel and
// print in any order, so the lines of each run are compared sorted.
func TestDemo(t *testing.T) {
	t.Setenv(mainEnv, "1")
	t.Setenv(dbEnv, "")
	kv := &kvStore{}
	defer kv.close()
	set, err := newSet(kv)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := demo(t.Context(), &out, set, kv); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), readmeMarker+"\n```\n")
	if !ok {
		t.Fatalf("README.md has no %s followed by a code block", readmeMarker)
	}
	want, _, _ := strings.Cut(after, "```\n")
	if diff := cmp.Diff(sortRuns(want), sortRuns(out.String())); diff != "" {
		t.Errorf("the demo prints differently from README.md (-README +got):\n%s", diff)
	}
	for _, line := range []string{"price.2| fig costs 5", "history: finish has total = 12"} {
		if strings.Count(out.String(), line+"\n") != 2 {
			t.Errorf("the demo does not print %q once for each executor:\n%s", line, out.String())
		}
	}
}

// sortRuns returns out, the lines of each run sorted: a run starts with a
// line that starts with "== ".
func sortRuns(out string) []string {
	var runs []string
	var lines []string
	flush := func() {
		slices.Sort(lines)
		runs = append(runs, strings.Join(lines, "\n"))
		lines = nil
	}
	for line := range strings.Lines(out) {
		if strings.HasPrefix(line, "== ") {
			flush()
		}
		lines = append(lines, strings.TrimSuffix(line, "\n"))
	}
	flush()
	return runs
}

// TestMissingKey runs the flow with an item kv has no price for: the task
// fails with kv's error, at the line of the flow that asked.
func TestMissingKey(t *testing.T) {
	dir := t.TempDir()
	kv := &kvStore{path: filepath.Join(dir, "kv.db")}
	defer kv.close()
	if err := createKV(context.Background(), kv.path, map[string]string{"price/fig": "5"}); err != nil {
		t.Fatal(err)
	}
	set, err := newSet(kv)
	if err != nil {
		t.Fatal(err)
	}
	flow, err := dagger.LoadFS(flows, "order.star", set)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(t.Context(), filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, err = dagger.Run(t.Context(), st, flow, dagger.Options{Params: map[string]string{"items": `["fig", "kiwi"]`}})
	var runErr *dagger.RunError
	if !errors.As(err, &runErr) || runErr.TaskID != "price.1" {
		t.Fatalf("run error = %v, want task price.1 to fail", err)
	}
	for _, want := range []string{"order.star:12:27: in price", `Error in kv.get: no key "price/kiwi"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("run error = %v, want %q", err, want)
		}
	}
}
