package builtins

import (
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
)

// TEMPORARY placeholders, replaced by the modules' own files.

func execModule() starlark.Value {
	return &starlarkstruct.Module{Name: "exec", Members: starlark.StringDict{}}
}
func filesModule() starlark.Value {
	return &starlarkstruct.Module{Name: "files", Members: starlark.StringDict{}}
}
func httpModule() starlark.Value {
	return &starlarkstruct.Module{Name: "http", Members: starlark.StringDict{}}
}
func envModule() starlark.Value {
	return &starlarkstruct.Module{Name: "env", Members: starlark.StringDict{}}
}
