package dag

import (
	"fmt"
	"slices"
	"strings"

	"go.starlark.net/syntax"
)

// fileNames is what the checks of a file's code know of its names, for a
// flow file or a module alike.
//
// A file is checked a top-level statement at a time: what the
// identifiers of a statement refer to is found, then every check of the
// statement made, while its nodes and the maps that say so are in the
// processor's cache. With maps of every identifier of the file, read by
// each check in a walk of the whole file of its own, nearly every lookup
// missed the cache, and checking a flow of thousands of steps took twice
// as long.
type fileNames struct {
	// globals are the top-level names, all in one map: each check of a
	// name that is not a local is one lookup.
	globals map[string]global
	// What the identifiers of the statement being checked refer to.
	locals map[*syntax.Ident]bool // identifiers that refer to local variables
	free   map[*syntax.Ident]bool // the other uses of names: builtins and globals
	scope  scoper
	// What recursion gathers from the statements checked so far.
	callers []string          // functions that call others, in source order
	calls   map[string][]call // by calling function
}

// A global is a top-level name of a file.
type global struct {
	at  syntax.Position // where it is first bound
	def *syntax.DefStmt // its first definition as a function, if any
	// set is the first top-level statement, by index, that binds it by
	// def, load or =, which order takes for its definition; -1 if none.
	set int
}

func newFileNames(n int) fileNames {
	return fileNames{globals: make(map[string]global, n), scope: newScoper(), calls: make(map[string][]call)}
}

// bind records that the statement of index i binds id: by def if def is
// not nil, and as order counts a definition if set.
func (n *fileNames) bind(i int, id *syntax.Ident, def *syntax.DefStmt, set bool) {
	g, ok := n.globals[id.Name]
	if !ok {
		g = global{at: id.NamePos, set: -1}
	}
	if g.def == nil {
		g.def = def
	}
	if set && g.set < 0 {
		g.set = i
	}
	n.globals[id.Name] = g
}

// resolve finds what the identifiers of stmt, a top-level statement,
// refer to, once the globals are known: locals and free hold them until
// the next statement.
func (n *fileNames) resolve(stmt syntax.Stmt) {
	n.scope.resolve(stmt)
	n.locals, n.free = n.scope.locals, n.scope.free
}

// ref reports whether id, an identifier of the statement checked, refers
// to a builtin.
func (n *fileNames) ref(id *syntax.Ident) bool {
	if !n.free[id] {
		return false
	}
	_, isGlobal := n.globals[id.Name]
	return !isGlobal
}

// global reports whether id, a use of a name in the statement checked,
// refers to a top-level name of the file, and returns it.
func (n *fileNames) global(id *syntax.Ident) (global, bool) {
	g, ok := n.globals[id.Name]
	return g, ok && !n.locals[id]
}

// def returns the top-level function that id, an identifier of the
// statement checked, refers to, or nil.
func (n *fileNames) def(id *syntax.Ident) *syntax.DefStmt {
	g, ok := n.global(id)
	if !ok {
		return nil
	}
	return g.def
}

// CheckModule makes the checks of a flow's code that apply to a module it
// loads too: top-level names used before they are defined, recursion, and
// reserved attributes of ctx assigned. It reports them as an ErrorList.
func CheckModule(f *syntax.File) error {
	n := newFileNames(len(f.Stmts))
	for i, stmt := range f.Stmts {
		switch stmt := stmt.(type) {
		case *syntax.DefStmt:
			n.bind(i, stmt.Name, stmt, true)
		case *syntax.LoadStmt:
			for _, id := range stmt.To {
				n.bind(i, id, nil, true)
			}
		case *syntax.AssignStmt:
			for _, id := range boundIdents(stmt.LHS) {
				n.bind(i, id, nil, stmt.Op == syntax.EQ)
			}
		}
	}
	var errs ErrorList
	for i, stmt := range f.Stmts {
		n.resolve(stmt)
		n.check(i, stmt, &errs)
	}
	n.recursion(&errs)
	errs.Sort()
	return errs.Err()
}

// check reports what running stmt, the top-level statement of index i,
// would fail on, before any step's body runs: top-level names used before
// they are defined and reserved attributes of ctx assigned. It gathers
// the calls between functions that recursion then reports cycles of.
func (n *fileNames) check(i int, stmt syntax.Stmt, errs *ErrorList) {
	n.order(i, stmt, errs)
	if def, ok := stmt.(*syntax.DefStmt); ok {
		n.callsOf(def)
	}
	n.ctxWrites(stmt, errs)
}

// order reports the top-level names that stmt, the top-level statement of
// index i, uses before the statement that defines them. Top-level code
// runs once, from top to bottom (Starlark allows no if or for at top
// level), so such a use fails every run, as step(train, ...) before def
// train does.
func (n *fileNames) order(i int, stmt syntax.Stmt, errs *ErrorList) {
	runUses(stmt, func(id *syntax.Ident) {
		g, ok := n.global(id)
		if !ok || 0 <= g.set && g.set < i || binds(stmt, id) {
			return
		}
		what := "its definition"
		if g.def != nil && g.def.Name.NamePos == g.at {
			what = "def " + id.Name
		}
		hint := fmt.Sprintf("top-level code runs from top to bottom: move this statement below line %d", g.at.Line)
		if call, ok := stmt.(*syntax.ExprStmt); ok && isCallOf(call.X, "step") {
			hint = fmt.Sprintf("top-level code runs from top to bottom: call step(%s, ...) after def %s", id.Name, id.Name)
		}
		errs.addf(position(id.NamePos), hint, "%s is used before %s at line %d", id.Name, what, g.at.Line)
	})
}

// binds reports whether id is a name that stmt, a top-level statement,
// binds by def, load or =.
func binds(stmt syntax.Stmt, id *syntax.Ident) bool {
	switch stmt := stmt.(type) {
	case *syntax.DefStmt:
		return stmt.Name == id
	case *syntax.LoadStmt:
		return slices.Contains(stmt.To, id)
	case *syntax.AssignStmt:
		return stmt.Op == syntax.EQ && slices.Contains(boundIdents(stmt.LHS), id)
	}
	return false
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

// callsOf gathers the calls of top-level functions in the body of def, a
// top-level function, if it is its first definition. Only the calls in
// its own body count, not those in the functions and lambdas it defines,
// which may run after it returns.
func (n *fileNames) callsOf(def *syntax.DefStmt) {
	var out []call
	for _, stmt := range def.Body {
		syntax.Walk(stmt, func(node syntax.Node) bool {
			switch node := node.(type) {
			case *syntax.DefStmt, *syntax.LambdaExpr:
				return false
			case *syntax.CallExpr:
				if id, ok := node.Fn.(*syntax.Ident); ok && n.def(id) != nil {
					out = append(out, call{id.Name, id.NamePos})
				}
			}
			return true
		})
	}
	// Whether def is the first definition is asked last, of the few
	// functions that call others.
	if len(out) > 0 && n.globals[def.Name.Name].def == def {
		n.callers = append(n.callers, def.Name.Name)
		n.calls[def.Name.Name] = out
	}
}

// recursion reports every cycle of the calls between the file's top-level
// functions that callsOf gathered, once, at the call that closes it:
// Starlark stops a function called while it runs already.
func (n *fileNames) recursion(errs *ErrorList) {
	// The search starts from the functions that call others only: one
	// that calls none, as a step typically is, closes no cycle.
	calls := n.calls
	const (
		white = iota
		grey
		black
	)
	color := make(map[string]int, len(calls))
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
	for _, fn := range n.callers {
		if color[fn] == white {
			visit(fn)
		}
	}
}

// ctxWrites reports assignments in stmt to the reserved attributes of a
// local variable called ctx, as a step's first parameter is, and to
// anything reached from a local called inputs, the read-only inputs of a
// join: the assignment fails when it runs.
func (n *fileNames) ctxWrites(stmt syntax.Stmt, errs *ErrorList) {
	eachStmt([]syntax.Stmt{stmt}, func(stmt syntax.Stmt) bool {
		a, ok := stmt.(*syntax.AssignStmt)
		if !ok {
			return true
		}
		eachAssigned(a.LHS, func(lhs syntax.Expr) {
			dot, ok := lhs.(*syntax.DotExpr)
			if !ok {
				return
			}
			// Whether root is a local is asked last: steps assign
			// ctx.<artifact> again and again, and only a reserved
			// name makes the answer matter.
			root, direct := rootIdent(dot.X)
			switch {
			case root == nil:
			case root.Name == "ctx" && direct && isReserved(dot.Name.Name) && n.locals[root]:
				start, _ := dot.Span()
				errs.addf(position(start), "the reserved attributes of ctx are "+andList(ReservedNames()),
					"ctx.%s is reserved; choose another name for the artifact", dot.Name.Name)
			case root.Name == "inputs" && !direct && n.locals[root]:
				start, _ := dot.Span()
				errs.addf(position(start), "a join reads its inputs and sets its own artifacts on ctx",
					"the inputs of a join are read-only; set ctx.%s instead", dot.Name.Name)
			}
		})
		return true
	})
}

// eachStmt calls f for each statement of stmts and, unless f returns
// false for it, for the statements it holds, nested functions' bodies
// included, in source order. Only statements hold statements (a lambda's
// body is an expression), so eachStmt finds every statement without
// visiting every expression, as syntax.Walk does.
func eachStmt(stmts []syntax.Stmt, f func(syntax.Stmt) bool) {
	for _, stmt := range stmts {
		if !f(stmt) {
			continue
		}
		switch stmt := stmt.(type) {
		case *syntax.DefStmt:
			eachStmt(stmt.Body, f)
		case *syntax.IfStmt:
			eachStmt(stmt.True, f)
			eachStmt(stmt.False, f)
		case *syntax.ForStmt:
			eachStmt(stmt.Body, f)
		case *syntax.WhileStmt:
			eachStmt(stmt.Body, f)
		}
	}
}

// eachAssigned calls f for each expression an assignment's left-hand
// side assigns to, looking into tuples, lists and parentheses.
func eachAssigned(lhs syntax.Expr, f func(syntax.Expr)) {
	switch lhs := lhs.(type) {
	case *syntax.ParenExpr:
		eachAssigned(lhs.X, f)
	case *syntax.ListExpr:
		for _, e := range lhs.List {
			eachAssigned(e, f)
		}
	case *syntax.TupleExpr:
		for _, e := range lhs.List {
			eachAssigned(e, f)
		}
	default:
		f(lhs)
	}
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
