package dag

import (
	"fmt"
	"slices"
	"strings"

	"go.starlark.net/syntax"
)

// fileNames is what the checks of a file's code know of its names, for a
// flow file or a module alike.
type fileNames struct {
	defs    map[string]*syntax.DefStmt // top-level functions, by their first definition
	globals map[string]syntax.Position // every top-level name, where it is first bound
	refs    map[*syntax.Ident]bool     // identifiers that refer to builtins
	locals  map[*syntax.Ident]bool     // identifiers that refer to local variables
}

// resolve finds the identifiers of f that refer to builtins and to local
// variables, once defs and globals are known.
func (n *fileNames) resolve(f *syntax.File) {
	n.refs, n.locals = builtinRefs(f, func(name string) bool {
		_, ok := n.globals[name]
		return ok
	})
}

// global reports whether id, a use of a name, refers to a top-level name
// of the file.
func (n *fileNames) global(id *syntax.Ident) bool {
	_, ok := n.globals[id.Name]
	return ok && !n.refs[id] && !n.locals[id]
}

// CheckModule makes the checks of a flow's code that apply to a module it
// loads too: top-level names used before they are defined, recursion, and
// reserved attributes of ctx assigned. It reports them as an ErrorList.
func CheckModule(f *syntax.File) error {
	n := &fileNames{defs: make(map[string]*syntax.DefStmt), globals: make(map[string]syntax.Position)}
	bind := func(id *syntax.Ident) {
		if _, ok := n.globals[id.Name]; !ok {
			n.globals[id.Name] = id.NamePos
		}
	}
	for _, stmt := range f.Stmts {
		switch stmt := stmt.(type) {
		case *syntax.DefStmt:
			bind(stmt.Name)
			if _, ok := n.defs[stmt.Name.Name]; !ok {
				n.defs[stmt.Name.Name] = stmt
			}
		case *syntax.LoadStmt:
			for _, id := range stmt.To {
				bind(id)
			}
		case *syntax.AssignStmt:
			for _, id := range boundIdents(stmt.LHS) {
				bind(id)
			}
		}
	}
	n.resolve(f)
	var errs ErrorList
	n.check(f, &errs)
	errs.Sort()
	return errs.Err()
}

// check reports top-level names used before they are defined, recursion,
// and reserved attributes of ctx assigned: what running the file's code
// would fail on, before any step's body runs.
func (n *fileNames) check(f *syntax.File, errs *ErrorList) {
	n.order(f, errs)
	n.recursion(f, errs)
	n.ctxWrites(f, errs)
}

// order reports the top-level names that the top-level code uses before
// the statement that defines them. That code runs once, from top to
// bottom (Starlark allows no if or for at top level), so such a use fails
// every run, as step(train, ...) before def train does.
func (n *fileNames) order(f *syntax.File, errs *ErrorList) {
	bound := make(map[string]bool, len(f.Stmts))
	for _, stmt := range f.Stmts {
		var binds []*syntax.Ident
		switch stmt := stmt.(type) {
		case *syntax.DefStmt:
			binds = []*syntax.Ident{stmt.Name}
		case *syntax.LoadStmt:
			binds = stmt.To
		case *syntax.AssignStmt:
			if stmt.Op == syntax.EQ {
				binds = boundIdents(stmt.LHS)
			}
		}
		runUses(stmt, func(id *syntax.Ident) {
			if !n.global(id) || bound[id.Name] || slices.Contains(binds, id) {
				return
			}
			at := n.globals[id.Name]
			what := "its definition"
			if d, ok := n.defs[id.Name]; ok && d.Name.NamePos == at {
				what = "def " + id.Name
			}
			hint := fmt.Sprintf("top-level code runs from top to bottom: move this statement below line %d", at.Line)
			if call, ok := stmt.(*syntax.ExprStmt); ok && isCallOf(call.X, "step") {
				hint = fmt.Sprintf("top-level code runs from top to bottom: call step(%s, ...) after def %s", id.Name, id.Name)
			}
			errs.addf(position(id.NamePos), hint, "%s is used before %s at line %d", id.Name, what, at.Line)
		})
		for _, id := range binds {
			bound[id.Name] = true
		}
	}
}

func isCallOf(e syntax.Expr, name string) bool {
	call, ok := e.(*syntax.CallExpr)
	if !ok {
		return false
	}
	id, ok := call.Fn.(*syntax.Ident)
	return ok && id.Name == name
}

// runUses calls use for each identifier of a top-level statement that is
// evaluated when the statement runs: not those in the bodies of functions
// and lambdas, which run when called, nor attribute and keyword names.
func runUses(n syntax.Node, use func(*syntax.Ident)) {
	syntax.Walk(n, func(n syntax.Node) bool {
		switch n := n.(type) {
		case *syntax.Ident:
			use(n)
		case *syntax.LoadStmt:
			return false // binds names; its From names are the module's
		case *syntax.DotExpr:
			runUses(n.X, use)
			return false
		case *syntax.CallExpr:
			runUses(n.Fn, use)
			for _, arg := range n.Args {
				_, val := keyword(arg)
				runUses(val, use)
			}
			return false
		case *syntax.DefStmt:
			defaults(n.Params, use)
			return false
		case *syntax.LambdaExpr:
			defaults(n.Params, use)
			return false
		}
		return true
	})
}

// defaults calls use for the identifiers of a function's default values,
// which are evaluated where the function is defined.
func defaults(params []syntax.Expr, use func(*syntax.Ident)) {
	for _, p := range params {
		if b, ok := p.(*syntax.BinaryExpr); ok && b.Op == syntax.EQ {
			runUses(b.Y, use)
		}
	}
}

// A call is a call of a top-level function from the body of another.
type call struct {
	fn  string
	pos syntax.Position
}

// recursion reports every cycle of calls between the file's top-level
// functions, once, at the call that closes it: Starlark stops a function
// called while it runs already. Only the calls in a function's own body
// count, not those in the functions and lambdas it defines, which may run
// after it returns.
func (n *fileNames) recursion(f *syntax.File, errs *ErrorList) {
	var order []string
	calls := make(map[string][]call, len(n.defs))
	for _, stmt := range f.Stmts {
		def, ok := stmt.(*syntax.DefStmt)
		if !ok || n.defs[def.Name.Name] != def {
			continue
		}
		order = append(order, def.Name.Name)
		for _, stmt := range def.Body {
			syntax.Walk(stmt, func(node syntax.Node) bool {
				switch node := node.(type) {
				case *syntax.DefStmt, *syntax.LambdaExpr:
					return false
				case *syntax.CallExpr:
					if id, ok := node.Fn.(*syntax.Ident); ok && n.global(id) && n.defs[id.Name] != nil {
						calls[def.Name.Name] = append(calls[def.Name.Name], call{id.Name, id.NamePos})
					}
				}
				return true
			})
		}
	}
	const (
		white = iota
		grey
		black
	)
	color := make(map[string]int, len(n.defs))
	var path []string
	var visit func(fn string)
	visit = func(fn string) {
		color[fn] = grey
		path = append(path, fn)
		reported := make(map[string]bool) // a cycle is closed by its first call
		for _, c := range calls[fn] {
			switch color[c.fn] {
			case white:
				visit(c.fn)
			case grey:
				if reported[c.fn] {
					continue
				}
				reported[c.fn] = true
				cycle := append(slices.Clone(path[slices.Index(path, c.fn):]), c.fn)
				errs.addf(position(c.pos), "compute it with a for loop instead",
					"recursion: %s; Starlark does not allow a function to call itself, directly or through others", strings.Join(cycle, " -> "))
			}
		}
		path = path[:len(path)-1]
		color[fn] = black
	}
	for _, fn := range order {
		if color[fn] == white {
			visit(fn)
		}
	}
}

// ctxWrites reports assignments to the reserved attributes of a local
// variable called ctx, as a step's first parameter is, and to anything
// reached from a local called inputs, the read-only inputs of a join: the
// assignment fails when it runs.
func (n *fileNames) ctxWrites(f *syntax.File, errs *ErrorList) {
	syntax.Walk(f, func(node syntax.Node) bool {
		a, ok := node.(*syntax.AssignStmt)
		if !ok {
			return true
		}
		for _, lhs := range assigned(a.LHS) {
			dot, ok := lhs.(*syntax.DotExpr)
			if !ok {
				continue
			}
			root, direct := rootIdent(dot.X)
			switch {
			case root == nil || !n.locals[root]:
			case root.Name == "ctx" && direct && isReserved(dot.Name.Name):
				start, _ := dot.Span()
				errs.addf(position(start), "the reserved attributes of ctx are "+andList(ReservedNames()),
					"ctx.%s is reserved; choose another name for the artifact", dot.Name.Name)
			case root.Name == "inputs" && !direct:
				start, _ := dot.Span()
				errs.addf(position(start), "a join reads its inputs and sets its own artifacts on ctx",
					"the inputs of a join are read-only; set ctx.%s instead", dot.Name.Name)
			}
		}
		return true
	})
}

// assigned returns the expressions an assignment's left-hand side assigns
// to, looking into tuples, lists and parentheses.
func assigned(lhs syntax.Expr) []syntax.Expr {
	switch lhs := lhs.(type) {
	case *syntax.ParenExpr:
		return assigned(lhs.X)
	case *syntax.ListExpr:
		return slices.Concat(mapSlice(lhs.List, assigned)...)
	case *syntax.TupleExpr:
		return slices.Concat(mapSlice(lhs.List, assigned)...)
	}
	return []syntax.Expr{lhs}
}

func mapSlice[T, U any](s []T, f func(T) U) []U {
	out := make([]U, len(s))
	for i, v := range s {
		out[i] = f(v)
	}
	return out
}

// rootIdent returns the variable at the root of an attribute or index
// expression, such as inputs in inputs[0].x, and whether e is that
// variable itself.
func rootIdent(e syntax.Expr) (*syntax.Ident, bool) {
	for direct := true; ; direct = false {
		switch x := e.(type) {
		case *syntax.Ident:
			return x, direct
		case *syntax.DotExpr:
			e = x.X
		case *syntax.IndexExpr:
			e = x.X
		default:
			return nil, false
		}
	}
}

// andList joins words as a list in prose: "a, b and c".
func andList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " and " + words[len(words)-1]
}
