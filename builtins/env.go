package builtins

import (
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/daggerflow/dagger/dag"
)

// envModule returns the module env, with which a step reads the
// variables of the runner's environment it declares, as env=NAME, or all
// of them, as env:
//
//	env.get(name, default = None)   the variable's value, or default when it is unset
//
// A value read is a secret of the task: the lines the task prints, and
// the errors of the programs it runs, show it as "***", since variables
// hold credentials.
func envModule() starlark.Value {
	return &starlarkstruct.Module{Name: "env", Members: starlark.StringDict{
		"get": starlark.NewBuiltin("env.get", envGet),
	}}
}

// envGet is env.get(name, default = None).
func envGet(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		name string
		def  starlark.Value = starlark.None
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name, "default?", &def); err != nil {
		return nil, err
	}
	t, err := Require(thread, b.Name(), dag.Capability{Kind: dag.CapEnv, Arg: name})
	if err != nil {
		return nil, err
	}
	v, ok := t.Getenv(name)
	if !ok {
		return def, nil
	}
	t.Secret(v)
	return starlark.String(v), nil
}
