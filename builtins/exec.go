package builtins

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/daggerflow/dagger/dag"
)

// execModule returns the module exec, with which a step that declares the
// capability exec runs programs in its task's directory:
//
//	exec.run(args, env = {}, check = True)    runs the program args[0] with the arguments args[1:]
//	exec.sh(script, env = {}, check = True)   runs script with /bin/sh -c
//
// Both return struct(code = int, output = string): the program's exit
// code, 128+N for a program killed by signal N, and what it wrote to its
// standard output and error, combined, of which the last MiB is kept.
// With check = True, a program that does not exit with code 0 fails the
// step instead, with its last lines of output.
//
// The program's environment is PATH, HOME and TMPDIR, and the variables
// of env, which may replace them: no other variable of the runner's
// environment, where credentials live, reaches it unless the step passes
// it on. PATH is the runner's, or /usr/local/bin:/usr/bin:/bin when it has
// none; HOME and TMPDIR are the task's directory, where the program runs.
// A program name with a slash is a path relative to that directory; one
// without is looked up in the absolute directories of PATH.
//
// What the program writes reaches the task's output as it comes, a line
// at a time, and a line longer than a MiB in pieces of a MiB. A program
// runs in a process group of its own, which ends with the call: when the
// program exits, what it left running in the group is killed; when the
// step times out or the run is cancelled, the group gets SIGTERM, and
// SIGKILL if it has not ended 5 seconds later.
func execModule() starlark.Value {
	return execer{grace: stopGrace, keep: keptOutput}.module()
}

const (
	// stopGrace is how long a stopped program has to exit after SIGTERM.
	stopGrace = 5 * time.Second
	// keptOutput is how much of a program's output exec returns.
	keptOutput = 1 << 20
	// maxLine is the longest line of output printed whole.
	maxLine = 1 << 20
	// errorLines is how many lines of output the error of a failed
	// program shows.
	errorLines = 10
	// defaultPath is the PATH of programs when the runner has none.
	defaultPath = "/usr/local/bin:/usr/bin:/bin"
	// shell is the program exec.sh runs.
	shell = "/bin/sh"
)

// An execer runs the programs of one module exec. Its fields are limits,
// which tests lower.
type execer struct {
	grace time.Duration // between SIGTERM and SIGKILL of a stopped program
	keep  int           // bytes of output returned
}

func (e execer) module() *starlarkstruct.Module {
	return &starlarkstruct.Module{Name: "exec", Members: starlark.StringDict{
		"run": starlark.NewBuiltin("exec.run", e.run),
		"sh":  starlark.NewBuiltin("exec.sh", e.sh),
	}}
}

// run is exec.run(args, env = {}, check = True).
func (e execer) run(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	t, err := Require(thread, b.Name(), dag.Capability{Kind: dag.CapExec})
	if err != nil {
		return nil, err
	}
	var (
		list  starlark.Value
		env   *starlark.Dict
		check = true
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "args", &list, "env?", &env, "check?", &check); err != nil {
		return nil, err
	}
	argv, err := programArgs(list)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return e.program(thread, t, b.Name(), list.String(), argv, env, check)
}

// sh is exec.sh(script, env = {}, check = True).
func (e execer) sh(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	t, err := Require(thread, b.Name(), dag.Capability{Kind: dag.CapExec})
	if err != nil {
		return nil, err
	}
	var (
		script string
		env    *starlark.Dict
		check  = true
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "script", &script, "env?", &env, "check?", &check); err != nil {
		return nil, err
	}
	if _, err := os.Stat(shell); errors.Is(err, fs.ErrNotExist) {
		// As in a pod of an image made of one static program.
		return nil, fmt.Errorf("%s: this environment has no shell (%s): run the program with exec.run([program, args...])", b.Name(), shell)
	}
	return e.program(thread, t, b.Name(), starlark.String(script).String(), []string{shell, "-c", script}, env, check)
}

// programArgs returns the strings of list, the args of exec.run.
func programArgs(list starlark.Value) ([]string, error) {
	seq, ok := list.(starlark.Indexable)
	if _, isString := list.(starlark.String); !ok || isString {
		return nil, fmt.Errorf("args must be a list of strings, such as [\"ls\", \"-l\"], not %s; to run a command line, use exec.sh", a(list.Type()))
	}
	if seq.Len() == 0 {
		return nil, errors.New("args is empty: give the program to run, and its arguments")
	}
	argv := make([]string, seq.Len())
	for i := range argv {
		s, ok := starlark.AsString(seq.Index(i))
		if !ok {
			return nil, fmt.Errorf("args[%d] is %s, not a string: convert it with str()", i, a(seq.Index(i).Type()))
		}
		argv[i] = s
	}
	if argv[0] == "" {
		return nil, errors.New("args[0], the program, is empty")
	}
	return argv, nil
}

// environ returns the environment of a program of task t, which runs in
// dir, as os/exec takes it: PATH, HOME and TMPDIR, then the variables of
// env. It also returns the PATH the program is looked up in.
func environ(t *Task, dir string, env *starlark.Dict) (vars []string, path string, err error) {
	path, ok := t.Getenv("PATH")
	if !ok {
		path = defaultPath
	}
	m := map[string]string{"PATH": path, "HOME": dir, "TMPDIR": dir}
	if env != nil {
		for _, kv := range env.Items() {
			k, ok1 := starlark.AsString(kv[0])
			v, ok2 := starlark.AsString(kv[1])
			switch {
			case !ok1 || !ok2:
				return nil, "", fmt.Errorf("env maps names to strings, not %s to %s: convert the value with str()", kv[0].Type(), kv[1].Type())
			case k == "" || strings.ContainsAny(k, "=\x00"):
				return nil, "", fmt.Errorf("env: %q is not an environment variable's name", k)
			case strings.ContainsRune(v, 0):
				return nil, "", fmt.Errorf("env: the value of %s holds a NUL byte, which no environment can", k)
			}
			m[k] = v
		}
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		vars = append(vars, k+"="+m[k])
	}
	return vars, m["PATH"], nil
}

// lookPath returns the file of the program name: a name with a slash is
// a path relative to dir, and one without is looked up in the absolute
// directories of path. A relative directory of path is skipped, as
// exec.LookPath refuses one: it would name a program of the task's
// directory.
func lookPath(name, dir, path string) (string, error) {
	if strings.Contains(name, "/") {
		if !filepath.IsAbs(name) {
			name = filepath.Join(dir, name)
		}
		return exec.LookPath(name)
	}
	for _, d := range filepath.SplitList(path) {
		if !filepath.IsAbs(d) {
			continue
		}
		if file, err := exec.LookPath(filepath.Join(d, name)); err == nil {
			return file, nil
		}
	}
	return "", fmt.Errorf("%w (%s)", exec.ErrNotFound, path)
}

// program runs the program argv for task t, as the builtin fn; what is how
// errors name it.
func (e execer) program(thread *starlark.Thread, t *Task, fn, what string, argv []string, env *starlark.Dict, check bool) (starlark.Value, error) {
	what = t.Redact(what) // the error of the step is logged
	dir, err := t.Dir()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", fn, err)
	}
	vars, path, err := environ(t, dir, env)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", fn, err)
	}
	file, err := lookPath(argv[0], dir, path)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", fn, what, err)
	}
	ctx := ThreadContext(thread)
	if ctx.Err() != nil {
		return nil, fmt.Errorf("%s: %s not started: %w", fn, what, context.Cause(ctx))
	}

	// The program writes both its outputs into one pipe, so that they
	// keep the order it wrote them in.
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", fn, what, err)
	}
	defer r.Close()
	cmd := &exec.Cmd{Path: file, Args: argv, Env: vars, Dir: dir, Stdout: w, Stderr: w, SysProcAttr: processGroup()}
	err = cmd.Start()
	w.Close() // the program has its own copy
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", fn, what, err)
	}
	out := &output{keep: e.keep}
	printed := make(chan struct{})
	go func() {
		defer close(printed)
		out.read(r, t.Print)
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	var stopped error // why the program was stopped, if it was
	select {
	case err = <-exited:
	case <-ctx.Done():
		stopped = context.Cause(ctx)
		err = e.stop(cmd.Process.Pid, exited, printed)
	}
	// A program's processes end with it.
	signalGroup(cmd.Process.Pid, syscall.SIGKILL)
	// A process that left the group may still hold the pipe open: stop
	// reading a grace period later. An os.Pipe always has deadlines.
	_ = r.SetReadDeadline(time.Now().Add(e.grace))
	<-printed

	text := out.text()
	if stopped != nil {
		return nil, fmt.Errorf("%s: %s was stopped: %w%s", fn, what, stopped, lastLines(t, text))
	}
	code := 0
	if err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			return nil, fmt.Errorf("%s: %s: %w", fn, what, err)
		}
		code = exit.ExitCode()
		status, _ := exit.Sys().(syscall.WaitStatus)
		if status.Signaled() {
			code = 128 + int(status.Signal())
			if check {
				return nil, fmt.Errorf("%s: %s was killed by signal %d (%v)%s", fn, what, status.Signal(), status.Signal(), lastLines(t, text))
			}
		}
	}
	if code != 0 && check {
		return nil, fmt.Errorf("%s: %s exited with code %d%s", fn, what, code, lastLines(t, text))
	}
	return starlarkstruct.FromStringDict(starlarkstruct.Default, starlark.StringDict{
		"code":   starlark.MakeInt(code),
		"output": starlark.String(text),
	}), nil
}

// stop asks the process group pgid to end, with SIGTERM, and kills it
// if it has not a grace period later: its leader has not exited, or a
// process of it still holds the output open. It returns what the
// leader's Wait returned.
func (e execer) stop(pgid int, exited <-chan error, printed <-chan struct{}) error {
	signalGroup(pgid, syscall.SIGTERM)
	timer := time.NewTimer(e.grace)
	defer timer.Stop()
	var err error
	for exited != nil || printed != nil {
		select {
		case err = <-exited:
			exited = nil
		case <-printed:
			printed = nil
		case <-timer.C:
			signalGroup(pgid, syscall.SIGKILL)
			if exited != nil {
				err = <-exited
			}
			return err
		}
	}
	return err
}

// lastLines returns the last lines of a program's output, text, for an
// error of task t, with the secrets the task read hidden, since the
// step's error is logged.
func lastLines(t *Task, text string) string {
	text = strings.TrimRight(text, "\n")
	if text == "" {
		return ", printing nothing"
	}
	lines := strings.Split(text, "\n")
	lines = lines[max(0, len(lines)-errorLines):]
	return "; its last lines:\n" + t.Redact(strings.Join(lines, "\n"))
}

// An output is what a program writes: its lines, passed on as they come,
// and its last bytes, kept.
type output struct {
	keep int
	tail []byte // the last bytes read, up to twice keep
}

// read reads r to its end, passing each line to print, without its
// newline: a final line without one too, and a line longer than maxLine
// in pieces.
func (o *output) read(r io.Reader, print func(string)) {
	br := bufio.NewReader(r)
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		o.add(chunk)
		line = append(line, chunk...)
		end := len(line) > 0 && line[len(line)-1] == '\n'
		if end || len(line) >= maxLine || err != nil && err != bufio.ErrBufferFull && len(line) > 0 {
			s := strings.TrimSuffix(strings.TrimSuffix(string(line), "\n"), "\r")
			print(s)
			line = line[:0]
		}
		if err != nil && err != bufio.ErrBufferFull {
			return // io.EOF, or the deadline of a pipe held open
		}
	}
}

func (o *output) add(p []byte) {
	o.tail = append(o.tail, p...)
	if len(o.tail) > 2*o.keep {
		o.tail = append(o.tail[:0], o.tail[len(o.tail)-o.keep:]...)
	}
}

// text returns the last bytes read, at most keep, from the start of a
// UTF-8 sequence.
func (o *output) text() string {
	tail := o.tail[max(0, len(o.tail)-o.keep):]
	if len(tail) < len(o.tail) {
		for i := 0; i < utf8.UTFMax && len(tail) > 0 && !utf8.RuneStart(tail[0]); i++ {
			tail = tail[1:]
		}
	}
	return string(tail)
}
