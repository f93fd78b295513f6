package history_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/daggerflow/dagger/history"
)

// TestParsePath checks how paths are read, and that the canonical form
// of each reads back the same.
func TestParsePath(t *testing.T) {
	const (
		shape    = "want RUN[/STEP[/TASK][/ARTIFACT]], where TASK is the task's foreach index, such as 3, or 0.1 in nested foreaches"
		badIndex = "a task's index is its place in its foreach, a number from 0, such as 3, or numbers joined by dots in nested foreaches, such as 0.1"
	)
	tests := []struct {
		path      string
		want      history.Path
		canonical string // the String of want; path if ""
		err       string
	}{
		{path: "latest", want: history.Path{Run: "latest"}},
		{path: "1m89/", want: history.Path{Run: "1m89"}, canonical: "1m89"},
		{path: "1m89/train", want: history.Path{Run: "1m89", Step: "train"}},
		{path: "1m89/train/model", want: history.Path{Run: "1m89", Step: "train", Artifact: "model"}},
		{path: "1m89/square/3", want: history.Path{Run: "1m89", Step: "square", Index: []int{3}}},
		{path: "1m89/square/3/x", want: history.Path{Run: "1m89", Step: "square", Index: []int{3}, Artifact: "x"}},
		{path: "1m89/inner/0.1", want: history.Path{Run: "1m89", Step: "inner", Index: []int{0, 1}}},
		{path: "1m89/inner/0/1/x/", want: history.Path{Run: "1m89", Step: "inner", Index: []int{0, 1}, Artifact: "x"}, canonical: "1m89/inner/0.1/x"},
		{path: "1m89/inner/0.1/2", want: history.Path{Run: "1m89", Step: "inner", Index: []int{0, 1, 2}}, canonical: "1m89/inner/0.1.2"},
		{path: "1m89/s/007", want: history.Path{Run: "1m89", Step: "s", Index: []int{7}}, canonical: "1m89/s/7"},
		{path: "", err: `"": want RUN[/STEP[/TASK][/ARTIFACT]]`},
		{path: "1m89//x", err: `"1m89//x": want RUN[/STEP[/TASK][/ARTIFACT]]`},
		{path: "/1m89", err: `"/1m89": want RUN[/STEP[/TASK][/ARTIFACT]]`},
		{path: "1m89/s/x/3", err: `"1m89/s/x/3": x is not a task index, and only the last element can be an artifact; ` + shape},
		{path: "1m89/s/3x", err: `"1m89/s/3x": bad task index 3x: ` + badIndex},
		{path: "1m89/s/0..1", err: `"1m89/s/0..1": bad task index 0..1: ` + badIndex},
		{path: "1m89/s/0.-1", err: `"1m89/s/0.-1": bad task index 0.-1: ` + badIndex},
		{path: "1m89/s/0.+1", err: `"1m89/s/0.+1": bad task index 0.+1: ` + badIndex},
		{path: "1m89/s/-1", err: `"1m89/s/-1": bad task index -1: ` + badIndex},
		{path: "1m89/s/+1", err: `"1m89/s/+1": bad task index +1: ` + badIndex},
		{path: "1m89/s/1.2.x", err: `"1m89/s/1.2.x": bad task index 1.2.x: ` + badIndex},
		{path: "1m89/s/99999999999999999999", err: `"1m89/s/99999999999999999999": bad task index 99999999999999999999: ` + badIndex},
		{path: "1m89/s/a-b", err: `"1m89/s/a-b": a-b is neither a task index nor an artifact's name; ` + shape},
		{path: "1m89/s/.1", err: `"1m89/s/.1": .1 is neither a task index nor an artifact's name; ` + shape},
		{path: "1m89/s/_x1", want: history.Path{Run: "1m89", Step: "s", Artifact: "_x1"}},
		{path: "1m89/s/été", want: history.Path{Run: "1m89", Step: "s", Artifact: "été"}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			got, err := history.ParsePath(tt.path)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("ParsePath(%q) = %+v, %v; want error %s", tt.path, got, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParsePath(%q) (-want +got):\n%s", tt.path, diff)
			}
			canonical := tt.canonical
			if canonical == "" {
				canonical = tt.path
			}
			if s := got.String(); s != canonical {
				t.Errorf("String() = %q, want %q", s, canonical)
			}
			again, err := history.ParsePath(got.String())
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(got, again); diff != "" {
				t.Errorf("ParsePath(%q) (-first +again):\n%s", got.String(), diff)
			}
		})
	}
}

// TestTaskID checks the task-ID format, which the engine names tasks
// with and paths are read back into.
func TestTaskID(t *testing.T) {
	tests := []struct {
		step  string
		index []int
		want  string
	}{
		{"start", nil, "start"},
		{"start", []int{}, "start"},
		{"square", []int{3}, "square.3"},
		{"inner", []int{0, 12}, "inner.0.12"},
	}
	for _, tt := range tests {
		if got := history.TaskID(tt.step, tt.index); got != tt.want {
			t.Errorf("TaskID(%q, %v) = %q, want %q", tt.step, tt.index, got, tt.want)
		}
		p := history.Path{Run: "r", Step: tt.step, Index: tt.index}
		if got := p.TaskID(); got != tt.want {
			t.Errorf("%#v.TaskID() = %q, want %q", p, got, tt.want)
		}
	}
}
