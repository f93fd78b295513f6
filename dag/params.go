package dag

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"go.starlark.net/syntax"
)

// ReservedNames are the attributes of ctx that are not artifacts.
func ReservedNames() []string {
	return []string{"input", "index", "run_id", "step", "task_id", "attempt"}
}

// OptionNames are the step options step() accepts.
func OptionNames() []string {
	return []string{"retries", "retry_delay", "timeout", "catch", "image", "cpu", "memory", "gpu", "env", "node_selector", "service_account"}
}

// CheckOption reports whether value, a Go value as Extract reads literals
// (string, int64, float64, bool, []any, map[string]any or nil), is valid
// for the step option called name.
func CheckOption(name string, value any) error {
	problem := ""
	switch name {
	case "retries", "gpu":
		if n, ok := value.(int64); !ok || n < 0 {
			problem = "must be an int >= 0"
		}
	case "retry_delay", "timeout":
		s, ok := value.(string)
		d, err := time.ParseDuration(s)
		switch {
		case !ok:
			problem = `must be a duration string such as "30s" or "1h30m"`
		case err != nil:
			problem = fmt.Sprintf(`must be a duration such as "30s" or "1h30m", not %q`, s)
		case d < 0, name == "timeout" && d == 0:
			problem = fmt.Sprintf("must be positive, not %q", s)
		}
	case "catch":
		s, ok := value.(string)
		switch {
		case !ok || !IsIdent(s):
			problem = "must be the name of an artifact, a string such as \"error\""
		case slices.Contains(ReservedNames(), s):
			problem = fmt.Sprintf("cannot be %q, a reserved attribute of ctx", s)
		}
	case "image", "service_account":
		if s, ok := value.(string); !ok || s == "" {
			problem = "must be a non-empty string"
		}
	case "cpu", "memory":
		switch v := value.(type) {
		case string:
			if v == "" {
				problem = "must not be empty"
			}
		case int64:
			if v <= 0 {
				problem = "must be positive"
			}
		case float64:
			switch {
			case name == "memory":
				problem = `must be a whole number of bytes or a quantity string such as "2Gi"`
			case v <= 0:
				problem = "must be positive"
			}
		default:
			problem = `must be a number or a Kubernetes quantity string such as "500m" or "2Gi"`
		}
	case "env", "node_selector":
		m, ok := value.(map[string]any)
		if !ok {
			problem = "must be a dict of strings to strings"
			break
		}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if _, ok := m[k].(string); !ok {
				problem = fmt.Sprintf("must map strings to strings; %q maps to a %s", k, typeName(m[k]))
				break
			}
		}
	default:
		return fmt.Errorf("unknown step option %s", name)
	}
	if problem != "" {
		return fmt.Errorf("option %s %s", name, problem)
	}
	return nil
}

// param reads a param(...) call at top level.
func (x *extractor) param(call *syntax.CallExpr, stack []syntax.Node) {
	p := &Param{Pos: position(callStart(call))}
	if a, ok := stack[len(stack)-2].(*syntax.AssignStmt); ok && a.Op == syntax.EQ {
		if id, ok := a.LHS.(*syntax.Ident); ok {
			p.Var = id.Name
		}
	}
	const hint = `declare it as name = param("name", default = value, help = "...")`
	var nameExpr syntax.Expr
	for i, arg := range call.Args {
		kw, val := keyword(arg)
		start, _ := arg.Span()
		switch kw {
		case "":
			if i > 0 {
				x.errorf(start, hint, "param takes one positional argument, the parameter's name")
				continue
			}
			nameExpr = arg
		case "*":
			x.errorf(start, hint, "param takes no *args or **kwargs")
		case "name":
			nameExpr = val
		case "default":
			v, ok := x.literal(val)
			if !ok || v == nil {
				vs, _ := val.Span()
				x.errorf(vs, "leave the default out to make the parameter required",
					"the default of a param must be a literal string, int, float, bool, list or dict")
				continue
			}
			p.Default, p.HasDefault, p.Type = v, true, typeName(v)
		case "help":
			h, ok := x.literal(val)
			if s, isStr := h.(string); ok && isStr {
				p.Help = s
			} else {
				vs, _ := val.Span()
				x.errorf(vs, "", "the help of a param must be a string literal")
			}
		default:
			x.errorf(start, hint, "param has no argument %s", kw)
		}
	}
	if nameExpr == nil {
		x.errorf(callStart(call), hint, "param needs the parameter's name")
		return
	}
	name, _ := x.literal(nameExpr)
	start, _ := nameExpr.Span()
	s, ok := name.(string)
	if !ok || !IsIdent(s) {
		x.errorf(start, hint, "the name of a param must be a string literal made of letters, digits and _")
		return
	}
	p.Name = s
	if !p.HasDefault {
		p.Type, p.Required = "string", true
	}
	if x.params == nil {
		x.params = make(map[string]*Param)
	}
	if first, dup := x.params[s]; dup {
		x.errorf(start, "", "param %s is already declared at line %d", s, first.Line)
		return
	}
	x.params[s] = p
	x.g.Params = append(x.g.Params, p)
}

// options reads a step(fn, **options) call at top level.
func (x *extractor) options(call *syntax.CallExpr) {
	const hint = "configure a step as step(train, retries = 2, timeout = \"1h\")"
	if len(call.Args) == 0 {
		x.errorf(callStart(call), hint, "step needs the step it configures")
		return
	}
	id, ok := call.Args[0].(*syntax.Ident)
	if !ok {
		start, _ := call.Args[0].Span()
		x.errorf(start, hint, "the first argument of step must be a step's bare name")
		return
	}
	if !x.target(id) {
		return
	}
	s := x.g.steps[id.Name]
	for _, arg := range call.Args[1:] {
		kw, val := keyword(arg)
		start, _ := arg.Span()
		switch {
		case kw == "" || kw == "*":
			x.errorf(start, hint, "step takes the step and then options as name = value")
			continue
		case !slices.Contains(OptionNames(), kw):
			h := "the options are retries, retry_delay, timeout, catch, image, cpu, memory, gpu, env, node_selector and service_account"
			if m := closest(kw, OptionNames()); m != "" {
				h = "did you mean " + m + "?"
			}
			x.errorf(start, h, "unknown step option %s", kw)
			continue
		}
		if prev := s.Option(kw); prev != nil {
			x.errorf(start, "", "option %s of step %s is already set at line %d", kw, s.Name, prev.Line)
			continue
		}
		if kw == "catch" && s.Next != nil && (s.Next.Kind == Foreach || s.Next.Kind == Switch) {
			x.errorf(start, "catch a failure in the step before, or in the step after",
				"step %s cannot catch its failure: a %s needs the step to finish to know where to go", s.Name, s.Next.Kind)
		}
		o := &Option{Name: kw, Pos: position(start)}
		if v, ok := x.literal(val); ok {
			o.Value, o.Literal = v, true
			if err := CheckOption(kw, v); err != nil {
				vs, _ := val.Span()
				x.errorf(vs, "", "step %s: %v", s.Name, err)
			}
		}
		s.Options = append(s.Options, o)
	}
}

// keyword splits a call argument into its keyword and value; the keyword is
// "" for a positional argument and "*" for *args and **kwargs.
func keyword(arg syntax.Expr) (string, syntax.Expr) {
	switch arg := arg.(type) {
	case *syntax.BinaryExpr:
		if id, ok := arg.X.(*syntax.Ident); ok && arg.Op == syntax.EQ {
			return id.Name, arg.Y
		}
	case *syntax.UnaryExpr:
		if arg.Op == syntax.STAR || arg.Op == syntax.STARSTAR {
			return "*", arg.X
		}
	}
	return "", arg
}

// literal returns the value of a literal expression: a string, an int that
// fits in 64 bits, a float, True, False, None, or a list, tuple or dict
// (with string keys) of literals.
func (x *extractor) literal(e syntax.Expr) (any, bool) {
	switch e := e.(type) {
	case *syntax.Literal:
		switch v := e.Value.(type) {
		case string:
			if e.Token == syntax.STRING {
				return v, true
			}
		case int64, float64:
			return v, true
		}
	case *syntax.Ident:
		if !x.refs[e] {
			return nil, false // a variable called True
		}
		switch e.Name {
		case "True":
			return true, true
		case "False":
			return false, true
		case "None":
			return nil, true
		}
	case *syntax.UnaryExpr:
		v, ok := x.literal(e.X)
		if !ok || (e.Op != syntax.MINUS && e.Op != syntax.PLUS) {
			return nil, false
		}
		switch n := v.(type) {
		case int64:
			if e.Op == syntax.MINUS {
				return -n, true
			}
			return n, true
		case float64:
			if e.Op == syntax.MINUS {
				return -n, true
			}
			return n, true
		}
	case *syntax.ParenExpr:
		return x.literal(e.X)
	case *syntax.ListExpr:
		return x.literalList(e.List)
	case *syntax.TupleExpr:
		return x.literalList(e.List)
	case *syntax.DictExpr:
		m := make(map[string]any, len(e.List))
		for _, entry := range e.List {
			entry := entry.(*syntax.DictEntry)
			k, ok := x.literal(entry.Key)
			ks, isStr := k.(string)
			if !ok || !isStr {
				return nil, false
			}
			v, ok := x.literal(entry.Value)
			if !ok {
				return nil, false
			}
			m[ks] = v
		}
		return m, true
	}
	return nil, false
}

func (x *extractor) literalList(list []syntax.Expr) (any, bool) {
	vs := make([]any, len(list))
	for i, e := range list {
		v, ok := x.literal(e)
		if !ok {
			return nil, false
		}
		vs[i] = v
	}
	return vs, true
}

// typeName is the Starlark type name of a literal value.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "NoneType"
	case string:
		return "string"
	case int64:
		return "int"
	case float64:
		return "float"
	case bool:
		return "bool"
	case []any:
		return "list"
	case map[string]any:
		return "dict"
	}
	return fmt.Sprintf("%T", v)
}

// IsIdent reports whether s is a Starlark identifier, and not a keyword:
// what param names, catch artifacts and builtins added by embedders must
// be.
func IsIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z':
		case '0' <= r && r <= '9' && i > 0:
		default:
			return false
		}
	}
	// The scanner knows the keywords, and the words Starlark reserves.
	id, err := FileOptions().ParseExpr("", s, 0)
	_, ok := id.(*syntax.Ident)
	return err == nil && ok
}
