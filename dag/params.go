package dag

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"go.starlark.net/syntax"
)

// ReservedNames are the attributes of ctx that are not artifacts.
func ReservedNames() []string {
	names := reservedNames()
	return names[:]
}

// reservedNames is ReservedNames as an array, which a check can hold
// without allocating.
func reservedNames() [6]string {
	return [...]string{"input", "index", "run_id", "step", "task_id", "attempt"}
}

// isReserved reports whether name is one of ReservedNames.
func isReserved(name string) bool {
	names := reservedNames()
	return slices.Contains(names[:], name)
}

// OptionNames are the step options step() accepts.
func OptionNames() []string {
	return []string{"retries", "retry_delay", "timeout", "catch", "image", "cpu", "memory", "gpu", "env", "node_selector", "service_account", "allow", "secrets"}
}

// CheckOption reports whether value, a Go value as Extract reads literals
// (string, int64, float64, bool, []any, map[string]any or nil), is valid
// for the step option called name. The Kubernetes options are held to
// what the API server accepts, so that a flow fails at check, not when
// its pod is refused mid-run; a few values Kubernetes would round are
// refused too (see cpuProblem and memoryProblem).
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
		case isReserved(s):
			problem = fmt.Sprintf("cannot be %q, a reserved attribute of ctx", s)
		}
	case "image":
		problem = imageProblem(value)
	case "service_account":
		problem = serviceAccountProblem(value)
	case "cpu":
		problem = cpuProblem(value)
	case "memory":
		problem = memoryProblem(value)
	case "env", "node_selector":
		problem = dictProblem(name, value)
	case "allow":
		problem = allowProblem(value)
	case "secrets":
		problem = secretsProblem(value)
	default:
		return fmt.Errorf("unknown step option %s", name)
	}
	if problem != "" {
		return fmt.Errorf("option %s %s", name, problem)
	}
	return nil
}

// allowProblem checks an allow option, a list of capabilities.
func allowProblem(value any) string {
	list, ok := value.([]any)
	if !ok {
		return `must be a list of capabilities, such as ["exec", "files", "net=api.example.com", "env=HF_TOKEN"]`
	}
	seen := make(map[string]bool, len(list))
	for _, v := range list {
		s, ok := v.(string)
		if !ok {
			return fmt.Sprintf("must be a list of capability strings, not hold %s", a(typeName(v)))
		}
		if _, err := ParseCapability(s); err != nil {
			return "holds " + err.Error()
		}
		if seen[s] {
			return fmt.Sprintf("names %s twice", s)
		}
		seen[s] = true
	}
	return ""
}

// secretsProblem checks a secrets option, a list of the names of
// Kubernetes Secrets.
func secretsProblem(value any) string {
	list, ok := value.([]any)
	if !ok {
		return `must be a list of the names of Kubernetes Secrets, such as ["db-creds"]`
	}
	for _, v := range list {
		const want = "must be a list of the names of Kubernetes Secrets (lowercase DNS names)"
		s, ok := v.(string)
		switch {
		case !ok:
			return fmt.Sprintf("%s, not hold %s", want, a(typeName(v)))
		case !isDNSSubdomain(s):
			return fmt.Sprintf("%s, not %q", want, s)
		}
	}
	return ""
}

// cpuProblem checks a cpu option, a number of CPUs. Kubernetes refuses a
// precision finer than 1m (a thousandth of a CPU), and so do we.
func cpuProblem(value any) string {
	s, shown, ok := quantityText(value)
	if !ok {
		return `must be a number of CPUs or a quantity string such as "500m" or "1.5"`
	}
	q, err := parseQuantity(s)
	if err != nil {
		return fmt.Sprintf(`must be a number of CPUs or a quantity string such as "500m" or "1.5", not %s (%v)`, shown, err)
	}
	if q.Sign() <= 0 {
		return "must be positive, not " + shown
	}
	switch _, c := q.scaled(-3); c {
	case -1:
		return "must be a whole number of millicores (1m is 0.001 CPU), not " + shown
	case +1:
		return "must be at most 9223372036854775807m, not " + shown
	}
	return ""
}

// memoryProblem checks a memory option, a number of bytes. Kubernetes
// rounds a fraction of a byte up, so that "100m", a tenth of a byte
// written for 100Mi, asks for one byte; we refuse any fraction instead.
// A float is refused even when whole: a float literal need not hold the
// number written, and an int or a string says the same exactly.
func memoryProblem(value any) string {
	const want = `must be a whole number of bytes or a quantity string such as "2Gi"`
	s, shown, ok := quantityText(value)
	if _, isFloat := value.(float64); !ok || isFloat {
		return want
	}
	q, err := parseQuantity(s)
	if err != nil {
		return fmt.Sprintf("%s, not %s (%v)", want, shown, err)
	}
	if q.Sign() <= 0 {
		return "must be positive, not " + shown
	}
	switch _, c := q.scaled(0); c {
	case -1:
		if strings.HasSuffix(s, "m") {
			return fmt.Sprintf("must be a whole number of bytes, not %s: m means thousandths; write Mi or M for mebibytes or megabytes", shown)
		}
		return "must be a whole number of bytes, not " + shown
	case +1:
		return "must be less than 8Ei, not " + shown
	}
	return ""
}

// quantityText returns the text of a cpu or memory option to parse as a
// quantity, and how to show it in a message: a string quoted, a number as
// Starlark prints it.
func quantityText(value any) (s, shown string, ok bool) {
	switch v := value.(type) {
	case string:
		return v, strconv.Quote(v), true
	case int64:
		s = strconv.FormatInt(v, 10)
	case float64:
		s = strconv.FormatFloat(v, 'g', -1, 64)
	default:
		return "", "", false
	}
	return s, s, true
}

// dictProblem checks env and node_selector, dicts of strings to strings
// whose keys (and, for node_selector, values) Kubernetes restricts.
//
// Kubernetes takes names with - and . for environment variables, but a
// shell cannot read them ($MY-VAR is $MY then "-VAR"), so env keys follow
// the C rule POSIX gives for names, which every program can read.
func dictProblem(name string, value any) string {
	m, ok := value.(map[string]any)
	if !ok {
		return "must be a dict of strings to strings"
	}
	const label = "at most 63 letters, digits, -, _ and ., beginning and ending with a letter or digit"
	for _, k := range slices.Sorted(maps.Keys(m)) {
		v, ok := m[k].(string)
		switch {
		case !ok:
			return fmt.Sprintf("must map strings to strings; %q maps to %s", k, a(typeName(m[k])))
		case name == "env" && !isEnvName(k):
			return fmt.Sprintf(`must have variable names such as "MODEL_DIR", not %q (letters, digits and _, not beginning with a digit)`, k)
		case name == "env" && strings.ContainsRune(v, 0):
			// No process can be given it: its environment is C strings.
			return fmt.Sprintf("must map %q to a value without a NUL byte", k)
		case name == "node_selector" && !isLabelKey(k):
			return fmt.Sprintf(`must have label keys such as "disktype" or "kubernetes.io/arch", not %q (a lowercase DNS subdomain and / if any, then %s)`, k, label)
		case name == "node_selector" && v != "" && !isLabelName(v):
			return fmt.Sprintf(`must map %q to a label value such as "ssd" or "", not %q (%s)`, k, v, label)
		}
	}
	return ""
}

// serviceAccountProblem checks a service_account option, which names a
// Kubernetes object, so is a DNS subdomain.
func serviceAccountProblem(value any) string {
	s, ok := value.(string)
	switch {
	case !ok || s == "":
		return "must be a non-empty string"
	case !isDNSSubdomain(s):
		return fmt.Sprintf(`must be a service account name such as "trainer", not %q (at most 253 lowercase letters, digits, - and ., with a letter or digit at both ends and around each .)`, s)
	}
	return ""
}

// imageProblem checks an image option, a reference such as
// "ghcr.io/org/app:1.0@sha256:…".
func imageProblem(value any) string {
	s, ok := value.(string)
	if !ok || s == "" {
		return "must be a non-empty string"
	}
	if why := imageRefProblem(s); why != "" {
		return fmt.Sprintf(`must be an image reference such as "python:3.12" or "ghcr.io/org/app:1.0", not %q (%s)`, s, why)
	}
	return ""
}

// imageRefProblem says what is wrong with an image reference, or "".
// Kubernetes leaves references to the container runtime, which refuses
// what docker's reference grammar refuses; this is a simpler, more
// permissive form of that grammar, enough to catch a typo at check rather
// than when the pod fails to pull.
func imageRefProblem(s string) string {
	if strings.ContainsFunc(s, unicode.IsSpace) {
		return "a reference has no whitespace"
	}
	name, digest, hasDigest := strings.Cut(s, "@")
	if hasDigest && !isDigest(digest) {
		return "a digest is sha256: and 64 lowercase hex digits"
	}
	// A colon after the last / starts the tag; one before it ends the
	// registry's host, as in localhost:5000/app.
	if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
		if !isTag(name[i+1:]) {
			return "a tag is at most 128 letters, digits, _, . and -, not beginning with . or -"
		}
		name = name[:i]
	}
	path := strings.Split(name, "/")
	// A first part that looks like a host is the registry, whose name is
	// not case-sensitive.
	if h := path[0]; len(path) > 1 && (strings.ContainsAny(h, ".:") || h == "localhost") {
		path = path[1:]
	}
	for _, part := range path {
		if !isName(part, "._-", true) {
			return "the repository path is lowercase letters, digits, ., _ and -, with a letter or digit at both ends of each part"
		}
	}
	return ""
}

// isDigest reports whether s is a sha256 digest of an image.
func isDigest(s string) bool {
	hex, ok := strings.CutPrefix(s, "sha256:")
	return ok && len(hex) == 64 && !strings.ContainsFunc(hex, func(r rune) bool {
		return !('0' <= r && r <= '9' || 'a' <= r && r <= 'f')
	})
}

// isTag reports whether s is an image tag, [\w][\w.-]{0,127}.
func isTag(s string) bool {
	return s != "" && len(s) <= 128 && s[0] != '.' && s[0] != '-' &&
		!strings.ContainsFunc(s, func(r rune) bool { return !isWord(r) && r != '.' && r != '-' })
}

// isEnvName reports whether s is a C identifier, [A-Za-z_][A-Za-z0-9_]*.
func isEnvName(s string) bool {
	return s != "" && !('0' <= s[0] && s[0] <= '9') &&
		!strings.ContainsFunc(s, func(r rune) bool { return !isWord(r) })
}

// isWord reports whether r is in \w: an ASCII letter, digit or _.
func isWord(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '_'
}

// isLabelKey reports whether s is a Kubernetes label key: a name, after a
// DNS subdomain and / if any, as in kubernetes.io/arch.
func isLabelKey(s string) bool {
	prefix, name, ok := strings.Cut(s, "/")
	if !ok {
		return isLabelName(s)
	}
	return isDNSSubdomain(prefix) && isLabelName(name)
}

// isLabelName reports whether s is the name of a Kubernetes label key, the
// form a non-empty label value takes too.
func isLabelName(s string) bool {
	return len(s) <= 63 && isName(s, "-_.", false)
}

// isDNSSubdomain reports whether s is a DNS subdomain as RFC 1123 and
// Kubernetes have it, the form of most Kubernetes object names.
func isDNSSubdomain(s string) bool {
	if len(s) > 253 {
		return false
	}
	for part := range strings.SplitSeq(s, ".") {
		if !isName(part, "-", true) {
			return false
		}
	}
	return true
}

// isName reports whether s is ASCII letters and digits, with the
// punctuation in inner anywhere but at either end; lower allows only
// lowercase letters.
func isName(s, inner string, lower bool) bool {
	for i := range len(s) {
		switch c := s[i]; {
		case '0' <= c && c <= '9', 'a' <= c && c <= 'z', !lower && 'A' <= c && c <= 'Z':
		case strings.IndexByte(inner, c) >= 0 && i > 0 && i < len(s)-1:
		default:
			return false
		}
	}
	return s != ""
}

// paramTypes maps the Starlark types a param's type = argument names to
// the param types they give.
var paramTypes = map[string]string{
	"str": "string", "int": "int", "float": "float", "bool": "bool",
	"list": "list", "tuple": "tuple", "dict": "dict",
}

// typeNameFor returns the name that type = takes for the type called
// name, by its Starlark name or by the name a param's type has, or "".
func typeNameFor(name string) string {
	for k, v := range paramTypes {
		if name == k || name == v {
			return k
		}
	}
	return ""
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
	var nameExpr, defExpr, typeExpr syntax.Expr
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
			defExpr = val
		case "type":
			typeExpr = val
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
	x.paramType(p, defExpr, typeExpr)
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

// paramType reads a param's default and type = arguments, either of
// which may be nil, into p, reporting what is wrong with them. The type
// is the one named, else the default's; a tuple default stays a tuple. A
// default of None makes the param optional: its value, when given, is of
// the type named, or any JSON value without one. Without a default, the
// param is required, a string unless a type is named.
func (x *extractor) paramType(p *Param, defExpr, typeExpr syntax.Expr) {
	if typeExpr != nil {
		id, isIdent := typeExpr.(*syntax.Ident)
		t, known := "", false
		if isIdent && x.ref(id) {
			t, known = paramTypes[id.Name]
		}
		if !known {
			vs, _ := typeExpr.Span()
			hint := "write it bare, such as type = int, or leave it out to take the default's type"
			if lit, ok := typeExpr.(*syntax.Literal); ok && lit.Token == syntax.STRING {
				hint = fmt.Sprintf("write the type without quotes, such as type = %s", cmp.Or(typeNameFor(lit.Value.(string)), "int"))
			} else if isIdent && typeNameFor(id.Name) != "" {
				hint = fmt.Sprintf("Starlark calls the type %s: write type = %s", typeNameFor(id.Name), typeNameFor(id.Name))
			}
			x.errorf(vs, hint, "the type of a param must be one of str, int, float, bool, list, tuple and dict, written bare")
		}
		p.Type = t
	}
	if defExpr != nil {
		v, isLiteral := x.literal(defExpr)
		vs, _ := defExpr.Span()
		switch {
		case !isLiteral:
			x.errorf(vs, "leave the default out to make the parameter required",
				"the default of a param must be a literal string, int, float, bool, list, tuple, dict or None")
		case v == nil && p.Type == "":
			p.Type = "json"
		case v != nil:
			t := typeName(v)
			if isTuple(defExpr) {
				t = "tuple"
			}
			if p.Type != "" && t != p.Type {
				x.errorf(vs, "give a default of the param's type, or None",
					"the default is %s, but the param's type is %s", a(t), p.Type)
			}
			p.Type = t
		}
		if isLiteral {
			p.Default, p.HasDefault = v, true
		}
	}
	if p.Type == "" {
		p.Type = "string"
	}
	p.Required = !p.HasDefault
}

// isTuple reports whether e is a tuple literal, in parentheses or not.
func isTuple(e syntax.Expr) bool {
	for {
		switch x := e.(type) {
		case *syntax.ParenExpr:
			e = x.X
		case *syntax.TupleExpr:
			return true
		default:
			return false
		}
	}
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
			h := "the options are retries, retry_delay, timeout, catch, image, cpu, memory, gpu, env, node_selector, service_account, allow and secrets"
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
		o := &Option{Name: kw, Pos: position(start)}
		if v, ok := x.literal(val); ok {
			o.Value, o.Literal = v, true
			if err := CheckOption(kw, v); err != nil {
				vs, _ := val.Span()
				x.errorf(vs, "", "step %s: %v", s.Name, err)
			}
		} else if kw == "allow" {
			// What a flow may do is granted before any of its code runs.
			vs, _ := val.Span()
			x.errorf(vs, `write the capabilities out, such as allow = ["exec", "files"]`, "step %s: option allow must be a literal list, which dagger reads before the flow runs", s.Name)
		}
		s.Options = append(s.Options, o)
		if kw == "allow" {
			s.Allow = allowed(o)
		}
	}
}

// catches reports the steps that catch their failure and cannot: those
// whose transition needs the step to finish. It is the check of step()'s
// catch option made once every step's transition is known, which a
// step() call before the step's def, an error too, does not see.
func (x *extractor) catches() {
	for _, s := range x.g.Steps {
		if s.Next == nil || s.Next.Kind != Foreach && s.Next.Kind != Switch {
			continue
		}
		if o := s.Option("catch"); o != nil {
			x.errs.addf(o.Pos, "catch a failure in the step before, or in the step after",
				"step %s cannot catch its failure: a %s needs the step to finish to know where to go", s.Name, s.Next.Kind)
		}
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
		if !x.ref(e) {
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

// a returns noun with its indefinite article: "an int", "a string".
func a(noun string) string {
	if noun != "" && strings.ContainsRune("aeiou", rune(noun[0])) {
		return "an " + noun
	}
	return "a " + noun
}
