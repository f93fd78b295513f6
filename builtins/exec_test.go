package builtins

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/syntax"

	"github.com/daggerflow/dagger/dag"
)

// A taskTest is a task of step s, as the runner makes one, with the
// modules of capabilities and what the task printed, redacted as the
// runner does.
type taskTest struct {
	task   *Task
	thread *starlark.Thread
	env    starlark.StringDict

	mu      sync.Mutex
	printed []string
}

// newTaskTest returns a task of step s that declares the capabilities
// allow, whose context is ctx, and whose environment is the test's.
func newTaskTest(t *testing.T, ctx context.Context, allow ...string) *taskTest {
	t.Helper()
	tt := &taskTest{task: &Task{Step: "s", Getenv: os.LookupEnv}}
	for _, a := range allow {
		c, err := dag.ParseCapability(a)
		if err != nil {
			t.Fatal(err)
		}
		tt.task.Allow = append(tt.task.Allow, c)
	}
	tt.task.Print = func(line string) {
		line = tt.task.Redact(line)
		tt.mu.Lock()
		defer tt.mu.Unlock()
		tt.printed = append(tt.printed, line)
	}
	t.Cleanup(func() {
		if err := tt.task.Close(); err != nil {
			t.Error(err)
		}
	})
	tt.thread = &starlark.Thread{Name: "s", Print: func(_ *starlark.Thread, msg string) { tt.task.Print(msg) }}
	SetThreadTask(tt.thread, tt.task)
	SetThreadContext(tt.thread, ctx)
	tt.env = starlark.StringDict{
		"exec": execer{grace: stopGrace, keep: keptOutput}.module(),
		"env":  envModule(),
		"http": httpClient{maxBody: maxBody}.module(),
	}
	return tt
}

// eval evaluates the Starlark expression expr in the task.
func (tt *taskTest) eval(expr string) (starlark.Value, error) {
	return starlark.EvalOptions(&syntax.FileOptions{}, tt.thread, "test.star", expr, tt.env)
}

// lines returns what the task printed.
func (tt *taskTest) lines() []string {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	return slices.Clone(tt.printed)
}

// dir returns the task's directory.
func (tt *taskTest) dir(t *testing.T) string {
	t.Helper()
	dir, err := tt.task.Dir()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// field returns the field name of the struct v, as a Go value.
func field(t *testing.T, v starlark.Value, name string) starlark.Value {
	t.Helper()
	s, ok := v.(*starlarkstruct.Struct)
	if !ok {
		t.Fatalf("got a %s, want a struct", v.Type())
	}
	f, err := s.Attr(name)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// checkRefused checks that each expression of exprs fails as a step
// that did not declare the capability need, and as top-level code.
func checkRefused(t *testing.T, declared string, need string, exprs ...string) {
	t.Helper()
	for _, expr := range exprs {
		fn, _, _ := strings.Cut(expr, "(")
		tt := newTaskTest(t, context.Background(), declared)
		_, err := tt.eval(expr)
		want := fn + ": step s did not declare the capability " + need + ": add it to the step's options, as step(s, allow = [\"" + need + "\"]), and grant it to the run with --allow " + need
		if err == nil || err.Error() != want {
			t.Errorf("%s, declaring %s: got error %v, want %s", expr, declared, err, want)
		}

		SetThreadTask(tt.thread, nil)
		if _, err := tt.eval(expr); !errors.Is(err, ErrNoTask) {
			t.Errorf("%s outside a step: got error %v, want %v", expr, err, ErrNoTask)
		}
	}
}

func TestExecRefused(t *testing.T) {
	checkRefused(t, "files", "exec", `exec.run(["true"])`, `exec.sh("true")`)
}

func TestExecRun(t *testing.T) {
	long := strings.Repeat("a", 200_000)
	tests := []struct {
		expr    string
		code    int
		output  string
		printed []string
	}{
		{`exec.run(["echo", "a  b"])`, 0, "a  b\n", []string{"a  b"}},
		{`exec.sh("echo 1; echo 2 >&2; echo 3")`, 0, "1\n2\n3\n", []string{"1", "2", "3"}},
		{`exec.sh("printf 'x\\n\\ny'")`, 0, "x\n\ny", []string{"x", "", "y"}},
		{`exec.sh("echo out; exit 3", check = False)`, 3, "out\n", []string{"out"}},
		{`exec.run(["sh", "-c", "kill -9 $$"], check = False)`, 128 + 9, "", nil},
		{`exec.sh("head -c 200000 /dev/zero | tr '\\0' a")`, 0, long, []string{long}},
		{`exec.run(["true"], check = True)`, 0, "", nil},
	}
	for _, test := range tests {
		tt := newTaskTest(t, context.Background(), "exec")
		v, err := tt.eval(test.expr)
		if err != nil {
			t.Errorf("%s: %v", test.expr, err)
			continue
		}
		if got := field(t, v, "code"); got != starlark.MakeInt(test.code) {
			t.Errorf("%s: code %s, want %d", test.expr, got, test.code)
		}
		if got := field(t, v, "output"); got != starlark.String(test.output) {
			t.Errorf("%s: output %.100q, want %.100q", test.expr, got, test.output)
		}
		if diff := cmp.Diff(test.printed, tt.lines()); diff != "" {
			t.Errorf("%s: printed (-want +got):\n%.1000s", test.expr, diff)
		}
	}
}

func TestExecErrors(t *testing.T) {
	tests := []struct {
		expr string
		want string // the error, or its start when it ends with "…"
	}{
		{`exec.sh("for i in $(seq 12); do echo line$i; done; exit 2")`,
			`exec.sh: "for i in $(seq 12); do echo line$i; done; exit 2" exited with code 2; its last lines:` +
				"\nline3\nline4\nline5\nline6\nline7\nline8\nline9\nline10\nline11\nline12"},
		{`exec.run(["sh", "-c", "exit 1"])`, `exec.run: ["sh", "-c", "exit 1"] exited with code 1, printing nothing`},
		{`exec.sh("echo the secret is s3cr3t; exit 1 # s3cr3t")`, `exec.sh: "echo the secret is ***; exit 1 # ***" exited with code 1; its last lines:` + "\nthe secret is ***"},
		{`exec.sh("echo bye; kill -9 $$")`, "exec.sh: \"echo bye; kill -9 $$\" was killed by signal 9 (killed); its last lines:\nbye"},
		{`exec.run(["nope-not-a-program"])`, `exec.run: ["nope-not-a-program"]: executable file not found in $PATH (…`},
		{`exec.run(["./nope"])`, `exec.run: ["./nope"]: exec: "…`},
		{`exec.run("ls -l")`, `exec.run: args must be a list of strings, such as ["ls", "-l"], not a string; to run a command line, use exec.sh`},
		{`exec.run([])`, `exec.run: args is empty: give the program to run, and its arguments`},
		{`exec.run(["echo", 1])`, `exec.run: args[1] is an int, not a string: convert it with str()`},
		{`exec.run([""])`, `exec.run: args[0], the program, is empty`},
		{`exec.run(["true"], env = {"A": 1})`, `exec.run: env maps names to strings, not string to int: convert the value with str()`},
		{`exec.run(["true"], env = {"A=B": "1"})`, `exec.run: env: "A=B" is not an environment variable's name`},
		{`exec.sh()`, `exec.sh: missing argument for script`},
	}
	for _, test := range tests {
		tt := newTaskTest(t, context.Background(), "exec")
		tt.task.Secret("s3cr3t")
		_, err := tt.eval(test.expr)
		if err == nil {
			t.Errorf("%s: no error, want %s", test.expr, test.want)
			continue
		}
		if prefix, ok := strings.CutSuffix(test.want, "…"); ok && !strings.HasPrefix(err.Error(), prefix) || !ok && err.Error() != test.want {
			t.Errorf("%s:\ngot error  %s\nwant error %s", test.expr, err, test.want)
		}
	}
}

func TestExecEnvironment(t *testing.T) {
	t.Setenv("DAGGER_TEST_CREDENTIAL", "leaked")
	tests := []struct {
		expr   string
		getenv map[string]string // the runner's environment
		want   []string          // with $DIR for the task's directory
	}{
		{`exec.run(["env"])`, map[string]string{"PATH": "/usr/bin:/bin", "DAGGER_TEST_CREDENTIAL": "leaked"},
			[]string{"HOME=$DIR", "PATH=/usr/bin:/bin", "TMPDIR=$DIR"}},
		{`exec.run(["env"], env = {"MODEL": "small", "HOME": "/elsewhere"})`, map[string]string{"PATH": "/usr/bin:/bin"},
			[]string{"HOME=/elsewhere", "MODEL=small", "PATH=/usr/bin:/bin", "TMPDIR=$DIR"}},
		{`exec.run(["env"])`, nil, []string{"HOME=$DIR", "PATH=" + defaultPath, "TMPDIR=$DIR"}},
		// The program is looked up in the PATH it gets.
		{`exec.run(["env"], env = {"PATH": "/usr/bin"})`, map[string]string{"PATH": "/nowhere"},
			[]string{"HOME=$DIR", "PATH=/usr/bin", "TMPDIR=$DIR"}},
	}
	for _, test := range tests {
		tt := newTaskTest(t, context.Background(), "exec")
		tt.task.Getenv = func(name string) (string, bool) {
			v, ok := test.getenv[name]
			return v, ok
		}
		if _, err := tt.eval(test.expr); err != nil {
			t.Errorf("%s: %v", test.expr, err)
			continue
		}
		want := make([]string, len(test.want))
		for i, kv := range test.want {
			want[i] = strings.ReplaceAll(kv, "$DIR", tt.dir(t))
		}
		if diff := cmp.Diff(want, slices.Sorted(slices.Values(tt.lines()))); diff != "" {
			t.Errorf("%s, with the runner's environment %v: environment (-want +got):\n%s", test.expr, test.getenv, diff)
		}
	}
}

func TestExecDir(t *testing.T) {
	tt := newTaskTest(t, context.Background(), "exec")
	dir := tt.dir(t)
	if err := os.Mkdir(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "hello"), []byte("#!/bin/sh\necho hello from $(pwd)\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, expr := range []string{`exec.sh("echo hello from $(pwd)")`, `exec.run(["bin/hello"])`, `exec.run(["./bin/hello"])`} {
		v, err := tt.eval(expr)
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		want := starlark.String("hello from " + dir + "\n")
		if got := field(t, v, "output"); got != want {
			t.Errorf("%s: output %s, want %s", expr, got, want)
		}
	}
}

func TestExecStop(t *testing.T) {
	const grace = 300 * time.Millisecond
	tests := []struct {
		name   string
		script string // prints "started", when the test cancels the task
		stop   bool   // whether the task is cancelled, or the program exits
		slow   bool   // whether the program lasts the grace period
	}{
		{"exits on SIGTERM", "echo started; sleep 60", true, false},
		{"ignores SIGTERM", `trap "" TERM; echo started; sleep 60`, true, true},
		{"a child ignores SIGTERM", `(trap "" TERM; echo started; sleep 1; echo survived > survived) & wait`, true, true},
		{"a child left running", `(sleep 1; echo survived > survived) & echo started`, false, false},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			t.Parallel()
			cause := errors.New("the run was cancelled")
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			tt := newTaskTest(t, ctx, "exec")
			tt.env["exec"] = execer{grace: grace, keep: keptOutput}.module()
			print := tt.task.Print
			tt.task.Print = func(line string) {
				print(line)
				if line == "started" && test.stop {
					cancel(cause)
				}
			}
			dir := tt.dir(t)
			start := time.Now()
			tt.env["script"] = starlark.String(test.script)
			_, err := tt.eval(`exec.sh(script)`)
			elapsed := time.Since(start)
			switch {
			case !test.stop && err != nil:
				t.Fatal(err)
			case test.stop && (err == nil || !errors.Is(err, cause) || !strings.Contains(err.Error(), " was stopped: the run was cancelled")):
				t.Fatalf("got error %v, want one that says the program was stopped: %v", err, cause)
			case test.slow && elapsed < grace:
				t.Errorf("returned after %s, before the grace period (%s)", elapsed, grace)
			case elapsed > grace+2*time.Second:
				t.Errorf("returned after %s, more than the grace period (%s)", elapsed, grace)
			}
			// No process of the group lives on.
			time.Sleep(time.Second + 200*time.Millisecond - elapsed)
			if _, err := os.Stat(filepath.Join(dir, "survived")); err == nil {
				t.Error("a process the program started survived it")
			}
		})
	}
}

func TestOutput(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		keep    int
		text    string
		printed []int // the lengths of the lines printed
	}{
		{"lines", "ab\ncd\n", 100, "ab\ncd\n", []int{2, 2}},
		{"crlf and a last line", "ab\r\ncd", 100, "ab\r\ncd", []int{2, 2}},
		{"the last bytes", "0123456789\nabc", 5, "9\nabc", []int{10, 3}},
		{"from a rune's start", "aé", 2, "é", []int{3}},
		{"a line too long", strings.Repeat("a", 2*maxLine+10) + "\nb", 4, "aa\nb", []int{maxLine, maxLine, 10, 1}},
		{"much output", strings.Repeat("abcdefghi\n", 100_000), 20, "abcdefghi\nabcdefghi\n", slices.Repeat([]int{9}, 100_000)},
	}
	for _, test := range tests {
		o := &output{keep: test.keep}
		var printed []int
		o.read(strings.NewReader(test.in), func(line string) { printed = append(printed, len(line)) })
		if got := o.text(); got != test.text {
			t.Errorf("%s: kept %q, want %q", test.name, got, test.text)
		}
		if diff := cmp.Diff(test.printed, printed); diff != "" {
			t.Errorf("%s: lengths of the lines printed (-want +got):\n%.1000s", test.name, diff)
		}
	}
}
