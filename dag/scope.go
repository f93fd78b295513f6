package dag

import "go.starlark.net/syntax"

// builtinRefs returns the identifiers of f that refer to a predeclared or
// universal name: uses of a name that no enclosing function, lambda or
// comprehension binds and that is not a global of the file. Extract needs
// it to tell a call of the builtin step from a call of a local variable
// called step. It leaves f as it is: the file is resolved once, where it is
// compiled.
// It also returns the uses of names bound by an enclosing function, lambda
// or comprehension: a local variable called like a step is not the step.
func builtinRefs(f *syntax.File, isGlobal func(string) bool) (refs, locals map[*syntax.Ident]bool) {
	s := &scoper{isGlobal: isGlobal, refs: make(map[*syntax.Ident]bool), locals: make(map[*syntax.Ident]bool)}
	for _, stmt := range f.Stmts {
		s.walk(stmt)
	}
	return s.refs, s.locals
}

type scoper struct {
	isGlobal func(string) bool
	scopes   []map[string]bool
	refs     map[*syntax.Ident]bool
	locals   map[*syntax.Ident]bool
}

func (s *scoper) local(name string) bool {
	for _, sc := range s.scopes {
		if sc[name] {
			return true
		}
	}
	return false
}

func (s *scoper) walk(n syntax.Node) {
	syntax.Walk(n, func(n syntax.Node) bool {
		switch n := n.(type) {
		case *syntax.Ident:
			switch {
			case s.local(n.Name):
				s.locals[n] = true
			case !s.isGlobal(n.Name):
				s.refs[n] = true
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
			scope := make(map[string]bool)
			for _, c := range n.Clauses {
				if fc, ok := c.(*syntax.ForClause); ok {
					for _, id := range boundIdents(fc.Vars) {
						scope[id.Name] = true
					}
				}
			}
			s.scopes = append(s.scopes, scope)
			s.walk(n.Body)
			for _, c := range n.Clauses {
				s.walk(c)
			}
			s.scopes = s.scopes[:len(s.scopes)-1]
			return false
		}
		return true
	})
}

// function walks a def's body or a lambda's expression in a scope of its
// parameters and local variables. Default values belong to the enclosing
// scope.
func (s *scoper) function(params []syntax.Expr, body []syntax.Stmt, expr syntax.Expr) {
	scope := make(map[string]bool)
	for _, p := range params {
		switch p := p.(type) {
		case *syntax.Ident:
			scope[p.Name] = true
		case *syntax.BinaryExpr: // name = default
			s.walk(p.Y)
			if id, ok := p.X.(*syntax.Ident); ok {
				scope[id.Name] = true
			}
		case *syntax.UnaryExpr: // *args, **kwargs
			if id, ok := p.X.(*syntax.Ident); ok {
				scope[id.Name] = true
			}
		}
	}
	for _, stmt := range body {
		localsOf(stmt, scope)
	}
	s.scopes = append(s.scopes, scope)
	for _, stmt := range body {
		s.walk(stmt)
	}
	if expr != nil {
		s.walk(expr)
	}
	s.scopes = s.scopes[:len(s.scopes)-1]
}

// localsOf adds the names stmt binds in its function to scope: a name
// bound anywhere in a function is local to all of it.
func localsOf(stmt syntax.Stmt, scope map[string]bool) {
	switch stmt := stmt.(type) {
	case *syntax.AssignStmt:
		for _, id := range boundIdents(stmt.LHS) {
			scope[id.Name] = true
		}
	case *syntax.DefStmt:
		scope[stmt.Name.Name] = true
	case *syntax.ForStmt:
		for _, id := range boundIdents(stmt.Vars) {
			scope[id.Name] = true
		}
		for _, s := range stmt.Body {
			localsOf(s, scope)
		}
	case *syntax.WhileStmt:
		for _, s := range stmt.Body {
			localsOf(s, scope)
		}
	case *syntax.IfStmt:
		for _, s := range stmt.True {
			localsOf(s, scope)
		}
		for _, s := range stmt.False {
			localsOf(s, scope)
		}
	}
}
