package builtins

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"go.starlark.net/starlark"

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

// A Context is the ctx value a step receives: the artifacts that reach
// the task, loaded on first use, and the reserved attributes input, index,
// run_id, step, task_id and attempt.
type Context struct {
	info      TaskInfo
	load      Loader
	artifacts map[string]*artifact
	conflicts map[string]string // name -> which inputs disagree, at a join
	input     *artifact
	readOnly  bool
}

type artifact struct {
	hash  string         // as stored; "" for a value the task set
	value starlark.Value // nil until read or set
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
// hash). conflicts names the artifacts a join's inputs disagree on, with
// how they do; reading one before setting it is an error.
func NewContext(info TaskInfo, artifacts map[string]string, conflicts map[string]string, load Loader) *Context {
	c := &Context{info: info, load: load, artifacts: make(map[string]*artifact, len(artifacts)), conflicts: conflicts}
	for name, h := range artifacts {
		c.artifacts[name] = &artifact{hash: h}
	}
	if info.Input != "" {
		c.input = &artifact{hash: info.Input}
	}
	return c
}

// ReadOnly returns c as the inputs of a join see it: artifacts can be read,
// not set.
func (c *Context) ReadOnly() *Context {
	c.readOnly = true
	return c
}

// Touched returns the values of the artifacts the task read or set, which
// must be saved again since the task may have changed them, and the hashes
// of the others, which it did not.
func (c *Context) Touched() (values map[string]starlark.Value, unchanged map[string]string) {
	values = make(map[string]starlark.Value)
	unchanged = make(map[string]string)
	for name, a := range c.artifacts {
		if a.value != nil {
			values[name] = a.value
		} else {
			unchanged[name] = a.hash
		}
	}
	return values, unchanged
}

func (c *Context) String() string        { return fmt.Sprintf("<ctx of %s>", c.info.TaskID) }
func (c *Context) Type() string          { return "ctx" }
func (c *Context) Freeze()               {} // artifacts stay the task's to change
func (c *Context) Truth() starlark.Bool  { return starlark.True }
func (c *Context) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: ctx") }

// Attr returns a reserved attribute or an artifact.
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
			return nil, fmt.Errorf("ctx.%s is set only in a step that runs once per element of a foreach", name)
		}
		if name == "index" {
			return starlark.MakeInt(c.info.Index), nil
		}
		return c.input.get(c.load, c.readOnly)
	}
	if why, ok := c.conflicts[name]; ok {
		return nil, fmt.Errorf("artifact %s differs between the inputs of this join (%s); set ctx.%s before reading it, or read it from inputs", name, why, name)
	}
	a, ok := c.artifacts[name]
	if !ok {
		if len(c.artifacts) == 0 {
			return nil, fmt.Errorf("ctx has no artifact %s (no artifacts yet)", name)
		}
		return nil, fmt.Errorf("ctx has no artifact %s; artifacts: %s", name, strings.Join(slices.Sorted(maps.Keys(c.artifacts)), ", "))
	}
	v, err := a.get(c.load, c.readOnly)
	if err != nil {
		return nil, fmt.Errorf("artifact %s: %w", name, err)
	}
	return v, nil
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

// SetField sets an artifact.
func (c *Context) SetField(name string, v starlark.Value) error {
	if c.readOnly {
		return fmt.Errorf("the inputs of a join are read-only; set ctx.%s instead", name)
	}
	if slices.Contains(dag.ReservedNames(), name) {
		return fmt.Errorf("ctx.%s is reserved; choose another name for the artifact", name)
	}
	c.artifacts[name] = &artifact{value: v}
	delete(c.conflicts, name)
	return nil
}

// Inputs is the inputs value of a join: the contexts of the tasks that
// meet there, in branch order for a split and element order for a
// foreach; inputs.<step> is the branch that ends with that step.
type Inputs struct {
	items []*Context
	steps []string // the last step of each branch
	split bool
}

// NewInputs returns the inputs of a join. For a split, steps names the
// step that ends each branch.
func NewInputs(items []*Context, split bool) *Inputs {
	steps := make([]string, len(items))
	for i, c := range items {
		steps[i] = c.info.Step
	}
	return &Inputs{items: items, steps: steps, split: split}
}

func (in *Inputs) String() string        { return fmt.Sprintf("<inputs of %d tasks>", len(in.items)) }
func (in *Inputs) Type() string          { return "inputs" }
func (in *Inputs) Freeze()               {}
func (in *Inputs) Truth() starlark.Bool  { return len(in.items) > 0 }
func (in *Inputs) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: inputs") }
func (in *Inputs) Len() int              { return len(in.items) }
func (in *Inputs) Index(i int) starlark.Value {
	return in.items[i]
}

// Iterate iterates over the inputs in order.
func (in *Inputs) Iterate() starlark.Iterator { return &inputsIterator{in: in} }

// Attr returns the branch that ends with the step called name.
func (in *Inputs) Attr(name string) (starlark.Value, error) {
	if !in.split {
		return nil, fmt.Errorf("inputs.%s: the inputs of a foreach are reached by index, inputs[i]", name)
	}
	if i := slices.Index(in.steps, name); i >= 0 {
		return in.items[i], nil
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
	if it.i >= len(it.in.items) {
		return false
	}
	*p = it.in.items[it.i]
	it.i++
	return true
}

func (it *inputsIterator) Done() {}
