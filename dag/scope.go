package dag

import "go.starlark.net/syntax"

// A scoper finds what the identifiers of a top-level statement refer to:
// the uses of names that an enclosing function, lambda or comprehension
// binds, locals, and the other uses of names, free, which refer to the
// file's globals or to predeclared and universal names. Extract needs
// them to tell a call of the builtin step from a call of a local variable
// called step, and a local variable called like a step from the step. It
// leaves the statement as it is: go.starlark.net's resolver, which Load
// runs at the same time, writes the bindings of its identifiers.
type scoper struct {
	locals map[*syntax.Ident]bool
	free   map[*syntax.Ident]bool
	// The scopes that enclose the node walked are one stack of the names
	// they bind, names, each scope starting where a mark says; bound
	// counts each name's bindings on it. One map for the whole walk, not
	// one a scope: a flow has a function a step, thousands of them.
	names []string
	marks []int
	bound map[string]int
}

func newScoper() scoper {
	return scoper{locals: make(map[*syntax.Ident]bool), free: make(map[*syntax.Ident]bool), bound: make(map[string]int)}
}

// resolve finds what the identifiers of stmt, a top-level statement,
// refer to, in place of those of the statement before.
func (s *scoper) resolve(stmt syntax.Stmt) {
	s.locals, s.free = reset(s.locals), reset(s.free)
	s.walk(stmt)
}

// reset empties m, a map of what one statement holds, for the next. A
// map that grew for a long function is made again rather than cleared:
// clearing a map costs the most it held, at every statement after.
func reset[K comparable, V any](m map[K]V) map[K]V {
	if len(m) > 64 {
		return make(map[K]V)
	}
	clear(m)
	return m
}

func (s *scoper) local(name string) bool { return s.bound[name] > 0 }

// push opens a scope, to which bind adds names.
func (s *scoper) push() { s.marks = append(s.marks, len(s.names)) }

// bind adds name to the innermost scope; a name bound twice is counted
// twice, and unbound twice by pop.
func (s *scoper) bind(name string) {
	s.names = append(s.names, name)
	s.bound[name]++
}

// pop closes the innermost scope.
func (s *scoper) pop() {
	mark := s.marks[len(s.marks)-1]
	s.marks = s.marks[:len(s.marks)-1]
	for _, name := range s.names[mark:] {
		s.bound[name]--
	}
	s.names = s.names[:mark]
}

func (s *scoper) walk(n syntax.Node) {
	syntax.Walk(n, func(n syntax.Node) bool {
		switch n := n.(type) {
		case *syntax.Ident:
			if s.local(n.Name) {
				s.locals[n] = true
			} else {
				s.free[n] = true
			}
		case *syntax.DotExpr:
			s.walk(n.X) // n.Name is an attribute, not a variable
			return false
		case *syntax.CallExpr:
			s.walk(n.Fn)
			for _, arg := range n.Args {
				if kw, ok := arg.(*syntax.BinaryExpr); ok && kw.Op == syntax.EQ {
					arg = kw.Y // kw.X names a parameter
				}
				s.walk(arg)
			}
			return false
		case *syntax.DefStmt:
			s.function(n.Params, n.Body, nil)
			return false
		case *syntax.LambdaExpr:
			s.function(n.Params, nil, n.Body)
			return false
		case *syntax.Comprehension:
			s.push()
			for _, c := range n.Clauses {
				if fc, ok := c.(*syntax.ForClause); ok {
					for _, id := range boundIdents(fc.Vars) {
						s.bind(id.Name)
					}
				}
			}
			s.walk(n.Body)
			for _, c := range n.Clauses {
				s.walk(c)
			}
			s.pop()
			return false
		}
		return true
	})
}

// function walks a def's body or a lambda's expression in a scope of its
// parameters and local variables. Default values belong to the enclosing
// scope.
func (s *scoper) function(params []syntax.Expr, body []syntax.Stmt, expr syntax.Expr) {
	var names []string
	for _, p := range params {
		switch p := p.(type) {
		case *syntax.Ident:
			names = append(names, p.Name)
		case *syntax.BinaryExpr: // name = default
			s.walk(p.Y)
			if id, ok := p.X.(*syntax.Ident); ok {
				names = append(names, id.Name)
			}
		case *syntax.UnaryExpr: // *args, **kwargs
			if id, ok := p.X.(*syntax.Ident); ok {
				names = append(names, id.Name)
			}
		}
	}
	// The defaults are walked before the scope opens.
	s.push()
	for _, name := range names {
		s.bind(name)
	}
	for _, stmt := range body {
		s.localsOf(stmt)
	}
	for _, stmt := range body {
		s.walk(stmt)
	}
	if expr != nil {
		s.walk(expr)
	}
	s.pop()
}

// localsOf binds in the innermost scope the names stmt binds in its
// function: a name bound anywhere in a function is local to all of it.
func (s *scoper) localsOf(stmt syntax.Stmt) {
	switch stmt := stmt.(type) {
	case *syntax.AssignStmt:
		for _, id := range boundIdents(stmt.LHS) {
			s.bind(id.Name)
		}
	case *syntax.DefStmt:
		s.bind(stmt.Name.Name)
	case *syntax.ForStmt:
		for _, id := range boundIdents(stmt.Vars) {
			s.bind(id.Name)
		}
		for _, st := range stmt.Body {
			s.localsOf(st)
		}
	case *syntax.WhileStmt:
		for _, st := range stmt.Body {
			s.localsOf(st)
		}
	case *syntax.IfStmt:
		for _, st := range stmt.True {
			s.localsOf(st)
		}
		for _, st := range stmt.False {
			s.localsOf(st)
		}
	}
}
