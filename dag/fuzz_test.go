package dag

import (
	"go.starlark.net/starlark"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// FuzzCheck feeds arbitrary source through every static stage. Whatever
// the input, they must return errors, never panic.
func FuzzCheck(f *testing.F) {
	for _, pattern := range []string{"../testdata/check/*.star", "../examples/*.star"} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			src, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(src)
		}
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		file, err := Parse("fuzz.star", src)
		if err != nil {
			if len(AsList(err)) == 0 {
				t.Fatal("Parse failed with an empty error list")
			}
			return
		}
		_ = CheckModule(file)
		g, _ := Extract(file, starlark.Universe.Has)
		if g == nil {
			t.Fatal("Extract returned no graph")
		}
		_ = Validate(g)
		for _, write := range []func(io.Writer, *Graph) error{WriteJSON, WriteDOT, WriteMermaid} {
			if err := write(io.Discard, g); err != nil {
				t.Fatal(err)
			}
		}
	})
}
