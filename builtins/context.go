package builtins

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/syntax"

	"github.com/daggerflow/dagger/dag"
)

// A Loader fetches the value of an artifact by its content hash.
type Loader func(hash string) (starlark.Value, error)

// TaskInfo is what ctx tells a step about the task running it.
type TaskInfo struct {
	RunID   string
	Step    string
	TaskID  string
	Attempt int
	Index   int    // the element's index in a foreach, -1 elsewhere
	Input   string // hash of the foreach element, "" elsewhere
}

// A Conflict stands for an artifact that the inputs of a join do not
// agree on: two of them hold different values, or one holds it and
// another does not. It is the artifact's value in the join's ctx until the
// join sets it; if the join does not, it is saved as it is and passed on,
// so that a later step that reads the artifact learns why it has no value
// rather than that there is none. Reading it is an error that names both
// inputs and their values.
type Conflict struct {
	Join   string           `json:"join,omitempty"` // task ID of the join; NewContext sets it
	Inputs [2]ConflictInput `json:"inputs"`         // the first input that has the artifact, then one that differs
}

// A ConflictInput is an input of a join on one side of a Conflict.
type ConflictInput struct {
	Label  string `json:"label"` // "branch mean", "element 3"
	TaskID string `json:"task_id"`
	Hash   string `json:"hash,omitempty"` // of its value; "" for an input that does not have the artifact
}

var _ starlark.Value = (*Conflict)(nil)

func (cf *Conflict) String() string {
	a, b := cf.Inputs[0], cf.Inputs[1]
	if b.Hash == "" {
		return fmt.Sprintf("<conflict at join %s: %s has it, %s does not>", cf.Join, a.Label, b.Label)
	}
	return fmt.Sprintf("<conflict at join %s: %s and %s differ>", cf.Join, a.Label, b.Label)
}
func (cf *Conflict) Type() string          { return "conflict" }
func (cf *Conflict) Freeze()               {}
func (cf *Conflict) Truth() starlark.Bool  { return starlark.True }
func (cf *Conflict) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: conflict") }

// A Context is the ctx value a step receives: the artifacts that reach
// the task, loaded on first use, and the reserved attributes input, index,
// run_id, step, task_id and attempt.
type Context struct {
	info      TaskInfo
	load      Loader
	artifacts map[string]*artifact
	input     *artifact
	readOnly  bool

	// See Watch.
	thread *starlark.Thread
	check  func(starlark.Value) error
}

type artifact struct {
	hash  string         // as stored; "" for a value the task set
	value starlark.Value // nil until read or set; a *Conflict for a conflict
	// pos is where the task set the artifact, or first read it if set is
	// false: where to look when its value cannot be saved. Zero if the
	// context is not watched.
	pos syntax.Position
	set bool
}

func (a *artifact) get(load Loader, frozen bool) (starlark.Value, error) {
	if a.value == nil {
		v, err := load(a.hash)
		if err != nil {
			return nil, err
		}
		if frozen {
			// A change to an input's value would be lost: make it an
			// error instead.
			v.Freeze()
		}
		a.value = v
	}
	return a.value, nil
}

var (
	_ starlark.HasSetField = (*Context)(nil)
	_ starlark.Indexable   = (*Inputs)(nil)
	_ starlark.Iterable    = (*Inputs)(nil)
	_ starlark.HasAttrs    = (*Inputs)(nil)
)

// NewContext returns the ctx of a task that starts with artifacts (name ->
// hash). conflicts are the artifacts a join's inputs disagree on; reading
// one before setting it is an error, and one the task does not set is
// saved as a conflict.
func NewContext(info TaskInfo, artifacts map[string]string, conflicts map[string]Conflict, load Loader) *Context {
	c := &Context{info: info, load: load, artifacts: make(map[string]*artifact, len(artifacts)+len(conflicts))}
	for name, h := range artifacts {
		c.artifacts[name] = &artifact{hash: h}
	}
	for name, cf := range conflicts {
		cf.Join = info.TaskID
		c.artifacts[name] = &artifact{value: &cf}
	}
	if info.Input != "" {
		c.input = &artifact{hash: info.Input}
	}
	return c
}

// Watch makes c check each value the task sets as an artifact with check,
// which returns why a value cannot be saved, so that the assignment fails
// where it is written; and note where, by thread's innermost call frame,
// the task sets each artifact or first reads it, for Where.
func (c *Context) Watch(thread *starlark.Thread, check func(starlark.Value) error) {
	c.thread, c.check = thread, check
}

// Where says where the task set artifact name, or read it and so may have
// changed it: "set at flow.star:3:8", "read at flow.star:5:9"; "" if it
// did neither, or c is not watched.
func (c *Context) Where(name string) string {
	a, ok := c.artifacts[name]
	if !ok || !a.pos.IsValid() {
		return ""
	}
	if a.set {
		return "set at " + a.pos.String()
	}
	return "read at " + a.pos.String()
}

// pos returns the position of the Starlark code that is running.
func (c *Context) pos() syntax.Position {
	if c.thread == nil || c.thread.CallStackDepth() == 0 {
		return syntax.Position{}
	}
	return c.thread.CallFrame(0).Pos
}

// ReadOnly returns c as the inputs of a join see it: artifacts can be read,
// not set.
func (c *Context) ReadOnly() *Context {
	c.readOnly = true
	return c
}

// Touched returns the values of the artifacts that must be saved: those
// the task set, and those it read that it may have changed, being mutable
// (a list, say; see Loaded); and the hashes of the others. A value read
// that cannot change, such as a string or bytes, keeps its hash: saving
// it again would cost encoding, hashing and writing it anew for nothing,
// which for a large one is most of the task.
func (c *Context) Touched() (values map[string]starlark.Value, unchanged map[string]string) {
	values = make(map[string]starlark.Value)
	unchanged = make(map[string]string)
	for name, a := range c.artifacts {
		if a.value == nil || a.hash != "" && immutable(a.value) {
			unchanged[name] = a.hash
		} else {
			values[name] = a.value
		}
	}
	return values, unchanged
}

// Loaded returns the hash of artifact name as the task received it if the
// task read it but did not set it, and "" otherwise: a value that
// Touched returns because the task may have changed it is unchanged if its
// encoding still has this hash, and then need not be stored again.
func (c *Context) Loaded(name string) string {
	if a, ok := c.artifacts[name]; ok && a.value != nil {
		return a.hash
	}
	return ""
}

// immutable reports whether v, a value loaded from an artifact, is
// immutable, and all it holds: then no task can have changed it.
func immutable(v starlark.Value) bool {
	switch v := v.(type) {
	case starlark.NoneType, starlark.Bool, starlark.Int, starlark.Float, starlark.String, starlark.Bytes, File, *Conflict:
		return true
	case starlark.Tuple:
		for _, x := range v {
			if !immutable(x) {
				return false
			}
		}
		return true
	case *starlarkstruct.Struct:
		for i := range v.Len() {
			if _, x := v.AttrAt(i); !immutable(x) {
				return false
			}
		}
		return true
	}
	return false
}

func (c *Context) String() string        { return fmt.Sprintf("<ctx of %s>", c.info.TaskID) }
func (c *Context) Type() string          { return "ctx" }
func (c *Context) Freeze()               {} // artifacts stay the task's to change
func (c *Context) Truth() starlark.Bool  { return starlark.True }
func (c *Context) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: ctx") }

// Attr returns a reserved attribute or an artifact. An attribute that does
// not exist is a starlark.NoSuchAttrError, for which getattr gives its
// default; an artifact that cannot be read, or that the inputs of a join
// disagree on, is another error.
func (c *Context) Attr(name string) (starlark.Value, error) {
	switch name {
	case "run_id":
		return starlark.String(c.info.RunID), nil
	case "step":
		return starlark.String(c.info.Step), nil
	case "task_id":
		return starlark.String(c.info.TaskID), nil
	case "attempt":
		return starlark.MakeInt(c.info.Attempt), nil
	case "index", "input":
		if c.input == nil {
			return nil, starlark.NoSuchAttrError(fmt.Sprintf("ctx.%s is set only in a step that runs once per element of a foreach", name))
		}
		if name == "index" {
			return starlark.MakeInt(c.info.Index), nil
		}
		return c.input.get(c.load, c.readOnly)
	}
	a, ok := c.artifacts[name]
	if !ok {
		if len(c.artifacts) == 0 {
			return nil, starlark.NoSuchAttrError(fmt.Sprintf("ctx has no artifact %s (no artifacts yet)", name))
		}
		return nil, starlark.NoSuchAttrError(fmt.Sprintf("ctx has no artifact %s; artifacts: %s", name, strings.Join(slices.Sorted(maps.Keys(c.artifacts)), ", ")))
	}
	if a.value == nil && !c.readOnly {
		a.pos = c.pos()
	}
	v, err := a.get(c.load, c.readOnly)
	if err != nil {
		return nil, fmt.Errorf("artifact %s: %w", name, err)
	}
	if cf, ok := v.(*Conflict); ok {
		return nil, c.conflictError(name, cf)
	}
	return v, nil
}

// conflictError returns the error of reading artifact name, which is cf.
// It loads the values of both sides to show them: only on the way to
// failing.
func (c *Context) conflictError(name string, cf *Conflict) error {
	a, b := cf.Inputs[0], cf.Inputs[1]
	va, pa := c.preview(a.Hash)
	why := fmt.Sprintf("%s (task %s) has %s", a.Label, a.TaskID, pa)
	if b.Hash == "" {
		why += fmt.Sprintf(", %s (task %s) does not have it", b.Label, b.TaskID)
	} else {
		vb, pb := c.preview(b.Hash)
		why += fmt.Sprintf(", %s (task %s) has %s", b.Label, b.TaskID, pb)
		if eq, err := starlark.Equal(va, vb); va != nil && vb != nil && err == nil && eq {
			why += "; they are equal with ==, but a join compares artifacts as saved, where an int differs from a float and a dict's or set's order counts"
		}
	}
	if cf.Join == c.info.TaskID {
		return fmt.Errorf("artifact %s differs between the inputs of this join: %s; set ctx.%s before reading it, or read it from inputs", name, why, name)
	}
	return fmt.Errorf("artifact %s has no value: the inputs of join %s differ on it (%s), and %s did not set it; set ctx.%s in %s, or here before reading it", name, cf.Join, why, cf.Join, name, cf.Join)
}

// previewLen is how many characters of a value a conflict shows.
const previewLen = 40

// preview loads the value of hash h and returns it with the start of its
// repr; nil and why if it cannot be read.
func (c *Context) preview(h string) (starlark.Value, string) {
	v, err := c.load(h)
	if err != nil {
		return nil, fmt.Sprintf("a value that cannot be read (%v)", err)
	}
	repr := v.String()
	if utf8.RuneCountInString(repr) > previewLen {
		repr = string([]rune(repr)[:previewLen-1]) + "…"
	}
	return v, repr
}

// AttrNames lists the reserved attributes and the artifacts.
func (c *Context) AttrNames() []string {
	names := []string{"attempt", "run_id", "step", "task_id"}
	if c.input != nil {
		names = append(names, "index", "input")
	}
	for name := range c.artifacts {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// SetField sets an artifact, if its value can be saved.
func (c *Context) SetField(name string, v starlark.Value) error {
	if c.readOnly {
		return fmt.Errorf("the inputs of a join are read-only; set ctx.%s instead", name)
	}
	if slices.Contains(dag.ReservedNames(), name) {
		return fmt.Errorf("ctx.%s is reserved; choose another name for the artifact", name)
	}
	if c.check != nil {
		if err := c.check(v); err != nil {
			return fmt.Errorf("artifact %s: %w", name, err)
		}
	}
	c.artifacts[name] = &artifact{value: v, pos: c.pos(), set: true}
	return nil
}

// getattr is Starlark's getattr, but for ctx its default stands in only
// for an attribute that does not exist: an artifact the inputs of a join
// disagree on, or whose value cannot be read, is an error however it is
// read.
func getattr(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var object, dflt starlark.Value
	var name string
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 2, &object, &name, &dflt); err != nil {
		return nil, err
	}
	c, ok := object.(*Context)
	if !ok {
		return starlark.Universe["getattr"].(*starlark.Builtin).CallInternal(thread, args, kwargs)
	}
	v, err := c.Attr(name)
	var missing starlark.NoSuchAttrError
	switch {
	case err == nil:
		return v, nil
	case errors.As(err, &missing) && dflt != nil:
		return dflt, nil
	}
	return nil, err // Starlark says it is getattr's
}

// Inputs is the inputs value of a join: the contexts of the tasks that
// meet there, in branch order for a split and element order for a
// foreach; inputs.<step> is the branch that ends with that step.
type Inputs struct {
	n     int
	item  func(i int) *Context
	steps []string // the last step of each branch of a split
	split bool
}

// NewInputs returns the inputs of a join. For a split, steps names the
// step that ends each branch.
func NewInputs(items []*Context, split bool) *Inputs {
	in := NewForeachInputs(len(items), func(i int) *Context { return items[i] })
	if split {
		in.split = true
		in.steps = make([]string, len(items))
		for i, c := range items {
			in.steps[i] = c.info.Step
		}
	}
	return in
}

// NewForeachInputs returns the inputs of the join of a foreach of n
// tasks, whose read-only contexts item makes as the join reaches them: so
// that the join of a wide foreach holds the inputs it reads rather than
// all of them. item may make a new context at each call.
func NewForeachInputs(n int, item func(i int) *Context) *Inputs {
	return &Inputs{n: n, item: item}
}

func (in *Inputs) String() string        { return fmt.Sprintf("<inputs of %d tasks>", in.n) }
func (in *Inputs) Type() string          { return "inputs" }
func (in *Inputs) Freeze()               {}
func (in *Inputs) Truth() starlark.Bool  { return in.n > 0 }
func (in *Inputs) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: inputs") }
func (in *Inputs) Len() int              { return in.n }
func (in *Inputs) Index(i int) starlark.Value {
	return in.item(i)
}

// Iterate iterates over the inputs in order.
func (in *Inputs) Iterate() starlark.Iterator { return &inputsIterator{in: in} }

// Attr returns the branch that ends with the step called name.
func (in *Inputs) Attr(name string) (starlark.Value, error) {
	if !in.split {
		return nil, fmt.Errorf("inputs.%s: the inputs of a foreach are reached by index, inputs[i]", name)
	}
	if i := slices.Index(in.steps, name); i >= 0 {
		return in.item(i), nil
	}
	return nil, fmt.Errorf("inputs has no branch ending in step %s; branches: %s", name, strings.Join(in.steps, ", "))
}

// AttrNames lists the steps that end the branches of a split.
func (in *Inputs) AttrNames() []string {
	if !in.split {
		return nil
	}
	return slices.Sorted(slices.Values(in.steps))
}

type inputsIterator struct {
	in *Inputs
	i  int
}

func (it *inputsIterator) Next(p *starlark.Value) bool {
	if it.i >= it.in.n {
		return false
	}
	*p = it.in.item(it.i)
	it.i++
	return true
}

func (it *inputsIterator) Done() {}
