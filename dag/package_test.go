package dag

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.starlark.net/starlark"
)

func TestExtractPackage(t *testing.T) {
	p := func(line, col int) Pos { return Pos{File: "f.star", Line: line, Col: col} }
	const steps = "\ndef start(ctx):\n    next_step(finish)\n\ndef finish(ctx):\n    pass\n"
	tests := []struct {
		name string
		src  string // steps are appended
		want *PackageDecl
		errs string // the ErrorList's text, "" for none
	}{{
		name: "none",
		src:  "",
	}, {
		name: "patterns",
		src:  `package(include = ["*.py", "requirements.txt", "data/*.csv", "[ab]?.json"])`,
		want: &PackageDecl{Pos: p(1, 1), Include: []*Pattern{
			{Pattern: "*.py", Pos: p(1, 20)},
			{Pattern: "requirements.txt", Pos: p(1, 28)},
			{Pattern: "data/*.csv", Pos: p(1, 48)},
			{Pattern: "[ab]?.json", Pos: p(1, 62)},
		}},
	}, {
		name: "empty list",
		src:  "package(include = [])",
		want: &PackageDecl{Pos: p(1, 1), Include: []*Pattern{}},
	}, {
		name: "not a literal list",
		src:  "pats = [\"*.py\"]\npackage(include = pats)",
		want: &PackageDecl{Pos: p(2, 1), Include: []*Pattern{}},
		errs: "f.star:2:19: the include of package must be a literal list of patterns, which dagger reads before the flow runs\n" +
			"\thint: declare the flow's own files as package(include = [\"*.py\", \"data/*.csv\"])",
	}, {
		name: "not a string literal",
		src:  "ext = \".py\"\npackage(include = [\"*\" + ext, 3, \"a.txt\"])",
		want: &PackageDecl{Pos: p(2, 1), Include: []*Pattern{{Pattern: "a.txt", Pos: p(2, 34)}}},
		errs: "f.star:2:20: a pattern of package must be a string literal\n" +
			"\thint: declare the flow's own files as package(include = [\"*.py\", \"data/*.csv\"])\n" +
			"f.star:2:31: a pattern of package must be a string literal\n" +
			"\thint: declare the flow's own files as package(include = [\"*.py\", \"data/*.csv\"])",
	}, {
		name: "bad patterns",
		src:  `package(include = ["/etc/hosts", "../data/*.csv", "a/../b", "./x.py", "a//b", "dir/", ".", "", "[a-", "ok", "ok"])`,
		want: &PackageDecl{Pos: p(1, 1), Include: []*Pattern{{Pattern: "ok", Pos: p(1, 103)}}},
		errs: `f.star:1:20: pattern "/etc/hosts" is absolute` + "\n\thint: patterns are relative to the flow's folder, such as \"data/*.csv\"\n" +
			`f.star:1:34: pattern "../data/*.csv" leaves the flow's folder` + "\n\thint: patterns are relative to the flow's folder, such as \"data/*.csv\"\n" +
			`f.star:1:51: pattern "a/../b" leaves the flow's folder` + "\n\thint: patterns are relative to the flow's folder, such as \"data/*.csv\"\n" +
			`f.star:1:61: pattern "./x.py" is not a clean path: leave out ./, // and a trailing /` + "\n\thint: patterns are relative to the flow's folder, such as \"data/*.csv\"\n" +
			`f.star:1:71: pattern "a//b" is not a clean path: leave out ./, // and a trailing /` + "\n\thint: patterns are relative to the flow's folder, such as \"data/*.csv\"\n" +
			`f.star:1:79: pattern "dir/" is not a clean path: leave out ./, // and a trailing /` + "\n\thint: patterns are relative to the flow's folder, such as \"data/*.csv\"\n" +
			`f.star:1:87: pattern "." is the flow's folder: include its files with "*"` + "\n\thint: patterns are relative to the flow's folder, such as \"data/*.csv\"\n" +
			`f.star:1:92: a pattern of package cannot be empty` + "\n\thint: patterns are relative to the flow's folder, such as \"data/*.csv\"\n" +
			`f.star:1:96: pattern "[a-" is not a valid glob pattern: syntax error in pattern` + "\n\thint: patterns are relative to the flow's folder, such as \"data/*.csv\"\n" +
			`f.star:1:109: pattern "ok" is already listed at line 1`,
	}, {
		name: "arguments",
		src:  `package(["*.py"], exclude = ["x"])`,
		want: &PackageDecl{Pos: p(1, 1), Include: []*Pattern{}},
		errs: "f.star:1:1: package needs the patterns of the files to include\n" +
			"\thint: declare the flow's own files as package(include = [\"*.py\", \"data/*.csv\"])\n" +
			"f.star:1:9: package takes its patterns as include = [...]\n" +
			"\thint: declare the flow's own files as package(include = [\"*.py\", \"data/*.csv\"])\n" +
			"f.star:1:19: package has no argument exclude\n" +
			"\thint: declare the flow's own files as package(include = [\"*.py\", \"data/*.csv\"])",
	}, {
		name: "twice",
		src:  "package(include = [\"a\"])\npackage(include = [\"b\", 1])",
		want: &PackageDecl{Pos: p(1, 1), Include: []*Pattern{{Pattern: "a", Pos: p(1, 20)}}},
		errs: "f.star:2:1: package is already declared at line 1\n\thint: list every pattern in one package call\n" +
			"f.star:2:25: a pattern of package must be a string literal\n" +
			"\thint: declare the flow's own files as package(include = [\"*.py\", \"data/*.csv\"])",
	}, {
		name: "in a function and as a value",
		src:  "def _helper():\n    package(include = [\"a\"])\n\ndeclare = package",
		errs: "f.star:2:5: package is called inside the function at line 1\n" +
			"\thint: call it at top level, outside every function\n" +
			"f.star:4:11: package must be called, not used as a value",
	}}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			f, err := Parse("f.star", test.src+"\n"+steps)
			if err != nil {
				t.Fatal(err)
			}
			g, err := Extract(f, starlark.Universe.Has)
			errs := ""
			if err != nil {
				l := AsList(err)
				l.Sort()
				errs = l.Error()
			}
			if errs != test.errs {
				t.Errorf("errors:\n%s\nwant:\n%s", errs, test.errs)
			}
			if diff := cmp.Diff(test.want, g.Package); diff != "" {
				t.Errorf("package (-want +got):\n%s", diff)
			}
		})
	}
}
