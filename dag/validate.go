package dag

import (
	"fmt"
	"slices"
	"strings"
)

// Validate checks the graph as a whole: start and finish exist, the graph
// is acyclic, every step is reachable from start, and fan-outs and joins
// nest properly: every split and foreach is closed by exactly one join
// before finish, which receives every branch, and a step is a join (takes
// inputs) exactly when it closes one. It reports every problem as an
// ErrorList. On the way, it records in each split and foreach step the
// join that closes it (Step.JoinedBy), which the engine needs.
func Validate(g *Graph) error {
	v := &validator{g: g}
	v.link()
	start, finish := g.Step("start"), g.Step("finish")
	top := Pos{File: g.File, Line: 1, Col: 1}
	if start == nil {
		v.errs.addf(top, "a flow begins with def start(ctx): ...", "flow has no start step")
	} else if start.Join {
		v.errs.addf(start.Pos, "declare it def start(ctx)", "start cannot be a join: no step comes before it")
	}
	if finish == nil {
		v.errs.addf(top, "a flow ends with def finish(ctx): ...", "flow has no finish step")
	}
	for _, s := range g.Steps {
		// A pod's Secrets are its environment: only a step granted to
		// read the environment may have them.
		if o := s.Option("secrets"); o != nil && !slices.ContainsFunc(s.Allow, func(c Capability) bool { return c.Kind == CapEnv }) {
			v.errs.addf(o.Pos, `declare allow = ["env"], or env=NAME for the variables it reads, which the run must grant`,
				"step %s: option secrets gives its pods the keys of Secrets as environment variables, and the step does not declare the capability env", s.Name)
		}
	}
	acyclic := v.cycles()
	if start != nil {
		reached := v.reachable(start)
		for _, s := range g.Steps {
			if reached[s.index] && s.Next == nil && s.Name != "finish" {
				// Extract reported why s has no transition; what follows
				// from start is not known.
				return v.done()
			}
		}
		for _, s := range g.Steps {
			if !reached[s.index] {
				v.errs.addf(s.Pos, "name it in a next_step call, or make it a helper by starting its name with _",
					"step %s is unreachable from start", s.Name)
			}
		}
		if acyclic {
			v.nesting(start, reached)
		}
	}
	return v.done()
}

func (v *validator) done() error {
	v.errs.Sort()
	return v.errs.Err()
}

type validator struct {
	g    *Graph
	errs ErrorList
	next [][]*Step // the successors of each step, by its index
}

// successors returns the distinct steps s goes to.
func (v *validator) successors(s *Step) []*Step { return v.next[s.index] }

// link finds the successors of every step, once: the searches of the
// graph ask for them again and again.
func (v *validator) link() {
	n := 0
	for _, s := range v.g.Steps {
		if s.Next != nil {
			n += len(s.Next.Targets)
		}
	}
	all := make([]*Step, 0, n)
	v.next = make([][]*Step, len(v.g.Steps))
	for _, s := range v.g.Steps {
		if s.Next == nil {
			continue
		}
		start := len(all)
		for _, tg := range s.Next.Targets {
			if t := v.g.Step(tg.Step); t != nil && !slices.Contains(all[start:], t) {
				all = append(all, t)
			}
		}
		v.next[s.index] = all[start:len(all):len(all)]
	}
}

// cycles reports every cycle, once, at the transition that closes it, and
// reports whether there was none. The search is iterative: flows may have
// chains of a hundred thousand steps.
func (v *validator) cycles() bool {
	const (
		white = iota
		grey
		black
	)
	color := make([]int, len(v.g.Steps))
	type frame struct {
		s    *Step
		next []*Step
	}
	acyclic := true
	// The path is as long as the longest chain of steps: grown as it
	// goes, a quarter at a time, one of thousands is copied again and
	// again.
	path := make([]frame, 0, len(v.g.Steps))
	for _, root := range v.g.Steps {
		if color[root.index] != white {
			continue
		}
		path = append(path[:0], frame{root, v.successors(root)})
		color[root.index] = grey
		for len(path) > 0 {
			top := &path[len(path)-1]
			if len(top.next) == 0 {
				color[top.s.index] = black
				path = path[:len(path)-1]
				continue
			}
			t := top.next[0]
			top.next = top.next[1:]
			switch color[t.index] {
			case white:
				color[t.index] = grey
				path = append(path, frame{t, v.successors(t)})
			case grey:
				acyclic = false
				var names []string
				for i := len(path) - 1; i >= 0; i-- {
					names = append(names, path[i].s.Name)
					if path[i].s == t {
						break
					}
				}
				slices.Reverse(names)
				names = append(names, t.Name)
				at := top.s.Pos
				for _, tg := range top.s.Next.Targets {
					if tg.Step == t.Name {
						at = tg.Pos
						break
					}
				}
				v.errs.addf(at, "a flow is acyclic; to repeat work, use foreach",
					"cycle: %s", strings.Join(names, " -> "))
			}
		}
	}
	return acyclic
}

func (v *validator) reachable(start *Step) []bool {
	reached := make([]bool, len(v.g.Steps))
	reached[start.index] = true
	// Each step is queued once: the queue is read by index, not
	// shortened, so that it is allocated once, not once a step.
	queue := make([]*Step, 1, len(v.g.Steps))
	queue[0] = start
	for i := 0; i < len(queue); i++ {
		s := queue[i]
		for _, t := range v.successors(s) {
			if !reached[t.index] {
				reached[t.index] = true
				queue = append(queue, t)
			}
		}
	}
	return reached
}

func sum(s []int) int {
	n := 0
	for _, v := range s {
		n += v
	}
	return n
}

// A fan is one branch of an open split or foreach.
type fan struct {
	step   *Step // the step that splits or fans out
	branch int   // which target of a split; 0 for a foreach
}

func (f fan) String() string {
	return fmt.Sprintf("the %s in step %s", f.step.Next.Kind, f.step.Name)
}

// An arrival is a transition into a step, with the fans open along it.
type arrival struct {
	from *Step
	fans []fan
	bad  bool // from a step whose arrivals were wrong, which is reported
}

// nesting checks that fan-outs and joins nest, walking the reachable steps
// in topological order with the stack of fans open at each.
func (v *validator) nesting(start *Step, reached []bool) {
	steps := v.g.Steps
	indegree := make([]int, len(steps))
	for _, s := range steps {
		if reached[s.index] {
			for _, t := range v.successors(s) {
				indegree[t.index]++
			}
		}
	}
	// A step's arrivals are one a step before it: they are slices of
	// one array, each as long as the step's indegree, not one array a
	// step.
	arrivals := make([][]arrival, len(steps))
	all := make([]arrival, sum(indegree))
	for i, n := range indegree {
		arrivals[i], all = all[:0:n], all[n:]
	}
	closedBy := make(map[*Step]*Step) // fanning step -> its join
	// As in reachable, each step is queued once.
	queue := make([]*Step, 1, len(steps))
	queue[0] = start
	for i := 0; i < len(queue); i++ {
		s := queue[i]
		fans, ok := v.fansAt(s, arrivals[s.index], closedBy)
		arrivals[s.index] = nil
		if s.Name == "finish" && ok && len(fans) > 0 {
			v.errs.addf(s.Pos, "close it with a join step, def join(ctx, inputs), before finish",
				"finish is reached inside %s", fans[len(fans)-1])
		}
		// The successors of s are the steps its transition names, in
		// order, each once: the i-th is the branch i of a split.
		for i, t := range v.successors(s) {
			out := fans
			switch s.Next.Kind {
			case Split:
				out = append(slices.Clip(fans), fan{s, i})
			case Foreach:
				out = append(slices.Clip(fans), fan{s, 0})
			}
			arrivals[t.index] = append(arrivals[t.index], arrival{s, out, !ok})
			if indegree[t.index]--; indegree[t.index] == 0 {
				queue = append(queue, t)
			}
		}
	}
}

// fansAt checks the arrivals at s and returns the fans open in s, and
// whether the arrivals were consistent.
func (v *validator) fansAt(s *Step, in []arrival, closedBy map[*Step]*Step) ([]fan, bool) {
	if len(in) == 0 {
		return nil, true
	}
	for _, a := range in {
		if a.bad {
			return a.fans, false
		}
	}
	if !s.Join {
		first := in[0].fans
		for _, a := range in[1:] {
			if slices.Equal(a.fans, first) {
				continue
			}
			if f, ok := branchesMeet(first, a.fans); ok {
				v.errs.addf(s.Pos, fmt.Sprintf("declare it def %s(ctx, inputs)", s.Name),
					"step %s is reached from several branches of %s, so it must be a join", s.Name, f)
			} else {
				v.errs.addf(s.Pos, "an inner split or foreach must be joined before its outer one",
					"step %s is reached both inside and outside %s", s.Name, outermostDiff(first, a.fans))
			}
			return first, false
		}
		return first, true
	}
	for _, a := range in {
		if len(a.fans) == 0 {
			v.errs.addf(s.Pos, fmt.Sprintf("if it does not join branches, declare it def %s(ctx)", s.Name),
				"step %s takes inputs but closes no split or foreach (it follows %s)", s.Name, a.from.Name)
			return nil, false
		}
	}
	top := in[0].fans[len(in[0].fans)-1]
	outer := in[0].fans[:len(in[0].fans)-1]
	branches := make(map[int]bool)
	for _, a := range in {
		f := a.fans[len(a.fans)-1]
		if f.step != top.step || !slices.Equal(a.fans[:len(a.fans)-1], outer) {
			v.errs.addf(s.Pos, "an inner split or foreach must be joined before its outer one",
				"join %s receives branches of different fan-outs: %s and %s", s.Name, top, f)
			return outer, false
		}
		if a.from == top.step {
			v.errs.addf(s.Pos, "put a step between them: each branch needs a step of its own",
				"join %s directly follows %s", s.Name, top)
		}
		branches[f.branch] = true
	}
	if top.step.Next.Kind == Split {
		var missing []string
		for i, name := range top.step.Next.Names() {
			if !branches[i] {
				missing = append(missing, name)
			}
		}
		if len(missing) > 0 {
			v.errs.addf(s.Pos, "every branch of a split must reach the same join",
				"join %s does not receive the branch %s of %s", s.Name, strings.Join(missing, ", "), top)
		}
	}
	if other, ok := closedBy[top.step]; ok {
		v.errs.addf(s.Pos, "every branch of a split must reach the same join",
			"%s is closed by two joins, %s and %s", top, other.Name, s.Name)
	} else {
		closedBy[top.step] = s
		top.step.JoinedBy = s.Name
	}
	return outer, true
}

// branchesMeet reports whether a and b differ only in the branch of their
// innermost fan, which is then the split whose branches meet.
func branchesMeet(a, b []fan) (fan, bool) {
	n := len(a)
	if n == 0 || n != len(b) || !slices.Equal(a[:n-1], b[:n-1]) || a[n-1].step != b[n-1].step {
		return fan{}, false
	}
	return a[n-1], true
}

// outermostDiff returns the outermost fan open in one of a and b but not
// the other.
func outermostDiff(a, b []fan) fan {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return a[i]
		}
	}
	if len(a) > len(b) {
		return a[len(b)]
	}
	return b[len(a)]
}
