package dag

import (
	"path/filepath"
	"slices"
	"strings"

	"go.starlark.net/syntax"
)

// FileOptions returns the Starlark dialect flows are written in: the
// standard language with sets. Parsing and execution must use the same.
func FileOptions() *syntax.FileOptions { return &syntax.FileOptions{Set: true} }

// Parse parses the flow in src (a string, []byte or io.Reader; read from
// filename when nil). A syntax error, a NUL byte or invalid UTF-8 is
// returned as an ErrorList.
func Parse(filename string, src any) (*syntax.File, error) {
	data, err := readSource(filename, src)
	if err != nil {
		return nil, err
	}
	if err := checkText(filename, data); err != nil {
		return nil, err
	}
	f, err := FileOptions().Parse(filename, data, 0)
	if err != nil {
		return nil, AsList(err)
	}
	return f, nil
}

// Extract reads the structure of the flow in f from its syntax tree, running
// none of it. It always returns a graph, as complete as the file allows, and
// reports misuse of next_step, param, step and package, bad step signatures and
// top-level names that shadow builtins as an ErrorList. isBuiltin reports
// the names no top-level name may shadow: those of the flow's builtin set
// and of the Starlark universe. Graph-wide rules are Validate's.
func Extract(f *syntax.File, isBuiltin func(name string) bool) (*Graph, error) {
	// The maps are sized for a file of steps, one a statement, so that
	// one of thousands is not rehashed again and again as it grows.
	n := len(f.Stmts)
	x := &extractor{
		isBuiltin: isBuiltin,
		g: &Graph{
			Name:   strings.TrimSuffix(filepath.Base(f.Path), ".star"),
			File:   f.Path,
			Params: []*Param{},
			Steps:  make([]*Step, 0, n),
			Loads:  []*Load{},
			steps:  make(map[string]*Step, n),
		},
		fileNames: newFileNames(n),
		loads:     make(map[string]*Load),
		accepted:  make(map[*syntax.CallExpr]bool),
	}
	if x.g.Name == "" {
		x.errs.addf(Pos{File: f.Path, Line: 1, Col: 1}, "name the file for the flow, such as hello.star",
			"the flow file %s has no name: a flow is named for its file, without .star", filepath.Base(f.Path))
	}
	x.declarations(f)
	// Then every check of a statement is made at once, as fileNames
	// explains. The steps and the functions defined again are met in
	// the order declarations found them.
	steps, duplicates := x.g.Steps, x.duplicates
	for i, stmt := range f.Stmts {
		x.resolve(stmt)
		x.accepted = reset(x.accepted)
		if def, ok := stmt.(*syntax.DefStmt); ok {
			switch {
			case len(duplicates) > 0 && duplicates[0] == def:
				x.ignoreNextSteps(def)
				duplicates = duplicates[1:]
			case len(steps) > 0 && steps[0].Name == def.Name.Name:
				x.transition(steps[0], def)
				steps = steps[1:]
			}
		}
		x.calls(stmt)
		x.check(i, stmt, &x.errs)
	}
	x.catches()
	x.recursion(&x.errs)
	return x.g, x.errs.Err()
}

type extractor struct {
	fileNames
	g         *Graph
	isBuiltin func(string) bool
	errs      ErrorList
	loads     map[string]*Load          // names bound by load
	accepted  map[*syntax.CallExpr]bool // next_step calls of the statement that are where they belong
	// duplicates are functions defined again, whose bodies are ignored.
	duplicates []*syntax.DefStmt
	params     map[string]*Param
	// Slices that calls and transition fill for each statement, kept for
	// the next: allocated again for each, they were most of what those
	// allocated.
	stack    []syntax.Node
	endCalls []*syntax.CallExpr
}

func (x *extractor) errorf(p syntax.Position, hint, format string, args ...any) {
	x.errs.addf(position(p), hint, format, args...)
}

// builtinCall returns the builtin that e calls, if e is such a call.
func (x *extractor) builtinCall(e syntax.Expr) (string, *syntax.CallExpr) {
	call, ok := e.(*syntax.CallExpr)
	if !ok {
		return "", nil
	}
	id, ok := call.Fn.(*syntax.Ident)
	if !ok || !x.ref(id) {
		return "", nil
	}
	return id.Name, call
}

// declarations records the top-level functions, loads and names of f.
func (x *extractor) declarations(f *syntax.File) {
	for i, stmt := range f.Stmts {
		switch stmt := stmt.(type) {
		case *syntax.DefStmt:
			if x.bind(i, stmt.Name, stmt, true) {
				x.duplicates = append(x.duplicates, stmt)
				continue
			}
			if !strings.HasPrefix(stmt.Name.Name, "_") {
				x.step(stmt)
			}
		case *syntax.LoadStmt:
			l := &Load{Module: stmt.ModuleName(), Pos: position(stmt.Load)}
			for _, id := range stmt.To { // the names bound here; From are the module's
				x.bind(i, id, nil, true)
				l.Names = append(l.Names, id.Name)
				x.loads[id.Name] = l
			}
			x.g.Loads = append(x.g.Loads, l)
		case *syntax.AssignStmt:
			for _, id := range boundIdents(stmt.LHS) {
				x.bind(i, id, nil, stmt.Op == syntax.EQ)
			}
		case *syntax.ExprStmt:
			if lit, ok := stmt.X.(*syntax.Literal); ok && i == 0 && lit.Token == syntax.STRING {
				x.g.Doc = docString(lit)
			}
		}
	}
}

// ignoreNextSteps accepts every next_step call in def, whose errors would
// follow from one already reported.
func (x *extractor) ignoreNextSteps(def *syntax.DefStmt) {
	syntax.Walk(def, func(n syntax.Node) bool {
		if e, ok := n.(syntax.Expr); ok {
			if name, call := x.builtinCall(e); name == "next_step" {
				x.accepted[call] = true
			}
		}
		return true
	})
}

// bind records a top-level name as fileNames.bind does, rejecting
// builtins' names and names of functions defined before, which it does
// not bind again and reports true for.
func (x *extractor) bind(i int, id *syntax.Ident, def *syntax.DefStmt, set bool) (defined bool) {
	if x.isBuiltin(id.Name) {
		x.errorf(id.NamePos, "rename it", "%s shadows the builtin %s", id.Name, id.Name)
	}
	if g := x.globals[id.Name]; g.def != nil {
		x.errorf(id.NamePos, "", "%s is already defined as a function at line %d", id.Name, g.def.Name.NamePos.Line)
		return true
	}
	x.fileNames.bind(i, id, def, set)
	return false
}

func boundIdents(lhs syntax.Expr) []*syntax.Ident {
	switch lhs := lhs.(type) {
	case *syntax.Ident:
		return []*syntax.Ident{lhs}
	case *syntax.ParenExpr:
		return boundIdents(lhs.X)
	case *syntax.ListExpr:
		return identsOf(lhs.List)
	case *syntax.TupleExpr:
		return identsOf(lhs.List)
	}
	return nil
}

func identsOf(list []syntax.Expr) []*syntax.Ident {
	var ids []*syntax.Ident
	for _, e := range list {
		ids = append(ids, boundIdents(e)...)
	}
	return ids
}

// docString returns a docstring without the indentation of the code
// around it, as Python's inspect.cleandoc does: the first line is
// stripped, the common indentation of the others removed, and leading and
// trailing blank lines dropped.
func docString(lit *syntax.Literal) string {
	s, _ := lit.Value.(string)
	lines := strings.Split(strings.ReplaceAll(s, "\t", "    "), "\n")
	indent := -1
	for _, line := range lines[1:] {
		if trimmed := strings.TrimLeft(line, " "); trimmed != "" {
			if n := len(line) - len(trimmed); indent < 0 || n < indent {
				indent = n
			}
		}
	}
	lines[0] = strings.TrimSpace(lines[0])
	for i := 1; i < len(lines); i++ {
		if len(lines[i]) >= indent && indent > 0 {
			lines[i] = lines[i][indent:]
		}
		lines[i] = strings.TrimRight(lines[i], " ")
	}
	return strings.Trim(strings.Join(lines, "\n"), "\n")
}

// step records a step definition and checks its signature.
func (x *extractor) step(def *syntax.DefStmt) {
	s := &Step{Name: def.Name.Name, Pos: position(def.Name.NamePos), Params: make([]string, 0, len(def.Params)), Options: []*Option{}, index: len(x.g.Steps)}
	if len(def.Body) > 0 {
		if es, ok := def.Body[0].(*syntax.ExprStmt); ok {
			if lit, ok := es.X.(*syntax.Literal); ok && lit.Token == syntax.STRING {
				s.Doc = docString(lit)
			}
		}
	}
	const hint = "a step is def name(ctx), or def name(ctx, inputs) for a join"
	for i, p := range def.Params {
		id, ok := p.(*syntax.Ident)
		if !ok {
			start, _ := p.Span()
			x.errorf(start, hint, "step %s: parameters take no defaults, * or **", s.Name)
			continue
		}
		want := [...]string{"ctx", "inputs"}
		switch {
		case i >= len(want):
			x.errorf(id.NamePos, hint, "step %s has too many parameters", s.Name)
		case id.Name != want[i]:
			x.errorf(id.NamePos, hint, "step %s: parameter %d must be called %s, not %s", s.Name, i+1, want[i], id.Name)
		}
		s.Params = append(s.Params, id.Name)
	}
	s.Join = len(def.Params) == 2
	x.g.Steps = append(x.g.Steps, s)
	x.g.steps[s.Name] = s
}

// transition finds the next_step calls that end the paths through a step's
// body and builds its transition from them.
func (x *extractor) transition(s *Step, def *syntax.DefStmt) {
	if s.Name == "finish" {
		return // next_step in finish is reported by calls
	}
	if !x.callsNextStep(def.Body) {
		x.errorf(def.Name.NamePos, "end it with next_step(<step>), or call it finish if it ends the flow",
			"step %s never calls next_step", s.Name)
		return
	}
	ends := x.endCalls[:0]
	x.ends(s, def.Body, &ends)
	x.endCalls = ends
	x.returns(s, def.Body)
	if len(ends) == 0 {
		return
	}
	t := &Transition{}
	ok := true
	for _, call := range ends {
		x.accepted[call] = true
		targets, foreach, good := x.nextStepArgs(call)
		if !good {
			ok = false
			continue
		}
		if len(ends) > 1 {
			t.Kind = Switch
			if len(targets) != 1 || foreach != nil {
				x.errorf(callStart(call), "name one step here and split or fan out in that step",
					"each alternative of a switch must be next_step with exactly one step")
				ok = false
				continue
			}
		} else {
			switch {
			case foreach != nil:
				t.Kind = Foreach
				t.Foreach = foreach
			case len(targets) > 1:
				t.Kind = Split
			}
		}
		if t.Targets == nil {
			t.Targets = targets // the one call's, most often: not copied
		} else {
			t.Targets = append(t.Targets, targets...)
		}
	}
	if ok {
		s.Next = t
	}
}

// callsNextStep reports whether next_step is called anywhere in body.
func (x *extractor) callsNextStep(body []syntax.Stmt) bool {
	// Most steps end with the call: the body need not be searched.
	if es, ok := body[len(body)-1].(*syntax.ExprStmt); ok {
		if name, _ := x.builtinCall(es.X); name == "next_step" {
			return true
		}
	}
	found := false
	for _, stmt := range body {
		syntax.Walk(stmt, func(n syntax.Node) bool {
			if id, ok := n.(*syntax.Ident); ok && id.Name == "next_step" && x.ref(id) {
				found = true
			}
			return !found
		})
	}
	return found
}

// ends appends to calls the next_step call that ends each path through
// stmts and reports the paths that end without one. A path may also end in
// fail(...), which ends the task.
func (x *extractor) ends(s *Step, stmts []syntax.Stmt, calls *[]*syntax.CallExpr) {
	const hint = "make next_step(...) the last statement on every path through the step"
	last := stmts[len(stmts)-1]
	switch last := last.(type) {
	case *syntax.ExprStmt:
		switch name, call := x.builtinCall(last.X); name {
		case "next_step":
			*calls = append(*calls, call)
			return
		case "fail":
			return
		}
	case *syntax.IfStmt:
		x.ends(s, last.True, calls)
		if len(last.False) == 0 {
			x.errorf(last.If, "add an else branch that ends in next_step(...)",
				"step %s can end without calling next_step when this condition is false", s.Name)
			return
		}
		x.ends(s, last.False, calls)
		return
	case *syntax.ReturnStmt:
		return // reported by returns
	}
	for _, stmt := range stmts {
		if es, ok := stmt.(*syntax.ExprStmt); ok {
			if name, _ := x.builtinCall(es.X); name == "next_step" {
				return // statements after next_step, reported by calls
			}
		}
	}
	start, _ := last.Span()
	x.errorf(start, hint, "step %s can end here without calling next_step", s.Name)
}

// returns reports every return statement of a step's own body: a step ends
// by calling next_step.
func (x *extractor) returns(s *Step, body []syntax.Stmt) {
	eachStmt(body, func(stmt syntax.Stmt) bool {
		switch stmt := stmt.(type) {
		case *syntax.DefStmt:
			return false
		case *syntax.ReturnStmt:
			x.errorf(stmt.Return, "end the path with next_step(...) instead",
				"step %s returns without calling next_step", s.Name)
		}
		return true
	})
}

// nextStepArgs reads the targets and the foreach argument of a next_step
// call, reporting targets that are not steps of this file.
func (x *extractor) nextStepArgs(call *syntax.CallExpr) (targets []Target, foreach *Pos, ok bool) {
	ok = true
	var foreachPos syntax.Position
	callPos := position(callStart(call))
	targets = make([]Target, 0, len(call.Args))
	for _, arg := range call.Args {
		switch arg := arg.(type) {
		case *syntax.Ident:
			if !x.target(arg) {
				ok = false
				continue
			}
			if slices.ContainsFunc(targets, func(t Target) bool { return t.Step == arg.Name }) {
				x.errorf(arg.NamePos, "", "step %s is named twice in this next_step", arg.Name)
				ok = false
				continue
			}
			targets = append(targets, Target{Step: arg.Name, Pos: position(arg.NamePos), Call: callPos})
		case *syntax.BinaryExpr:
			if kw, isKw := arg.X.(*syntax.Ident); isKw && arg.Op == syntax.EQ {
				if kw.Name != "foreach" {
					x.errorf(kw.NamePos, "next_step takes step names and foreach = <sequence>",
						"next_step has no argument %s", kw.Name)
					ok = false
					continue
				}
				foreachPos = kw.NamePos
				p := position(foreachPos)
				foreach = &p
				continue
			}
			x.notBareName(arg)
			ok = false
		default:
			x.notBareName(arg)
			ok = false
		}
	}
	switch {
	case !ok:
	case len(targets) == 0:
		x.errorf(callStart(call), "name the next step: next_step(<step>)", "next_step names no step")
		ok = false
	case foreach != nil && len(targets) > 1:
		x.errorf(foreachPos, "run the steps one after another, or split inside the foreach's step",
			"foreach takes exactly one step, not %d", len(targets))
		ok = false
	}
	return targets, foreach, ok
}

// callStart returns the position of a call's function, where the call
// starts.
func callStart(call *syntax.CallExpr) syntax.Position {
	start, _ := call.Span()
	return start
}

func (x *extractor) notBareName(arg syntax.Expr) {
	start, _ := arg.Span()
	hint := "write the step's name as it is defined, e.g. next_step(train)"
	if lit, ok := arg.(*syntax.Literal); ok && lit.Token == syntax.STRING {
		hint = "write next_step(" + lit.Value.(string) + "), without quotes"
	}
	x.errorf(start, hint, "next_step takes bare step names")
}

// target reports whether id names a step, explaining why not otherwise.
func (x *extractor) target(id *syntax.Ident) bool {
	if x.locals[id] {
		x.errorf(id.NamePos, "rename the variable, or name the step directly",
			"%s is a local variable here, not a step", id.Name)
		return false
	}
	if _, ok := x.g.steps[id.Name]; ok {
		return true
	}
	g, isGlobal := x.globals[id.Name]
	if g.def != nil {
		x.errorf(id.NamePos, "a step's name does not start with _",
			"%s is a helper function (line %d), not a step", id.Name, g.def.Name.NamePos.Line)
		return false
	}
	if l, ok := x.loads[id.Name]; ok {
		x.errorf(id.NamePos, "only functions defined in the flow file are steps",
			"%s is loaded from %q, not a step", id.Name, l.Module)
		return false
	}
	if isGlobal {
		x.errorf(id.NamePos, "", "%s is a variable (line %d), not a step", id.Name, g.at.Line)
		return false
	}
	hint := ""
	if m := closest(id.Name, x.stepNames()); m != "" {
		hint = "did you mean " + m + "?"
	} else if names := x.stepNames(); len(names) <= 12 {
		hint = "the steps are " + strings.Join(names, ", ")
	}
	x.errorf(id.NamePos, hint, "unknown step %s", id.Name)
	return false
}

func (x *extractor) stepNames() []string {
	names := make([]string, len(x.g.Steps))
	for i, s := range x.g.Steps {
		names[i] = s.Name
	}
	return names
}

// calls checks every use of next_step, param, step and package in stmt, a
// top-level statement, against where it stands, and reads the params,
// step options and package declaration.
func (x *extractor) calls(stmt syntax.Stmt) {
	stack := x.stack[:0] // from stmt to the node walked
	defer func() { x.stack = stack }()
	syntax.Walk(stmt, func(n syntax.Node) bool {
		if n == nil {
			stack = stack[:len(stack)-1]
			return true
		}
		stack = append(stack, n)
		switch n := n.(type) {
		case *syntax.CallExpr:
			switch name, call := x.builtinCall(n); name {
			case "next_step":
				if !x.accepted[call] {
					x.misplaced(call, stack)
				}
			case "param", "step", "package":
				if fn := enclosingFunction(stack); fn != nil {
					start, _ := fn.Span()
					x.errorf(callStart(n), "call it at top level, outside every function",
						"%s is called inside the function at line %d", name, start.Line)
					break
				}
				switch name {
				case "param":
					x.param(call, stack)
				case "step":
					x.options(call)
				case "package":
					x.pkg(call)
				}
			}
		case *syntax.Ident:
			// Extraction sees only direct calls of these: an alias
			// would hide what it declares.
			if n.Name == "next_step" || n.Name == "param" || n.Name == "step" || n.Name == "package" {
				if call, ok := stack[len(stack)-2].(*syntax.CallExpr); (!ok || call.Fn != n) && x.ref(n) {
					x.errorf(n.NamePos, "", "%s must be called, not used as a value", n.Name)
				}
			}
		}
		return true
	})
}

func enclosingFunction(stack []syntax.Node) syntax.Node {
	for i := len(stack) - 1; i >= 0; i-- {
		switch n := stack[i].(type) {
		case *syntax.DefStmt, *syntax.LambdaExpr:
			return n
		}
	}
	return nil
}

// misplaced explains why a next_step call does not end a path of a step.
func (x *extractor) misplaced(call *syntax.CallExpr, stack []syntax.Node) {
	const hint = "call next_step as the last statement of a step's body"
	inLoop := false
	for i := len(stack) - 2; i >= 0; i-- {
		switch n := stack[i].(type) {
		case *syntax.ForStmt, *syntax.WhileStmt, *syntax.Comprehension:
			inLoop = true
		case *syntax.LambdaExpr:
			x.errorf(callStart(call), hint, "next_step is called inside a lambda")
			return
		case *syntax.DefStmt:
			name := n.Name.Name
			switch {
			case i != 0: // not a top-level function
				x.errorf(callStart(call), hint, "next_step is called inside the nested function %s", name)
			case strings.HasPrefix(name, "_"):
				x.errorf(callStart(call), hint, "next_step is called in the helper %s; only steps call it", name)
			case name == "finish":
				x.errorf(callStart(call), "finish ends the flow; remove this call", "finish must not call next_step")
			case inLoop:
				x.errorf(callStart(call), "choose the step after the loop, or use foreach to run a step per element",
					"next_step is called inside a loop")
			default:
				if _, ok := stack[len(stack)-2].(*syntax.ExprStmt); !ok {
					x.errorf(callStart(call), hint, "next_step must be a statement of its own, not part of an expression")
				} else {
					x.errorf(callStart(call), "nothing may follow next_step on its path", "next_step is not the last statement on its path through %s", name)
				}
			}
			return
		}
	}
	x.errorf(callStart(call), hint, "next_step is called at top level")
}

// closest returns the candidate nearest to name when it is close enough to
// be a likely typo, or "".
func closest(name string, candidates []string) string {
	best, bestDist := "", max(1, len(name)/3)+1
	for _, c := range candidates {
		if d := editDistance(name, c); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance of a and b: the
// insertions, deletions, substitutions and transpositions of adjacent bytes
// that turn one into the other.
func editDistance(a, b string) int {
	rows := [3][]int{make([]int, len(b)+1), make([]int, len(b)+1), make([]int, len(b)+1)}
	prev2, prev, cur := rows[0], rows[1], rows[2]
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
