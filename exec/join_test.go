package exec

import (
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/daggerflow/dagger/builtins"
)

// TestJoinState checks that a joinState gives back the inputs it was
// given, however it keeps them, and merges them.
func TestJoinState(t *testing.T) {
	h := func(c byte) string { return hashPrefix + strings.Repeat(string(c), 64) }
	tests := []struct {
		name          string
		foreach       bool
		artifacts     []map[string]string // of each input
		wantArtifacts map[string]string
		wantConflicts map[string]builtins.Conflict
	}{{
		name:          "the same names: packed",
		foreach:       true,
		artifacts:     []map[string]string{{"a": h('1'), "b": h('2')}, {"a": h('1'), "b": h('3')}, {"a": h('1'), "b": h('2')}},
		wantArtifacts: map[string]string{"a": h('1')},
		wantConflicts: map[string]builtins.Conflict{"b": {Inputs: [2]builtins.ConflictInput{
			{Label: "element 0", TaskID: "work.7.0", Hash: h('2')}, {Label: "element 1", TaskID: "work.7.1", Hash: h('3')},
		}}},
	}, {
		name:          "other names, none, and hashes that do not pack",
		foreach:       true,
		artifacts:     []map[string]string{{"a": h('1')}, {"a": h('1'), "b": h('2')}, {}, {"a": "not a hash"}, {"a": strings.ToUpper(h('a'))}, {"a": h('1')}},
		wantArtifacts: map[string]string{},
		wantConflicts: map[string]builtins.Conflict{
			"a": {Inputs: [2]builtins.ConflictInput{
				{Label: "element 0", TaskID: "work.7.0", Hash: h('1')}, {Label: "element 2", TaskID: "work.7.2"},
			}},
			"b": {Inputs: [2]builtins.ConflictInput{
				{Label: "element 1", TaskID: "work.7.1", Hash: h('2')}, {Label: "element 0", TaskID: "work.7.0"},
			}},
		},
	}, {
		name:          "a split",
		artifacts:     []map[string]string{{"a": h('1')}, {"a": h('1')}},
		wantArtifacts: map[string]string{"a": h('1')},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := len(tt.artifacts)
			from := &pending{spec: &TaskSpec{TaskID: "start.7", Index: []int{7}, Input: h('e')}}
			elements := make([]string, n)
			for i := range elements {
				elements[i] = h(byte('a' + i))
			}
			if tt.foreach {
				from.elements = newHashList(elements)
			}
			js := newJoinState(fan{task: from, n: n}, tt.foreach)
			var want []Input
			for i, artifacts := range tt.artifacts {
				in := Input{TaskID: "work.7", Step: "work", Attempt: i + 1, Index: []int{7}, Input: h('e'), Artifacts: artifacts}
				if tt.foreach {
					in.TaskID, in.Index, in.Input = "work.7."+strconv.Itoa(i), []int{7, i}, elements[i]
				}
				want = append(want, in)
			}
			for i := n - 1; i >= 0; i-- { // in any order
				js.add(i, &TaskSpec{Step: "work", Attempt: i + 1}, tt.artifacts[i])
			}
			if diff := cmp.Diff(want, js.all()); diff != "" {
				t.Errorf("inputs (-want +got):\n%s", diff)
			}
			artifacts, conflicts := js.merge()
			if diff := cmp.Diff(tt.wantArtifacts, artifacts); diff != "" {
				t.Errorf("merged artifacts (-want +got):\n%s", diff)
			}
			if !tt.foreach {
				for name, c := range tt.wantConflicts {
					c.Inputs[0].Label, c.Inputs[1].Label = "branch work", "branch work"
					tt.wantConflicts[name] = c
				}
			}
			if diff := cmp.Diff(tt.wantConflicts, conflicts); diff != "" {
				t.Errorf("conflicts (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHashList(t *testing.T) {
	h := hashPrefix + strings.Repeat("0f", 32)
	for _, hashes := range [][]string{{}, {h, h}, {h, "sha256:0F"}, {""}} {
		l := newHashList(hashes)
		var got []string
		for i := range l.len() {
			got = append(got, l.at(i))
		}
		if diff := cmp.Diff(hashes, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("newHashList(%q) gives back (-want +got):\n%s", hashes, diff)
		}
	}
}
