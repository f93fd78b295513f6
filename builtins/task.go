package builtins

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"

	"go.starlark.net/starlark"

	"github.com/daggerflow/dagger/dag"
	"github.com/daggerflow/dagger/store"
)

// A Task is what the modules of capabilities (exec, files, http, env)
// reach of the task whose step calls them: what the step may do, where it
// works, and where its output goes. The runner sets one on the thread of
// each step with SetThreadTask, and closes it when the step returns. A
// Task must not be copied.
type Task struct {
	// Step is the step the task runs, for error messages.
	Step string
	// Allow are the capabilities the step declared. The run was checked
	// to grant them before it started (dagger.Run refuses a flow that
	// needs more than it grants); what runs a task itself, such as
	// exec.Runner, does not check it again.
	Allow []dag.Capability
	// Print writes a line to the task's output, as print does. Programs
	// the task runs print from goroutines of their own: Print must be
	// safe to call from several at once.
	Print func(line string)
	// Getenv reads a variable of the runner's environment.
	Getenv func(name string) (string, bool)
	// Blobs keeps the content of file artifacts: the run's blobs.
	Blobs store.Blobs
	// Prepare, if set, fills the task's directory when it is made: the
	// flow's own files, for one.
	Prepare func(dir string) error

	mu      sync.Mutex
	dir     string // made on first use
	secrets []string
}

// Dir returns the task's working directory, which it makes on first use:
// a folder of its own, empty but for what Prepare puts there, removed by
// Close. Programs run there, and the paths of files are relative to it.
func (t *Task) Dir() (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dir != "" {
		return t.dir, nil
	}
	dir, err := os.MkdirTemp("", "dagger-task-*")
	if err != nil {
		return "", fmt.Errorf("making the task's directory: %w", err)
	}
	if t.Prepare != nil {
		if err := t.Prepare(dir); err != nil {
			os.RemoveAll(dir)
			return "", fmt.Errorf("filling the task's directory: %w", err)
		}
	}
	t.dir = dir
	return dir, nil
}

// Close removes the task's directory, if it was made.
func (t *Task) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dir == "" {
		return nil
	}
	err := os.RemoveAll(t.dir)
	t.dir = ""
	return err
}

// Allows reports whether the step declared a capability that covers
// need.
func (t *Task) Allows(need dag.Capability) bool {
	return slices.ContainsFunc(t.Allow, func(c dag.Capability) bool { return c.Covers(need) })
}

// Secret records a value the task must not show, such as that of an
// environment variable it read: Redact hides it in the lines the task
// prints.
func (t *Task) Secret(value string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	// Lines are printed, and redacted, one at a time: each line of a
	// value of many is a secret too.
	for _, s := range append(strings.Split(value, "\n"), value) {
		if len(s) >= minSecret && !slices.Contains(t.secrets, s) {
			t.secrets = append(t.secrets, s)
		}
	}
	// The longest first, so that a secret that holds another is hidden
	// whole.
	slices.SortStableFunc(t.secrets, func(a, b string) int { return len(b) - len(a) })
}

// minSecret is the length of the shortest value Secret hides.
const minSecret = 4

// Redact returns line, or any text, with every secret replaced by "***".
// The runner redacts what a task prints and the error it fails with; the
// values of artifacts are the task's, and are not redacted.
func (t *Task) Redact(line string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.secrets {
		line = strings.ReplaceAll(line, s, "***")
	}
	return line
}

const taskKey = "dagger.task"

// SetThreadTask makes t the task of the step that runs on thread.
func SetThreadTask(thread *starlark.Thread, t *Task) { thread.SetLocal(taskKey, t) }

// ThreadTask returns the task of the step running on thread, or nil, as
// for the flow's top-level code.
func ThreadTask(thread *starlark.Thread) *Task {
	t, _ := thread.Local(taskKey).(*Task)
	return t
}

// ErrNoTask is the error of a capability used outside a step.
var ErrNoTask = errors.New("only a step can use it, not the flow's top-level code")

// Require returns the task running on thread if its step declared a
// capability that covers need, and otherwise an error for fn, the
// builtin that needs it, saying how to declare it.
func Require(thread *starlark.Thread, fn string, need dag.Capability) (*Task, error) {
	t := ThreadTask(thread)
	switch {
	case t == nil:
		return nil, fmt.Errorf("%s: %w", fn, ErrNoTask)
	case !t.Allows(need):
		return nil, fmt.Errorf("%s: step %s did not declare the capability %s: add it to the step's options, as step(%s, allow = [%q]), and grant it to the run with --allow %s",
			fn, t.Step, need, t.Step, need.String(), need.String())
	}
	return t, nil
}

// a returns noun with its indefinite article: "an int", "a string".
func a(noun string) string {
	if noun != "" && strings.ContainsRune("aeiou", rune(noun[0])) {
		return "an " + noun
	}
	return "a " + noun
}
