package history

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// A Path names what to show of a run: RUN[/STEP[/TASK][/ARTIFACT]].
type Path struct {
	Run  string // "latest", or a run ID or a prefix of one
	Step string // "" for the whole run
	// Index holds the foreach indices given after the step, which the
	// index of the tasks named starts with; nil for all the step's tasks.
	Index    []int
	Artifact string // "" for tasks rather than a value
}

// ParsePath parses RUN[/STEP[/TASK][/ARTIFACT]], where TASK is the index
// of a task in its foreach fan-outs, in one element ("0.1") or in several
// ("0/1"). An element that starts with a digit is an index, since
// artifact names are identifiers; only the last element may be an
// artifact. Trailing slashes, as shells complete paths, are ignored.
func ParsePath(s string) (Path, error) {
	elems := strings.Split(strings.TrimRight(s, "/"), "/")
	if slices.Contains(elems, "") {
		return Path{}, fmt.Errorf("%q: want RUN[/STEP[/TASK][/ARTIFACT]]", s)
	}
	p := Path{Run: elems[0]}
	rest := elems[1:]
	if len(rest) > 0 {
		p.Step, rest = rest[0], rest[1:]
	}
	for i, e := range rest {
		switch {
		case isDigit(e[0]) || e[0] == '-' || e[0] == '+':
			index, err := parseIndex(e)
			if err != nil {
				return Path{}, fmt.Errorf("%q: %w", s, err)
			}
			p.Index = append(p.Index, index...)
		case !isIdent(e):
			return Path{}, fmt.Errorf("%q: %s is neither a task index nor an artifact's name; %s", s, e, pathShape)
		case i < len(rest)-1:
			return Path{}, fmt.Errorf("%q: %s is not a task index, and only the last element can be an artifact; %s", s, e, pathShape)
		default:
			p.Artifact = e
		}
	}
	return p, nil
}

// pathShape says what a path looks like, for the errors of ParsePath.
const pathShape = "want RUN[/STEP[/TASK][/ARTIFACT]], where TASK is the task's foreach index, such as 3, or 0.1 in nested foreaches"

// parseIndex parses a task index, such as "3" or "0.1".
func parseIndex(s string) ([]int, error) {
	var index []int
	for part := range strings.SplitSeq(s, ".") {
		n, err := strconv.Atoi(part)
		if err != nil || part == "" || !isDigit(part[0]) {
			return nil, fmt.Errorf("bad task index %s: a task's index is its place in its foreach, a number from 0, such as 3, or numbers joined by dots in nested foreaches, such as 0.1", s)
		}
		index = append(index, n)
	}
	return index, nil
}

// isDigit reports whether c is an ASCII digit.
func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// isIdent reports whether s is an identifier, as an artifact's name is.
func isIdent(s string) bool {
	for i, r := range s {
		if r != '_' && !unicode.IsLetter(r) && (i == 0 || !unicode.IsDigit(r)) {
			return false
		}
	}
	return s != ""
}

// String returns p in its canonical form, which ParsePath reads back: the
// index in one element, such as 1m89nzs2917d/inner/0.1/pair.
func (p Path) String() string {
	var b strings.Builder
	b.WriteString(p.Run)
	if p.Step != "" {
		b.WriteString("/" + p.Step)
	}
	for i, n := range p.Index {
		if i == 0 {
			b.WriteByte('/')
		} else {
			b.WriteByte('.')
		}
		b.WriteString(strconv.Itoa(n))
	}
	if p.Artifact != "" {
		b.WriteString("/" + p.Artifact)
	}
	return b.String()
}

// TaskID returns the ID of the task, or the prefix of the IDs of the
// tasks, that p's step and index name, such as "square.3".
func (p Path) TaskID() string { return TaskID(p.Step, p.Index) }

// TaskID returns the ID of the task of step with the given foreach index,
// outermost first: the step's name, then each index after a dot, such as
// "square.3" or "inner.0.1"; the step's name alone outside any foreach.
// The engine names tasks with it, and paths are read back into it, so
// that both agree.
func TaskID(step string, index []int) string {
	if len(index) == 0 {
		return step // without a copy: the engine names every task
	}
	var b strings.Builder
	b.WriteString(step)
	for _, i := range index {
		b.WriteByte('.')
		b.WriteString(strconv.Itoa(i))
	}
	return b.String()
}
