package dag

import (
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.starlark.net/starlark"
)

// TestChunks checks the messages of Parse, Extract and Validate next to
// the lines they are about. Each file of testdata/*.star holds chunks, each
// a flow, separated by "---" lines; a line that must have errors ends
// with ### and a regular expression per error, quoted as in Go, which the
// error's message must match, as go.starlark.net's resolve tests have
// them. Any other error fails the test. A first chunk of comments only is
// the file's header. Lines are numbered from the start of their chunk in
// messages ("already declared at line 3"), and of the file in failures.
func TestChunks(t *testing.T) {
	files, err := filepath.Glob("testdata/*.star")
	if err != nil || len(files) == 0 {
		t.Fatalf("no chunk files: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".star"), func(t *testing.T) {
			for _, c := range readChunks(t, file) {
				for _, e := range checkChunk(filepath.Base(file), c.src) {
					c.got(t, e.Pos.Line, e.Msg)
				}
				c.done(t)
			}
		})
	}
}

// checkChunk returns the errors of every static stage of dag on src.
func checkChunk(name, src string) ErrorList {
	f, err := Parse(name, src)
	if err != nil {
		return AsList(err)
	}
	flowBuiltins := []string{"next_step", "param", "step", "package", "json", "math", "time", "struct"}
	g, err := Extract(f, func(name string) bool { return starlark.Universe.Has(name) || slices.Contains(flowBuiltins, name) })
	var errs ErrorList
	if err != nil {
		errs = AsList(err)
	}
	if err := Validate(g); err != nil {
		errs = append(errs, AsList(err)...)
	}
	errs.Sort()
	return errs
}

// A chunk is one flow of a chunk file, with the errors expected on its
// lines, numbered from 1 in the chunk.
type chunk struct {
	src   string
	file  string
	start int                      // the line of the file where the chunk starts, less one
	want  map[int][]*regexp.Regexp // by line of the chunk
}

var marker = regexp.MustCompile(`###((?:\s*"(?:[^"\\]|\\.)*")+)\s*$`)
var quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// readChunks reads the chunks of a chunk file.
func readChunks(t *testing.T, file string) []*chunk {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var chunks []*chunk
	start := 0
	for text := range strings.SplitSeq(string(data), "\n---\n") {
		c := &chunk{src: text, file: file, start: start, want: make(map[int][]*regexp.Regexp)}
		lines := strings.Split(text, "\n")
		for i, line := range lines {
			if !strings.Contains(line, "###") {
				continue
			}
			m := marker.FindStringSubmatch(line)
			if m == nil {
				t.Errorf("%s:%d: a ### marker is followed by quoted regular expressions only", file, start+i+1)
				continue
			}
			for _, q := range quoted.FindAllString(m[1], -1) {
				pattern, err := strconv.Unquote(q)
				rx, err2 := regexp.Compile(pattern)
				if err != nil || err2 != nil {
					t.Errorf("%s:%d: bad marker %s: %v %v", file, start+i+1, q, err, err2)
					continue
				}
				c.want[i+1] = append(c.want[i+1], rx)
			}
		}
		if !commentsOnly(lines) { // a file's header
			chunks = append(chunks, c)
		}
		start += len(lines) + 1 // and the --- line
	}
	return chunks
}

func commentsOnly(lines []string) bool {
	for _, l := range lines {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			return false
		}
	}
	return true
}

// got checks an error at a line of the chunk against what is expected
// there, consuming the first pattern it matches.
func (c *chunk) got(t *testing.T, line int, msg string) {
	t.Helper()
	want := c.want[line]
	i := slices.IndexFunc(want, func(rx *regexp.Regexp) bool { return rx.MatchString(msg) })
	switch {
	case i >= 0:
		c.want[line] = slices.Delete(want, i, i+1)
	case len(want) > 0:
		t.Errorf("%s:%d: error %q matches none of %q", c.file, c.start+line, msg, want)
	default:
		t.Errorf("%s:%d: unexpected error: %s", c.file, c.start+line, msg)
	}
}

// done reports the expected errors that did not occur.
func (c *chunk) done(t *testing.T) {
	t.Helper()
	for _, line := range slices.Sorted(maps.Keys(c.want)) {
		for _, rx := range c.want[line] {
			t.Errorf("%s:%d: expected an error matching %q", c.file, c.start+line, rx)
		}
	}
}
