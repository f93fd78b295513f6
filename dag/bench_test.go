package dag

import (
	"fmt"
	"go.starlark.net/starlark"
	"math"
	"strings"
	"testing"
)

// linearFlow returns a flow of n steps in a chain.
func linearFlow(n int) string {
	var b strings.Builder
	b.WriteString("def start(ctx):\n    next_step(s1)\n\n")
	for i := 1; i < n-1; i++ {
		next := fmt.Sprintf("s%d", i+1)
		if i == n-2 {
			next = "finish"
		}
		fmt.Fprintf(&b, "def s%d(ctx):\n    \"\"\"Step %d.\"\"\"\n    ctx.v%d = %d\n    next_step(%s)\n\n", i, i, i, i, next)
	}
	b.WriteString("def finish(ctx):\n    pass\n")
	return b.String()
}

// wideFlow returns a flow of about n steps that is as wide as the language
// allows: start splits into branches that split again (a call takes at most
// 255 arguments), down to leaves that all run in parallel, and every split
// is closed by its own join.
func wideFlow(n int) string {
	var fanout int
	for depth := 1; ; depth++ {
		fanout = int(math.Ceil(math.Pow(float64(n), 1/float64(depth))))
		if fanout <= 250 {
			break
		}
	}
	// Every split adds itself and a join to its fanout leaves.
	leaves := n * fanout / (fanout + 2)
	var b strings.Builder
	// tree writes the subtree of step name, which ends by going to next.
	var tree func(name, next string, leaves int)
	tree = func(name, next string, leaves int) {
		if leaves <= 1 {
			fmt.Fprintf(&b, "def %s(ctx):\n    next_step(%s)\n\n", name, next)
			return
		}
		width := min(fanout, leaves)
		children := make([]string, width)
		for i := range children {
			children[i] = fmt.Sprintf("%s_%d", name, i)
		}
		fmt.Fprintf(&b, "def %s(ctx):\n    next_step(%s)\n\n", name, strings.Join(children, ", "))
		join := name + "_join"
		for _, c := range children {
			tree(c, join, leaves/width)
		}
		fmt.Fprintf(&b, "def %s(ctx, inputs):\n    next_step(%s)\n\n", join, next)
	}
	tree("start", "finish", leaves)
	b.WriteString("def finish(ctx):\n    pass\n")
	return b.String()
}

func TestGeneratedFlowsAreValid(t *testing.T) {
	for name, src := range map[string]string{"linear": linearFlow(50), "wide": wideFlow(50)} {
		f, err := Parse(name+".star", src)
		if err != nil {
			t.Fatal(err)
		}
		g, err := Extract(f, starlark.Universe.Has)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := Validate(g); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(g.Steps) < 40 || len(g.Steps) > 60 {
			t.Errorf("%s: %d steps, want about 50", name, len(g.Steps))
		}
	}
}

// BenchmarkCheck measures parsing, extracting and validating generated
// flows; ns/step should stay flat as flows grow.
func BenchmarkCheck(b *testing.B) {
	for _, shape := range []struct {
		name string
		gen  func(int) string
	}{{"linear", linearFlow}, {"wide", wideFlow}} {
		for _, n := range []int{1000, 10000, 100000} {
			src := []byte(shape.gen(n))
			steps := strings.Count(string(src), "\ndef ") + 1
			b.Run(fmt.Sprintf("%s/%d", shape.name, n), func(b *testing.B) {
				b.SetBytes(int64(len(src)))
				b.ReportAllocs()
				for b.Loop() {
					f, err := Parse("bench.star", src)
					if err != nil {
						b.Fatal(err)
					}
					g, err := Extract(f, starlark.Universe.Has)
					if err != nil {
						b.Fatal(err)
					}
					if err := Validate(g); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(steps), "ns/step")
			})
		}
	}
}
