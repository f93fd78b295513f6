package cli

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"
)

// paramsFlow has parameters of several types.
const paramsFlow = `
n = param("n", default = 1)
tags = param("tags", default = ["a"])
who = param("who", default = "world")

def start(ctx):
    next_step(finish)

def finish(ctx):
    pass
`

// failFlow fails in its first step.
const failFlow = `
def start(ctx):
    fail("oops")
    next_step(finish)

def finish(ctx):
    pass
`

// runsHeader is the first line of dagger runs.
var runsHeader = regexp.MustCompile(`^ID +FLOW +STATUS +STARTED +DURATION +ORIGIN$`)

// TestRuns checks which runs dagger runs lists, in which order, with its
// filters.
func TestRuns(t *testing.T) {
	dir := t.TempDir()
	hello := writeFlow(t, "hello.star", helloFlow)
	h := recordRun(t, dir, hello)
	p := recordRun(t, dir, writeFlow(t, "params.star", paramsFlow))
	f := recordRun(t, dir, writeFlow(t, "fail.star", failFlow))
	rec := newRecorder(t, dir) // a run of another hello left running
	r := rec.run.ID
	t.Chdir(filepath.Dir(hello))
	rel := "hello.star"
	tests := []struct {
		args []string
		want [][]string // the ID, flow, status and duration of each run listed
	}{
		{args: nil, want: [][]string{{r, "hello", "running", "-"}, {f, "fail", "failed", "D"}, {p, "params", "succeeded", "D"}, {h, "hello", "succeeded", "D"}}},
		// A name matches the flows of that name, here two files; a path
		// only that file, however it is written.
		{args: []string{"hello"}, want: [][]string{{r, "hello", "running", "-"}, {h, "hello", "succeeded", "D"}}},
		{args: []string{hello}, want: [][]string{{h, "hello", "succeeded", "D"}}},
		{args: []string{rel}, want: [][]string{{h, "hello", "succeeded", "D"}}},
		{args: []string{"./../" + filepath.Base(filepath.Dir(hello)) + "/hello.star"}, want: [][]string{{h, "hello", "succeeded", "D"}}},
		{args: []string{rec.run.FlowPath}, want: [][]string{{r, "hello", "running", "-"}}},
		{args: []string{"--status", "failed"}, want: [][]string{{f, "fail", "failed", "D"}}},
		{args: []string{"hello", "--status", "succeeded"}, want: [][]string{{h, "hello", "succeeded", "D"}}},
		{args: []string{"--limit", "2"}, want: [][]string{{r, "hello", "running", "-"}, {f, "fail", "failed", "D"}}},
		{args: []string{"--limit", "0"}, want: [][]string{{r, "hello", "running", "-"}, {f, "fail", "failed", "D"}, {p, "params", "succeeded", "D"}, {h, "hello", "succeeded", "D"}}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			res := runDagger(t, slices.Concat([]string{"runs", "--store", dir}, tt.args)...)
			if res.code != exitOK || res.stderr != "" {
				t.Fatalf("exit %d: %s", res.code, res.stderr)
			}
			lines := strings.Split(strings.TrimSuffix(res.stdout, "\n"), "\n")
			if !runsHeader.MatchString(lines[0]) {
				t.Errorf("header %q, want it to match %s", lines[0], runsHeader)
			}
			var got [][]string
			for _, line := range lines[1:] {
				// ID, flow, status, the date and time started, duration.
				fields := strings.Fields(line)
				if len(fields) != 6 || !localTimeRE.MatchString(fields[3]+" "+fields[4]) {
					t.Fatalf("line %q, want ID FLOW STATUS STARTED DURATION", line)
				}
				if fields[5] != "-" && !durationRE.MatchString(fields[5]) {
					t.Errorf("duration %q in %q", fields[5], line)
				}
				if fields[5] != "-" {
					fields[5] = "D"
				}
				got = append(got, slices.Concat(fields[:3], fields[5:]))
			}
			if diff := gocmp.Diff(tt.want, got); diff != "" {
				t.Errorf("runs (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRunsJSON checks the JSON that dagger runs --json prints.
func TestRunsJSON(t *testing.T) {
	dir := t.TempDir()
	path := writeFlow(t, "params.star", paramsFlow)
	p := recordRun(t, dir, path, "-p", "n=3", "-p", `tags=["x", "y"]`)
	f := recordRun(t, dir, writeFlow(t, "fail.star", failFlow))
	rec := newRecorder(t, dir)
	res := runDagger(t, "runs", "--store", dir, "--json")
	if res.code != exitOK || res.stderr != "" {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	var got []map[string]any
	if err := json.Unmarshal([]byte(res.stdout), &got); err != nil {
		t.Fatalf("%v:\n%s", err, res.stdout)
	}
	isTime := func(v any) bool {
		s, ok := v.(string)
		return ok && regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$`).MatchString(s)
	}
	want := []map[string]any{
		{"id": rec.run.ID, "flow": "hello", "flow_path": rec.run.FlowPath, "status": "running", "params": map[string]any{}, "origin": "", "error": "", "ended": nil},
		{"id": f, "flow": "fail", "status": "failed", "params": map[string]any{}, "origin": ""},
		{"id": p, "flow": "params", "flow_path": path, "status": "succeeded", "params": map[string]any{"n": 3.0, "tags": []any{"x", "y"}, "who": "world"}, "origin": "", "error": ""},
	}
	if len(got) != len(want) {
		t.Fatalf("%d runs, want %d:\n%s", len(got), len(want), res.stdout)
	}
	fields := []string{"id", "flow", "flow_path", "status", "params", "origin", "created", "ended", "error", "datastore"}
	for i, run := range got {
		if keys := slices.Sorted(maps.Keys(run)); !slices.Equal(keys, slices.Sorted(slices.Values(fields))) {
			t.Errorf("run %d has the fields %q, want %q", i, keys, fields)
		}
		if !isTime(run["created"]) {
			t.Errorf("run %d: created = %v, want a time", i, run["created"])
		}
		for k, v := range want[i] {
			if diff := gocmp.Diff(v, run[k]); diff != "" {
				t.Errorf("run %d: %s (-want +got):\n%s", i, k, diff)
			}
		}
	}
	if failed := got[1]; !isTime(failed["ended"]) || !strings.HasPrefix(failed["error"].(string), "task start: Traceback") {
		t.Errorf("the failed run ended %v with error %q, want a time and the task's error", failed["ended"], failed["error"])
	}
}

// TestRunsNoStore checks that dagger runs lists no runs of a store that
// does not exist, and does not create it.
func TestRunsNoStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nothing")
	tests := []struct {
		args []string
		want result
	}{
		{nil, result{stderr: "no runs in " + dir + "\n"}},
		{[]string{"--status", "failed"}, result{stderr: "no runs match in " + dir + "\n"}},
		{[]string{"--json"}, result{stdout: "[]\n"}},
	}
	for _, tt := range tests {
		r := runDagger(t, slices.Concat([]string{"runs", "--store", dir}, tt.args)...)
		if diff := gocmp.Diff(tt.want, r, gocmp.AllowUnexported(result{})); diff != "" {
			t.Errorf("dagger runs %q (-want +got):\n%s", tt.args, diff)
		}
	}
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("dagger runs created %s", dir)
	}
}
