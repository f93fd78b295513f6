package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/rogpeppe/go-internal/testscript"
	"github.com/rogpeppe/go-internal/txtar"

	"github.com/daggerflow/dagger/builtins"
	"github.com/daggerflow/dagger/internal/testcluster"
)

var update = flag.Bool("update", false, "rewrite the golden files and testscript cmp files with the current output")

// repoRoot is the repository root, relative to this package. The golden
// tests run there, so that dagger prints the paths of flows as they
// appear in the repository (testdata/check/x.star:3:5: ...).
const repoRoot = ".."

// mainEnv, set to 1 in its environment, makes the test binary act as
// dagger, and set to embedder as the dagger of a program that adds the
// builtins of embedderSet: see TestMain.
const mainEnv = "DAGGER_TEST_MAIN"

// TestMain makes the test binary the dagger command, as well as the tests.
// The testscript tests run it as "dagger" from their PATH, where
// testscript.Main links it under that name. The process executor of
// in-process runs, and the tests of signals, run os.Executable(): this
// binary under its own name, which testscript.Main takes for "go test";
// they set mainEnv instead.
func TestMain(m *testing.M) {
	switch os.Getenv(mainEnv) {
	case "1":
		Main(builtins.Standard()) // which exits
	case "embedder":
		Main(embedderSet())
	}
	if filepath.Base(os.Args[0]) != "dagger" { // testscript runs this binary as dagger too
		buildTestCluster()
	}
	testscript.Main(m, map[string]func(){"dagger": func() { Main(builtins.Standard()) }})
}

// buildTestCluster builds the test cluster's control plane, if it is not
// cached, before the tests: go test's timeout starts with them, and a
// first build can outlast it. With -short, nothing is built.
func buildTestCluster() {
	flag.Parse()
	if testing.Short() {
		return
	}
	if _, err := testcluster.Build(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// A result is what one run of dagger did.
type result struct {
	code           int
	stdout, stderr string
}

// runDagger runs dagger in-process with args after the program name. Tests
// that call it must not run in parallel: urfave/cli keeps state in package
// variables.
func runDagger(t *testing.T, args ...string) result {
	t.Helper()
	return runWith(t, builtins.Standard(), args...)
}

// runWith is runDagger for a dagger command with the builtins of set.
func runWith(t testing.TB, set *builtins.Set, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Run(t.Context(), set, append([]string{"dagger"}, args...), strings.NewReader(""), &stdout, &stderr)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// TestCheck runs dagger check on every flow in testdata/check and compares
// its exit code and output with NAME.golden.
func TestCheck(t *testing.T) {
	t.Chdir(repoRoot)
	flows := glob(t, "testdata/check/*.star")
	for _, flow := range flows {
		t.Run(strings.TrimSuffix(filepath.Base(flow), ".star"), func(t *testing.T) {
			r := runDagger(t, "check", flow)
			got := txtar.Format(&txtar.Archive{
				Comment: fmt.Appendf(nil, "exit %d\n", r.code),
				Files: []txtar.File{
					{Name: "stdout", Data: []byte(r.stdout)},
					{Name: "stderr", Data: []byte(r.stderr)},
				},
			})
			golden(t, strings.TrimSuffix(flow, ".star")+".golden", got)
		})
	}
	orphans(t, "testdata/check/*.golden", "testdata/check")
}

// TestExamples requires every example to pass dagger check: the examples
// are what a newcomer runs first.
func TestExamples(t *testing.T) {
	t.Chdir(repoRoot)
	for _, flow := range glob(t, "examples/*.star") {
		t.Run(strings.TrimSuffix(filepath.Base(flow), ".star"), func(t *testing.T) {
			if r := runDagger(t, "check", flow); r.code != exitOK {
				t.Errorf("dagger check %s: exit %d\n%s", flow, r.code, r.stderr)
			}
		})
	}
}

// TestRender compares dagger show and dagger graph on every valid example
// with the golden files in testdata/show and testdata/graph.
func TestRender(t *testing.T) {
	t.Chdir(repoRoot)
	renders := []struct {
		dir, ext string
		args     []string
	}{
		{"testdata/show", ".txt", []string{"show"}},
		{"testdata/show", ".json", []string{"show", "--json"}},
		{"testdata/graph", ".dot", []string{"graph", "--format", "dot"}},
		{"testdata/graph", ".mmd", []string{"graph", "--format", "mermaid"}},
	}
	for _, flow := range glob(t, "examples/*.star") {
		name := strings.TrimSuffix(filepath.Base(flow), ".star")
		if r := runDagger(t, "check", flow); r.code != exitOK {
			// TestExamples reports it, once.
			t.Logf("not rendering %s: it is invalid", flow)
			continue
		}
		for _, rd := range renders {
			t.Run(name+rd.ext, func(t *testing.T) {
				r := runDagger(t, append(rd.args, flow)...)
				if r.code != exitOK || r.stderr != "" {
					t.Fatalf("dagger %s %s: exit %d\n%s", strings.Join(rd.args, " "), flow, r.code, r.stderr)
				}
				golden(t, filepath.Join(rd.dir, name+rd.ext), []byte(r.stdout))
			})
		}
	}
	for _, rd := range renders {
		orphans(t, filepath.Join(rd.dir, "*"+rd.ext), "examples")
	}
}

// TestScript runs the command line tests in testdata/script.
func TestScript(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:           "testdata/script",
		Cmds:          map[string]func(*testscript.TestScript, bool, []string){"exits": exits},
		UpdateScripts: *update,
	})
}

// exits runs a command, as exec does, and fails unless it exits with the
// given code:
//
//	exits 2 dagger check bad.star
func exits(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! exits")
	}
	if len(args) < 2 {
		ts.Fatalf("usage: exits CODE COMMAND [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("%v", err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited with %d, want %d", args[1], got, want)
	}
}

// TestFlagsFirst checks how arguments are reordered for urfave/cli.
func TestFlagsFirst(t *testing.T) {
	app := newApp(builtins.Standard(), nil, nil, nil)
	tests := []struct {
		args []string
		want []string
		err  string
	}{
		{args: nil, want: nil},
		{args: []string{"--version"}, want: []string{"--version"}},
		{args: []string{"check", "f.star"}, want: []string{"check", "--", "f.star"}},
		{args: []string{"show", "f.star", "--json"}, want: []string{"show", "--json", "--", "f.star"}},
		{args: []string{"graph", "f.star", "--format", "mermaid"}, want: []string{"graph", "--format", "mermaid", "--", "f.star"}},
		{args: []string{"graph", "f.star", "-f=mermaid"}, want: []string{"graph", "-f=mermaid", "--", "f.star"}},
		{args: []string{"graph", "-f", "dot", "f.star"}, want: []string{"graph", "-f", "dot", "--", "f.star"}},
		{args: []string{"check", "--", "-odd.star", "--json"}, want: []string{"check", "--", "-odd.star", "--json"}},
		{args: []string{"check", "-", "--nope"}, want: []string{"check", "--nope", "--", "-"}},
		{args: []string{"check", "f.star", "-h"}, want: []string{"check", "--help"}},
		{args: []string{"help", "check"}, want: []string{"help", "check"}},
		{args: []string{"nope", "f.star", "--json"}, want: []string{"nope", "f.star", "--json"}},
		{args: []string{"graph", "f.star", "--format"}, err: "dagger graph: flag needs an argument: --format"},
		{args: []string{"run", "f.star", "-p", "a=1", "--param", "b=2", "-p=c=3", "--p=d"}, want: []string{"run", "--param", "a=1", "--param", "b=2", "--param=c=3", "--param=d", "--", "f.star"}},
		{args: []string{"run", "--store", "-p", "f.star"}, want: []string{"run", "--store", "-p", "--", "f.star"}},
	}
	for _, tt := range tests {
		got, err := flagsFirst(app.Name, tt.args, app.Flags, app.Commands)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("flagsFirst(%q) error = %v, want %s", tt.args, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("flagsFirst(%q): %v", tt.args, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("flagsFirst(%q) (-want +got):\n%s", tt.args, diff)
		}
	}
}

// TestDedent checks how docstrings lose the indentation of their code.
func TestDedent(t *testing.T) {
	tests := []struct{ doc, want string }{
		{"One line.", "One line."},
		{"Summary.\n\n    Details,\n      indented.\n    ", "Summary.\n\nDetails,\n  indented.\n"},
		{"Summary.\n\tTabbed.", "Summary.\nTabbed."},
	}
	for _, tt := range tests {
		if got := dedent(tt.doc); got != tt.want {
			t.Errorf("dedent(%q) = %q, want %q", tt.doc, got, tt.want)
		}
	}
}

// TestLiteral checks that values are written as Starlark literals.
func TestLiteral(t *testing.T) {
	tests := []struct {
		v    any
		want string
	}{
		{nil, "None"},
		{true, "True"},
		{false, "False"},
		{"a \"b\"\n", `"a \"b\"\n"`},
		{int64(-3), "-3"},
		{2.0, "2.0"},
		{0.5, "0.5"},
		{1e21, "1e+21"},
		{[]any{"a", int64(1)}, `["a", 1]`},
		{map[string]any{"b": int64(2), "a": []any{}}, `{"a": [], "b": 2}`},
	}
	for _, tt := range tests {
		if got := literal(tt.v); got != tt.want {
			t.Errorf("literal(%#v) = %s, want %s", tt.v, got, tt.want)
		}
	}
}

// glob returns the files matching pattern, failing when there are none.
func glob(t *testing.T, pattern string) []string {
	t.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no files match %s", pattern)
	}
	return files
}

// golden compares got with the golden file at path, or rewrites the file
// with -update.
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o666); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v\n(to create it, run go test ./cli -update)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs (-want +got):\n%s(if the new output is right, run go test ./cli -update)", path, diff)
	}
}

// orphans reports the golden files matching pattern whose flow, the file
// of the same name in flowDir, no longer exists.
func orphans(t *testing.T, pattern, flowDir string) {
	t.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range files {
		flow := filepath.Join(flowDir, strings.TrimSuffix(filepath.Base(g), filepath.Ext(g))+".star")
		if _, err := os.Stat(flow); err != nil {
			t.Errorf("%s is the golden file of %s, which does not exist: remove it", g, flow)
		}
	}
}
