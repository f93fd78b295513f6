package dag

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"go.starlark.net/syntax"
)

// pkg reads a package(include = [...]) call at top level. Its patterns
// must be literal: the files they match are added to the code package
// when the flow is loaded, before any of its code runs.
func (x *extractor) pkg(call *syntax.CallExpr) {
	const hint = `declare the flow's own files as package(include = ["*.py", "data/*.csv"])`
	d := &PackageDecl{Pos: position(callStart(call)), Include: []*Pattern{}}
	if first := x.g.Package; first != nil {
		// Its arguments are still checked, for every problem at once.
		x.errorf(callStart(call), "list every pattern in one package call", "package is already declared at line %d", first.Line)
	} else {
		x.g.Package = d
	}
	var list syntax.Expr
	for _, arg := range call.Args {
		kw, val := keyword(arg)
		start, _ := arg.Span()
		switch kw {
		case "include":
			list = val
		case "", "*":
			x.errorf(start, hint, "package takes its patterns as include = [...]")
		default:
			x.errorf(start, hint, "package has no argument %s", kw)
		}
	}
	if list == nil {
		x.errorf(callStart(call), hint, "package needs the patterns of the files to include")
		return
	}
	l, ok := list.(*syntax.ListExpr)
	if !ok {
		start, _ := list.Span()
		x.errorf(start, hint, "the include of package must be a literal list of patterns, which dagger reads before the flow runs")
		return
	}
	for _, e := range l.List {
		start, _ := e.Span()
		v, _ := x.literal(e)
		s, ok := v.(string)
		if !ok {
			x.errorf(start, hint, "a pattern of package must be a string literal")
			continue
		}
		if err := checkPattern(s); err != nil {
			x.errorf(start, "patterns are relative to the flow's folder, such as \"data/*.csv\"", "%v", err)
			continue
		}
		if i := slices.IndexFunc(d.Include, func(p *Pattern) bool { return p.Pattern == s }); i >= 0 {
			x.errorf(start, "", "pattern %q is already listed at line %d", s, d.Include[i].Line)
			continue
		}
		d.Include = append(d.Include, &Pattern{Pattern: s, Pos: position(start)})
	}
}

// checkPattern reports a pattern of package(include = [...]) that is not
// a valid glob pattern, or that could match files outside the flow's
// folder.
func checkPattern(pattern string) error {
	switch {
	case pattern == "":
		return errors.New("a pattern of package cannot be empty")
	case path.IsAbs(pattern):
		return fmt.Errorf("pattern %q is absolute", pattern)
	case slices.Contains(strings.Split(pattern, "/"), ".."):
		return fmt.Errorf("pattern %q leaves the flow's folder", pattern)
	case pattern == ".":
		return errors.New(`pattern "." is the flow's folder: include its files with "*"`)
	case !fs.ValidPath(pattern):
		return fmt.Errorf("pattern %q is not a clean path: leave out ./, // and a trailing /", pattern)
	}
	if _, err := path.Match(pattern, ""); err != nil {
		return fmt.Errorf("pattern %q is not a valid glob pattern: %w", pattern, err)
	}
	return nil
}
