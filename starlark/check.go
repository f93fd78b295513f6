package starlark

import (
	"errors"

	"go.starlark.net/resolve"
	sl "go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/daggerflow/dagger/dag"
)

// Check makes every static check of the flow in src (a string, []byte or
// io.Reader; read from filename when nil), running none of its code: it
// parses the file, extracts and validates its graph, and resolves its names
// against the builtins isPredeclared accepts, so that an undefined name is
// found before anything runs. The error, if any, is a dag.ErrorList with
// every problem in source order; the graph and file are returned when the
// file parses, even if it is invalid.
func Check(filename string, src any, isPredeclared func(string) bool) (*dag.Graph, *syntax.File, error) {
	f, err := dag.Parse(filename, src)
	if err != nil {
		return nil, nil, err
	}
	var errs dag.ErrorList
	g, err := dag.Extract(f)
	errs = append(errs, errList(err)...)
	errs = append(errs, errList(dag.Validate(g))...)
	errs = append(errs, errList(resolve.File(f, isPredeclared, sl.Universe.Has))...)
	errs.Sort()
	return g, f, errs.Err()
}

// errList converts the errors of the dag and resolve packages to one list.
func errList(err error) dag.ErrorList {
	if err == nil {
		return nil
	}
	var rl resolve.ErrorList
	if errors.As(err, &rl) {
		l := make(dag.ErrorList, len(rl))
		for i, e := range rl {
			l[i] = &dag.Error{Pos: dag.Pos{File: e.Pos.Filename(), Line: int(e.Pos.Line), Col: int(e.Pos.Col)}, Msg: e.Msg}
		}
		return l
	}
	return dag.AsList(err)
}
