package cli

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	osexec "os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/rogpeppe/go-internal/txtar"

	"github.com/daggerflow/dagger/builtins"
	"github.com/daggerflow/dagger/dag"
	"github.com/daggerflow/dagger/datastore"
	"github.com/daggerflow/dagger/exec"
	"github.com/daggerflow/dagger/internal/s3test"
	"github.com/daggerflow/dagger/starlark"
	"github.com/daggerflow/dagger/store"
)

// runArgs are the arguments the run tests give dagger run for a flow, by
// path, besides the flow itself and the store.
var runArgs = map[string][]string{
	"examples/params.star":      {"-p", "name=Ada"},
	"examples/train/train.star": {"--allow", "exec,files"},
}

// TestRun runs every example and every flow in testdata/run in process,
// with the process executor, and with the process executor and a datastore
// on an S3-protocol server. Each run's output, normalized by normalizeRun,
// must match testdata/run/NAME.txt, and the records of its tasks,
// artifacts included, must be the same however they ran.
func TestRun(t *testing.T) {
	t.Chdir(repoRoot)
	// For the process executor: see TestMain.
	t.Setenv(mainEnv, "1")
	s3 := s3test.Start(t)
	setS3Env(t, s3)
	flows := slices.Concat(glob(t, "examples/*.star"), []string{"examples/train/train.star"}, glob(t, "testdata/run/*.star"))
	names := make(map[string]string)
	for _, flow := range flows {
		name := strings.TrimSuffix(filepath.Base(flow), ".star")
		if other, ok := names[name]; ok {
			t.Fatalf("%s and %s would share testdata/run/%s.txt: rename one", other, flow, name)
		}
		names[name] = flow
		t.Run(name, func(t *testing.T) {
			g := loadGraph(t, flow)
			ways := []struct{ name, executor, datastore string }{
				{"inprocess", inProcess, ""},
				{"process", subprocess, ""},
				{"process with S3", subprocess, s3.URL("runs/" + name)},
			}
			var outputs []string
			var tasks []map[string]store.Task
			for _, w := range ways {
				dir := t.TempDir()
				args := []string{"run", "--store", dir, "--executor", w.executor}
				if w.datastore != "" {
					args = append(args, "--datastore", w.datastore)
				}
				r := runDagger(t, slices.Concat(args, []string{flow}, runArgs[flow])...)
				outputs = append(outputs, formatResult(r, g))
				tasks = append(tasks, runTasks(t, dir, r.stdout))
			}
			golden(t, filepath.Join("testdata/run", name+".txt"), []byte(outputs[0]))
			ignore := cmpopts.IgnoreFields(store.Task{}, "RunID", "Started", "Ended")
			for i, w := range ways[1:] {
				if diff := gocmp.Diff(outputs[0], outputs[i+1]); diff != "" {
					t.Errorf("%s printed differently (-inprocess +%s):\n%s", w.name, w.name, diff)
				}
				if diff := gocmp.Diff(tasks[0], tasks[i+1], ignore); diff != "" {
					t.Errorf("%s recorded different tasks (-inprocess +%s):\n%s", w.name, w.name, diff)
				}
			}
		})
	}
	for _, g := range glob(t, "testdata/run/*.txt") {
		if name := strings.TrimSuffix(filepath.Base(g), ".txt"); names[name] == "" {
			t.Errorf("%s is the golden file of a flow that does not exist: remove it", g)
		}
	}
}

// setS3Env sets the environment in which dagger, and the task runners it
// starts, reach s3 with its credentials, for the test t, but without
// $DAGGER_DATASTORE: each run names its datastore, if it has one.
func setS3Env(t *testing.T, s3 *s3test.Server) {
	t.Helper()
	s3.SetEnv(t)
	t.Setenv("DAGGER_DATASTORE", "") // restored after the test
	os.Unsetenv("DAGGER_DATASTORE")
}

// formatResult formats the exit code and output of a run for a golden
// file, normalized.
func formatResult(r result, g *dag.Graph) string {
	return string(txtar.Format(&txtar.Archive{
		Comment: fmt.Appendf(nil, "exit %d\n", r.code),
		Files: []txtar.File{
			{Name: "stdout", Data: []byte(normalizeRun(r.stdout, g))},
			{Name: "stderr", Data: []byte(normalizeRun(r.stderr, g))},
		},
	}))
}

// runTasks returns the tasks of the run whose output is stdout, recorded
// in the store in dir, by ID.
func runTasks(t *testing.T, dir, stdout string) map[string]store.Task {
	t.Helper()
	m := runHeader.FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("no run header in the output:\n%s", stdout)
	}
	st, err := store.Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	list, err := st.Tasks(t.Context(), m[1])
	if err != nil {
		t.Fatal(err)
	}
	tasks := make(map[string]store.Task, len(list))
	for _, task := range list {
		tasks[task.ID] = task
	}
	return tasks
}

// loadGraph returns the graph of the valid flow at path.
func loadGraph(t *testing.T, path string) *dag.Graph {
	t.Helper()
	return loadGraphWith(t, path, builtins.Standard())
}

// loadGraphWith returns the graph of the flow at path, valid with the
// builtins of set.
func loadGraphWith(t *testing.T, path string, set *builtins.Set) *dag.Graph {
	t.Helper()
	flow, err := starlark.Load(path, set)
	if err != nil {
		t.Fatal(err)
	}
	return flow.Graph
}

var (
	runHeader = regexp.MustCompile(`^run ([0-9a-z]{12}) of `)
	runID     = regexp.MustCompile(`\brun [0-9a-z]{12}\b`)
	duration  = regexp.MustCompile(`\((<1ms|[0-9][0-9.hmsµ]*)\)|\bsucceeded in [0-9][0-9.hmsµ]*:`)
)

// normalizeRun makes the output of dagger run for flow g the same in
// every run: run IDs become RUNID and durations DUR, and the lines of
// each task are put together, the tasks in source order of their steps,
// then by foreach index. Each task's lines keep their order, and the
// lines before the first task and after the last stay where they are;
// tasks running in parallel print in any order.
func normalizeRun(out string, g *dag.Graph) string {
	out = runID.ReplaceAllString(out, "run RUNID")
	out = duration.ReplaceAllStringFunc(out, func(d string) string {
		if strings.HasPrefix(d, "(") {
			return "(DUR)"
		}
		return "succeeded in DUR:"
	})
	var head, tail []string
	byTask := make(map[string][]string)
	for _, line := range strings.SplitAfter(out, "\n") {
		id, ok := lineTask(line)
		switch {
		case ok:
			byTask[id] = append(byTask[id], line)
		case len(byTask) == 0:
			head = append(head, line)
		default:
			tail = append(tail, line)
		}
	}
	rank := make(map[string]int, len(g.Steps))
	for i, s := range g.Steps {
		rank[s.Name] = i
	}
	ids := slices.SortedFunc(func(yield func(string) bool) {
		for id := range byTask {
			if !yield(id) {
				return
			}
		}
	}, func(a, b string) int {
		as, ai := splitTaskID(a)
		bs, bi := splitTaskID(b)
		return cmp.Or(cmp.Compare(rank[as], rank[bs]), slices.Compare(ai, bi), strings.Compare(a, b))
	})
	var b strings.Builder
	for _, l := range head {
		b.WriteString(l)
	}
	for _, id := range ids {
		for _, l := range byTask[id] {
			b.WriteString(l)
		}
	}
	for _, l := range tail {
		b.WriteString(l)
	}
	return b.String()
}

// lineTask returns the task a line of dagger run's output is about.
func lineTask(line string) (string, bool) {
	for _, mark := range []string{"✓ ", "✗ ", "↻ "} {
		if rest, ok := strings.CutPrefix(line, mark); ok {
			id, _, ok := strings.Cut(rest, " ")
			return id, ok
		}
	}
	id, _, ok := strings.Cut(line, "| ")
	return id, ok && !strings.ContainsAny(id, " \n")
}

// splitTaskID splits a task ID, such as "square.3", into its step and its
// foreach indices.
func splitTaskID(id string) (step string, index []int) {
	parts := strings.Split(id, ".")
	for _, p := range parts[1:] {
		i, _ := strconv.Atoi(p)
		index = append(index, i)
	}
	return parts[0], index
}

// TestNormalizeRun checks that normalizeRun puts the lines of parallel
// tasks in one order.
func TestNormalizeRun(t *testing.T) {
	g := &dag.Graph{Steps: []*dag.Step{{Name: "start"}, {Name: "square"}, {Name: "add"}, {Name: "finish"}}}
	a := "run 1m89nkx8sze6 of f\n" +
		"[setup] hi\n" +
		"square.1| one\n" +
		"✓ start (3ms)\n" +
		"square.10| ten\n" +
		"✓ square.10 (1.5s)\n" +
		"square.2| two\n" +
		"↻ square.1 (<1ms) attempt 1 failed, retrying: x| y\n" +
		"square.1| one again\n" +
		"✓ square.1 (2m3s)\n" +
		"✓ square.2 (5ms)\n" +
		"✓ add (5ms)\n" +
		"run 1m89nkx8sze6 succeeded in 1.2s: 5 tasks\n"
	want := "run RUNID of f\n" +
		"[setup] hi\n" +
		"✓ start (DUR)\n" +
		"square.1| one\n" +
		"↻ square.1 (DUR) attempt 1 failed, retrying: x| y\n" +
		"square.1| one again\n" +
		"✓ square.1 (DUR)\n" +
		"square.2| two\n" +
		"✓ square.2 (DUR)\n" +
		"square.10| ten\n" +
		"✓ square.10 (DUR)\n" +
		"✓ add (DUR)\n" +
		"run RUNID succeeded in DUR: 5 tasks\n"
	if diff := gocmp.Diff(want, normalizeRun(a, g)); diff != "" {
		t.Errorf("normalizeRun (-want +got):\n%s", diff)
	}
}

// TestReadme checks the examples of README.md: a fenced block after a line
// <!-- source: PATH --> must be the file at PATH, one after <!-- source:
// PATH NAME --> the function NAME of the Go file PATH, and one after
// <!-- output --> must start with "$ dagger run ARGS" and go on with what
// that command prints, stdout then stderr, as normalizeRun compares them.
func TestReadme(t *testing.T) {
	t.Chdir(repoRoot)
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	found := 0
	for i, line := range lines {
		marker, ok := strings.CutPrefix(strings.TrimSpace(line), "<!-- ")
		if !ok {
			continue
		}
		marker, _ = strings.CutSuffix(marker, " -->")
		if marker != "output" && !strings.HasPrefix(marker, "source: ") {
			continue
		}
		found++
		block, err := fenced(lines[i+1:])
		if err != nil {
			t.Errorf("README.md:%d: %v", i+2, err)
			continue
		}
		if path, ok := strings.CutPrefix(marker, "source: "); ok {
			src, err := readSource(path)
			if err != nil {
				t.Errorf("README.md:%d: %v", i+1, err)
				continue
			}
			if diff := gocmp.Diff(string(src), block); diff != "" {
				t.Errorf("README.md:%d: the block differs from %s (-file +README):\n%s", i+2, path, diff)
			}
			continue
		}
		checkReadmeRun(t, i+2, block)
	}
	if found == 0 {
		t.Error("README.md has no examples to check")
	}
}

// readSource returns what a README block after <!-- source: ref --> must
// be: the file ref, or, for "PATH NAME", the declaration of the function
// NAME in the Go file PATH, its doc comment included.
func readSource(ref string) (string, error) {
	path, name, isFunc := strings.Cut(ref, " ")
	src, err := os.ReadFile(path)
	if err != nil || !isFunc {
		return string(src), err
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, src, parser.ParseComments)
	if err != nil {
		return "", err
	}
	for _, d := range f.Decls {
		if fn, ok := d.(*ast.FuncDecl); ok && fn.Recv == nil && fn.Name.Name == name {
			start := fn.Pos()
			if fn.Doc != nil {
				start = fn.Doc.Pos()
			}
			return string(src[fset.Position(start).Offset:fset.Position(fn.End()).Offset]) + "\n", nil
		}
	}
	return "", fmt.Errorf("%s has no function %s", path, name)
}

// checkReadmeRun runs the command that starts block, at line n of the
// README, and compares its output with the rest of block.
func checkReadmeRun(t *testing.T, n int, block string) {
	command, want, _ := strings.Cut(block, "\n")
	rest, ok := strings.CutPrefix(command, "$ dagger run ")
	if !ok || strings.ContainsAny(rest, `'"\$`) {
		t.Errorf("README.md:%d: want $ dagger run ARGS, without quotes or variables; got %s", n, command)
		return
	}
	args := strings.Fields(rest)
	i := slices.IndexFunc(args, func(a string) bool { return strings.HasSuffix(a, ".star") })
	if i < 0 {
		t.Errorf("README.md:%d: %s names no flow", n, command)
		return
	}
	g := loadGraph(t, args[i])
	r := runDagger(t, slices.Concat([]string{"run", "--store", t.TempDir()}, args)...)
	got := normalizeRun(r.stdout+r.stderr, g)
	if diff := gocmp.Diff(normalizeRun(want, g), got); diff != "" {
		t.Errorf("README.md:%d: %s prints differently (-README +got):\n%s", n, command, diff)
	}
}

// fenced returns the text of the fenced code block that lines start with.
func fenced(lines []string) (string, error) {
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "```") {
		return "", fmt.Errorf("want a fenced code block")
	}
	var b strings.Builder
	for _, l := range lines[1:] {
		if strings.HasPrefix(l, "```") {
			return b.String(), nil
		}
		b.WriteString(l)
	}
	return "", fmt.Errorf("the code block does not end")
}

// TestTextPrinter checks how events are written for people, with and
// without the progress line of a terminal.
func TestTextPrinter(t *testing.T) {
	events := []exec.Event{
		{Kind: exec.RunStarted, RunID: "1m89nkx8sze6"},
		{Kind: exec.SetupOutput, Line: "set up"},
		{Kind: exec.TaskStarted, TaskID: "start"},
		{Kind: exec.TaskOutput, TaskID: "start", Line: "hi"},
		{Kind: exec.TaskRetrying, TaskID: "start", Attempt: 1, Duration: 1500 * time.Microsecond, Error: "Traceback\n  f.star:1:1: in start\nError: no"},
		{Kind: exec.TaskStarted, TaskID: "start", Attempt: 2},
		{Kind: exec.TaskFinished, TaskID: "start", Status: "succeeded", Duration: 90 * time.Microsecond},
		{Kind: exec.TaskStarted, TaskID: "a"},
		{Kind: exec.TaskStarted, TaskID: "b"},
		{Kind: exec.TaskFinished, TaskID: "a", Status: "failed", Duration: 1234 * time.Millisecond, Error: "Traceback\nError in fail: fail: oops\n"},
		{Kind: exec.TaskFinished, TaskID: "b", Status: "cancelled", Duration: 61 * time.Second},
		{Kind: exec.RunFinished, Status: "failed", Duration: 2 * time.Second},
	}
	tests := []struct {
		name string
		live bool
		want string
	}{
		{"pipe", false, "run 1m89nkx8sze6 of f\n" +
			"[setup] set up\n" +
			"start| hi\n" +
			"↻ start (2ms) attempt 1 failed, retrying: Error: no\n" +
			"✓ start (<1ms)\n" +
			"✗ a (1.2s) failed: Error in fail: fail: oops\n" +
			"✗ b (1m1s) cancelled\n"},
		{"terminal", true, "run 1m89nkx8sze6 of f\n" +
			"running 0 tasks, 0 done" + clear + "[setup] set up\n" +
			"running 0 tasks, 0 done" + clear +
			"running 1 task, 0 done" + clear + "start| hi\n" +
			"running 1 task, 0 done" + clear + "↻ start (2ms) attempt 1 failed, retrying: Error: no\n" +
			"running 0 tasks, 0 done" + clear +
			"running 1 task, 0 done" + clear + "✓ start (<1ms)\n" +
			"running 0 tasks, 1 done" + clear +
			"running 1 task, 1 done" + clear +
			"running 2 tasks, 1 done" + clear + "✗ a (1.2s) failed: Error in fail: fail: oops\n" +
			"running 1 task, 2 done" + clear + "✗ b (1m1s) cancelled\n" +
			"running 0 tasks, 3 done" + clear},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			width := 0
			if tt.live {
				width = -1
			}
			p := newTextPrinter(&b, "f", width)
			p.delay = time.Hour // each batch is written by flushNow
			for _, e := range events {
				p.event(e)
				p.flushNow() // as if each event came after the last batch was written
			}
			if err := p.close(); err != nil {
				t.Fatal(err)
			}
			if diff := gocmp.Diff(tt.want, b.String()); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
		})
	}
}

// clear is what erases the progress line.
const clear = "\r\x1b[K"

// TestTextPrinterSucceeded checks the last line of a run that succeeded.
func TestTextPrinterSucceeded(t *testing.T) {
	var b strings.Builder
	p := newTextPrinter(&b, "f", 0)
	p.event(exec.Event{Kind: exec.TaskStarted, TaskID: "start"})
	p.event(exec.Event{Kind: exec.TaskFinished, TaskID: "start", Status: "succeeded", Duration: time.Millisecond})
	p.event(exec.Event{Kind: exec.RunFinished, RunID: "1m89nkx8sze6", Status: "succeeded", Duration: 1260 * time.Millisecond})
	if err := p.close(); err != nil {
		t.Fatal(err)
	}
	want := "✓ start (1ms)\nrun 1m89nkx8sze6 succeeded in 1.3s: 1 task\n"
	if got := b.String(); got != want {
		t.Errorf("output = %q, want %q", got, want)
	}
}

// TestRound checks how durations are rounded for people.
func TestRound(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "<1ms"},
		{999 * time.Microsecond, "<1ms"},
		{1499 * time.Microsecond, "1ms"},
		{999 * time.Millisecond, "999ms"},
		{1049 * time.Millisecond, "1s"},
		{59940 * time.Millisecond, "59.9s"},
		{90 * time.Minute, "1h30m0s"},
	}
	for _, tt := range tests {
		if got := round(tt.d); got != tt.want {
			t.Errorf("round(%v) = %s, want %s", tt.d, got, tt.want)
		}
	}
}

// TestParamFlags checks how -p values are split.
func TestParamFlags(t *testing.T) {
	tests := []struct {
		flags []string
		want  map[string]string
		err   string
	}{
		{flags: nil, want: map[string]string{}},
		{flags: []string{"a=1", "b="}, want: map[string]string{"a": "1", "b": ""}},
		{flags: []string{"tags=[\"x=y\", \"z\"]"}, want: map[string]string{"tags": `["x=y", "z"]`}},
		{flags: []string{"a"}, err: "dagger run: -p a: want name=value"},
		{flags: []string{"=1"}, err: "dagger run: -p =1: want name=value"},
		{flags: []string{"a=1", "a=2"}, err: "dagger run: param a is given twice"},
	}
	for _, tt := range tests {
		got, err := paramFlags("dagger run", tt.flags)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("paramFlags(%q) error = %v, want %s", tt.flags, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("paramFlags(%q): %v", tt.flags, err)
			continue
		}
		if diff := gocmp.Diff(tt.want, got); diff != "" {
			t.Errorf("paramFlags(%q) (-want +got):\n%s", tt.flags, diff)
		}
	}
}

// TestRunFailedError checks how a run that did not succeed is reported.
func TestRunFailedError(t *testing.T) {
	tests := []struct {
		err  *exec.RunError
		want string
	}{
		{&exec.RunError{RunID: "r", Status: store.RunFailed, TaskID: "b", Err: fmt.Errorf("Traceback\nError: x")}, "run r failed: task b\nTraceback\nError: x"},
		{&exec.RunError{RunID: "r", Status: store.RunFailed, TaskID: "b", Err: fmt.Errorf("step b timed out")}, "run r failed: task b\nstep b timed out"},
		{&exec.RunError{RunID: "r", Status: store.RunCancelled, Err: context.Canceled}, "run r cancelled: context canceled"},
		{&exec.RunError{RunID: "r", Status: store.RunFailed, Err: fmt.Errorf("setup: Traceback\nError: x")}, "run r failed\nsetup: Traceback\nError: x"},
		{&exec.RunError{RunID: "r", Status: store.RunFailed}, "run r failed"},
	}
	for _, tt := range tests {
		if got := (&runFailedError{tt.err}).Error(); got != tt.want {
			t.Errorf("runFailedError(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

// TestNotifySignals sends this process signals: the first cancels the
// context, and only one of a kind already received closes again.
func TestNotifySignals(t *testing.T) {
	ctx, again, stop := notifySignals(t.Context())
	defer stop()
	interrupt(t, os.Getpid(), os.Interrupt)
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the first interrupt did not cancel the context")
	}
	if got, want := context.Cause(ctx).Error(), "interrupt signal received"; got != want {
		t.Errorf("context.Cause = %q, want %q", got, want)
	}
	interrupt(t, os.Getpid(), syscall.SIGTERM)
	select {
	case <-again:
		t.Fatal("again is closed after an interrupt and a SIGTERM")
	case <-time.After(100 * time.Millisecond):
	}
	interrupt(t, os.Getpid(), os.Interrupt)
	select {
	case <-again:
	case <-time.After(10 * time.Second):
		t.Fatal("the second interrupt did not close again")
	}
}

func interrupt(t *testing.T, pid int, sig os.Signal) {
	t.Helper()
	p, err := os.FindProcess(pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// writeSpin writes spinFlow in a folder of t's, and returns the folder
// and the flow's path.
func writeSpin(t *testing.T) (dir, flow string) {
	t.Helper()
	dir = t.TempDir()
	flow = filepath.Join(dir, "spin.star")
	if err := os.WriteFile(flow, []byte(spinFlow), 0o666); err != nil {
		t.Fatal(err)
	}
	return dir, flow
}

// spinFlow is a flow whose step spin prints "spinning", then runs until it
// is cancelled.
const spinFlow = `
def start(ctx):
    next_step(spin)

def spin(ctx):
    print("spinning")
    for _ in range(1000000000000):
        pass
    next_step(finish)

def finish(ctx):
    pass
`

// TestRunInterrupted interrupts dagger run, in a process of its own, while
// a task runs: the task is cancelled, and dagger exits with 1.
func TestRunInterrupted(t *testing.T) {
	for _, executor := range []string{inProcess, subprocess} {
		t.Run(executor, func(t *testing.T) {
			dir, flow := writeSpin(t)
			cmd := daggerCommand(t, "run", "--store", filepath.Join(dir, "store"), "--executor", executor, flow)
			stdout := startUntil(t, cmd, "spin| spinning")
			interrupt(t, cmd.Process.Pid, os.Interrupt)
			rest, _ := io.ReadAll(stdout)
			err := cmd.Wait()
			if code := cmd.ProcessState.ExitCode(); code != exitFailed {
				t.Fatalf("exit %d (%v), want %d; stderr:\n%s", code, err, exitFailed, cmd.Stderr)
			}
			if want := regexp.MustCompile(`^run \w+ cancelled: interrupt signal received\n$`); !want.MatchString(fmt.Sprint(cmd.Stderr)) {
				t.Errorf("stderr = %q, want it to match %s", cmd.Stderr, want)
			}
			if want := "✗ spin ("; !strings.Contains(string(rest), want) || !strings.Contains(string(rest), ") cancelled\n") {
				t.Errorf("stdout after spinning = %q, want the task cancelled", rest)
			}
		})
	}
}

// TestRunHangUp hangs up on dagger run, as a dropped SSH session does:
// the run is cancelled and recorded so, not left running.
func TestRunHangUp(t *testing.T) {
	dir, flow := writeSpin(t)
	st := filepath.Join(dir, "store")
	cmd := daggerCommand(t, "run", "--store", st, flow)
	stdout := startUntil(t, cmd, "spin| spinning")
	// A hang-up often comes twice; only ever cancels.
	interrupt(t, cmd.Process.Pid, syscall.SIGHUP)
	interrupt(t, cmd.Process.Pid, syscall.SIGHUP)
	io.Copy(io.Discard, stdout)
	err := cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != exitFailed {
		t.Fatalf("exit %d (%v), want %d; stderr:\n%s", code, err, exitFailed, cmd.Stderr)
	}
	if want := regexp.MustCompile(`^run \w+ cancelled: hangup signal received\n$`); !want.MatchString(fmt.Sprint(cmd.Stderr)) {
		t.Errorf("stderr = %q, want it to match %s", cmd.Stderr, want)
	}
	if r := runDagger(t, "runs", "--store", st); !strings.Contains(r.stdout, " cancelled ") {
		t.Errorf("dagger runs:\n%s", r.stdout)
	}
}

// TestRunnerDiesWithDagger kills dagger run --executor process with
// SIGKILL while a task runs: its dagger step child dies with it, rather
// than run on with no one to read its result.
func TestRunnerDiesWithDagger(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("only Linux kills a child when its parent dies")
	}
	dir, flow := writeSpin(t)
	cmd := daggerCommand(t, "run", "--store", filepath.Join(dir, "store"), "--executor", subprocess, flow)
	startUntil(t, cmd, "spin| spinning")
	children, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid))
	if err != nil {
		t.Skipf("cannot list dagger's children: %v", err)
	}
	var runners []int
	for _, f := range strings.Fields(string(children)) {
		pid, err := strconv.Atoi(f)
		if err == nil {
			runners = append(runners, pid)
		}
	}
	if len(runners) == 0 {
		// The runner may have been started by another thread of dagger.
		all, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", cmd.Process.Pid))
		for _, name := range all {
			data, _ := os.ReadFile(name)
			for _, f := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil {
					runners = append(runners, pid)
				}
			}
		}
	}
	if len(runners) == 0 {
		t.Fatal("no dagger step child found")
	}
	cmd.Process.Kill()
	cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range runners {
		for {
			// A zombie reaped by init, or gone: either way, not running.
			stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			if err != nil || strings.Contains(string(stat), ") Z ") {
				break
			}
			if time.Now().After(deadline) {
				syscall.Kill(pid, syscall.SIGKILL)
				t.Fatalf("dagger step %d still runs after dagger was killed", pid)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// TestDeadRun kills dagger run with SIGKILL: the run, recorded running,
// shows dead in runs and inspect, logs --follow ends on it, and fsck
// notes it.
func TestDeadRun(t *testing.T) {
	dir, flow := writeSpin(t)
	st := filepath.Join(dir, "store")
	cmd := daggerCommand(t, "run", "--store", st, flow)
	startUntil(t, cmd, "spin| spinning")
	// While it runs, it is not resumed: that would run it twice.
	if r := runDagger(t, "resume", "--store", st, "latest"); r.code != exitInvalid || !strings.Contains(r.stderr, "is still running, in a dagger process of this machine") {
		t.Errorf("dagger resume of a running run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if r := runDagger(t, "runs", "--store", st, "--status", "dead"); r.code != exitOK || !strings.Contains(r.stdout, " dead ") {
		t.Errorf("dagger runs --status dead: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runDagger(t, "inspect", "--store", st, "latest"); !strings.Contains(r.stdout, "dead") {
		t.Errorf("dagger inspect:\n%s%s", r.stdout, r.stderr)
	}
	done := make(chan result, 1)
	go func() { done <- runDagger(t, "logs", "--store", st, "--follow", "latest") }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("dagger logs --follow of a dead run does not end")
	}
	if r := runDagger(t, "fsck", "--store", st); r.code != exitOK || !strings.Contains(r.stdout, "is recorded running, but its process is gone: dagger resume") {
		t.Errorf("dagger fsck: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestRunNohup hangs up on dagger run started by nohup, which asks that
// a hang-up be ignored: the run goes on.
func TestRunNohup(t *testing.T) {
	nohup, err := osexec.LookPath("nohup")
	if err != nil {
		t.Skip("no nohup here")
	}
	dir, flow := writeSpin(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := daggerCommand(t, "run", "--store", filepath.Join(dir, "store"), flow)
	cmd.Path, cmd.Args = nohup, append([]string{"nohup", exe}, cmd.Args[1:]...)
	stdout := startUntil(t, cmd, "spin| spinning")
	interrupt(t, cmd.Process.Pid, syscall.SIGHUP)
	time.Sleep(300 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("dagger run under nohup ended on a hang-up: %v; stderr:\n%s", err, cmd.Stderr)
	}
	interrupt(t, cmd.Process.Pid, os.Interrupt)
	io.Copy(io.Discard, stdout)
	cmd.Wait()
	if want := regexp.MustCompile(`cancelled: interrupt signal received`); !want.MatchString(fmt.Sprint(cmd.Stderr)) {
		t.Errorf("stderr = %q, want the run cancelled by the interrupt", cmd.Stderr)
	}
}

// TestBrokenPipe runs dagger run with its standard output a pipe that no
// one reads, as in "dagger run flow.star | head -1": dagger is not killed
// by SIGPIPE, the run goes on to its end and is recorded, and dagger says
// it could not write its output.
func TestBrokenPipe(t *testing.T) {
	for _, args := range [][]string{nil, {"--json"}} {
		t.Run(fmt.Sprint(len(args)), func(t *testing.T) {
			st := filepath.Join(t.TempDir(), "store")
			cmd := daggerCommand(t, slices.Concat([]string{"run", "--store", st}, args, []string{"examples/foreach.star"})...)
			cmd.Dir = repoRoot
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			r.Close() // before dagger writes anything
			cmd.Stdout = w
			err = cmd.Run()
			w.Close()
			if code := cmd.ProcessState.ExitCode(); code != exitFailed || !strings.Contains(fmt.Sprint(cmd.Stderr), "broken pipe") {
				t.Fatalf("exit %d (%v), want %d and a broken pipe; stderr:\n%s", code, err, exitFailed, cmd.Stderr)
			}
			if runs := runDagger(t, "runs", "--store", st); !strings.Contains(runs.stdout, " succeeded ") {
				t.Errorf("dagger runs:\n%s", runs.stdout)
			}
		})
	}
}

// TestStep runs dagger step, in a process of its own, on the tasks of a
// flow whose code is in a store: one that succeeds, writing its result to
// a file, and one that is stopped with SIGTERM, which reports itself
// cancelled.
func TestStep(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "spin.star")
	if err := os.WriteFile(path, []byte(spinFlow), 0o666); err != nil {
		t.Fatal(err)
	}
	flow, err := starlark.Load(path, builtins.Standard())
	if err != nil {
		t.Fatal(err)
	}
	// The runner opens the datastore alone: there is no store at all.
	dsURL := "file://" + filepath.ToSlash(filepath.Join(dir, "ds"))
	if err := os.Mkdir(filepath.Join(dir, "ds"), 0o777); err != nil {
		t.Fatal(err)
	}
	ds, err := datastore.Open(t.Context(), dsURL)
	if err != nil {
		t.Fatal(err)
	}
	code, err := ds.Put(t.Context(), flow.Package.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if err := ds.Close(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		dbs, err := filepath.Glob(filepath.Join(dir, "*", "meta.db*"))
		if err != nil || len(dbs) > 0 {
			t.Errorf("dagger step made a database: %v, %v", dbs, err)
		}
	})
	specOf := func(step string) []byte {
		spec, err := json.Marshal(exec.TaskSpec{RunID: "r", Code: string(code), Dir: flow.Dir(), Datastore: dsURL, Step: step, TaskID: step, Attempt: 1})
		if err != nil {
			t.Fatal(err)
		}
		return spec
	}
	readResult := func(path string) exec.TaskResult {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var res exec.TaskResult
		if err := json.Unmarshal(data, &res); err != nil {
			t.Fatalf("%v: %s", err, data)
		}
		return res
	}

	t.Run("succeeded", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "result.json")
		cmd := daggerCommand(t, "step", "--result", out)
		cmd.Stdin = strings.NewReader(string(specOf("start")))
		if err := cmd.Run(); err != nil {
			t.Fatalf("%v; stderr:\n%s", err, cmd.Stderr)
		}
		if res := readResult(out); !res.OK || !slices.Equal(res.Next, []string{"spin"}) {
			t.Errorf("result = %+v, want OK and next spin", res)
		}
	})
	t.Run("result-ref", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "ref.json")
		cmd := daggerCommand(t, "step", "--result-ref", out)
		cmd.Stdin = strings.NewReader(string(specOf("start")))
		if err := cmd.Run(); err != nil {
			t.Fatalf("%v; stderr:\n%s", err, cmd.Stderr)
		}
		ref, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		ds, err := datastore.Open(t.Context(), dsURL)
		if err != nil {
			t.Fatal(err)
		}
		defer ds.Close()
		res, err := exec.FetchResult(t.Context(), ds, ref)
		if err != nil {
			t.Fatal(err)
		}
		if len(ref) > exec.MaxResultRef || !res.OK || !slices.Equal(res.Next, []string{"spin"}) {
			t.Errorf("reference %s gives result %+v, want OK and next spin", ref, res)
		}
	})
	t.Run("terminated", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "result.json")
		cmd := daggerCommand(t, "step", "--result", out)
		cmd.Stdin = strings.NewReader(string(specOf("spin")))
		startUntil(t, cmd, "spinning")
		interrupt(t, cmd.Process.Pid, syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("%v; stderr:\n%s", err, cmd.Stderr)
		}
		res := readResult(out)
		if res.OK || !strings.Contains(res.Error, "cancelled: terminated signal received") || !regexp.MustCompile(`spin.star:\d+:\d+: in spin\n`).MatchString(res.Error) {
			t.Errorf("result = %+v, want the task cancelled in spin", res)
		}
	})
}

// daggerCommand returns a command that runs dagger with args in a process
// of its own (see TestMain), with stderr collected in a strings.Builder.
func daggerCommand(t *testing.T, args ...string) *osexec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := osexec.CommandContext(t.Context(), exe, args...)
	cmd.Env = append(os.Environ(), mainEnv+"=1")
	cmd.Stderr = new(strings.Builder)
	return cmd
}

// startUntil starts cmd and reads its stdout until a line is want, and
// returns the rest of stdout.
func startUntil(t *testing.T, cmd *osexec.Cmd, want string) io.Reader {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(stdout)
	for {
		line, err := r.ReadString('\n')
		if line == want+"\n" {
			return r
		}
		if err != nil {
			t.Fatalf("no line %q in the output (%v); stderr:\n%s", want, err, cmd.Stderr)
		}
	}
}
