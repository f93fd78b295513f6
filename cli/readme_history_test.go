package cli

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"
)

// readmeRuns are the runs of the store that the history examples of
// README.md read, oldest first: those its dagger runs example lists.
var readmeRuns = [][]string{
	{"--max-workers", "1", "examples/foreach.star", "-p", "count=3"},
	{"testdata/run/retries.star"},
	{"testdata/run/fail.star"},
	{"examples/params.star", "-p", "name=Ada"},
}

// readmeRoot is the folder README.md shows the repository in.
const readmeRoot = "/home/ada/flows"

// TestReadmeHistory checks the examples of dagger runs, inspect and logs
// in README.md: a fenced block after a line <!-- history --> holds
// commands, each on a line "$ dagger ARGS" followed by what it prints,
// stdout then stderr, run on a store where readmeRuns ran; after
// <!-- history: ARGS -->, on a store where only dagger run ARGS ran. Run
// IDs are those of the README's dagger runs example, matched by flow;
// times, durations and the gaps between columns are compared as
// normalizeHistory makes them.
func TestReadmeHistory(t *testing.T) {
	t.Chdir(repoRoot)
	root, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	type example struct {
		line   int      // of the block in README.md
		record []string // the run of the store, or nil for readmeRuns
		block  string
	}
	var examples []example
	for i, line := range lines {
		marker, ok := strings.CutPrefix(strings.TrimSpace(line), "<!-- history")
		if !ok {
			continue
		}
		block, err := fenced(lines[i+1:])
		if err != nil {
			t.Errorf("README.md:%d: %v", i+2, err)
			continue
		}
		args, _ := strings.CutPrefix(strings.TrimSuffix(marker, " -->"), ":")
		examples = append(examples, example{line: i + 2, record: strings.Fields(args), block: block})
	}
	if len(examples) == 0 {
		t.Fatal("README.md has no history examples to check")
	}

	main := t.TempDir()
	var ids []string
	for _, args := range readmeRuns {
		ids = append(ids, recordRun(t, main, args...))
	}
	// The README's ID of each run is the one its dagger runs example
	// shows for the run's flow.
	readmeIDs := readmeRunIDs(t, examples[0].block)
	flowOf := func(args []string) string {
		i := slices.IndexFunc(args, func(a string) bool { return strings.HasSuffix(a, ".star") })
		return flowName(args[i])
	}
	toReadme := make(map[string]string) // real ID to README ID
	for i, args := range readmeRuns {
		id, ok := readmeIDs[flowOf(args)]
		if !ok {
			t.Fatalf("README.md:%d: the first history example lists no run of %s", examples[0].line, flowOf(args))
		}
		toReadme[ids[i]] = id
	}
	stores := make(map[string]string) // by marker args
	for _, ex := range examples {
		dir := main
		if len(ex.record) > 0 {
			key := strings.Join(ex.record, " ")
			if stores[key] == "" {
				stores[key] = t.TempDir()
				recordRun(t, stores[key], ex.record...)
			}
			dir = stores[key]
		}
		checkReadmeHistory(t, ex.line, ex.block, dir, toReadme, root)
	}
}

// readmeRunIDs returns the run ID of each flow in the output of the dagger
// runs example block.
func readmeRunIDs(t *testing.T, block string) map[string]string {
	t.Helper()
	lines := strings.Split(block, "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "$ dagger runs") || !runsHeader.MatchString(lines[1]) {
		t.Fatalf("the first history example of README.md is not dagger runs:\n%s", block)
	}
	ids := make(map[string]string)
	for _, line := range lines[2:] {
		if fields := strings.Fields(line); len(fields) > 2 {
			ids[fields[1]] = fields[0]
		}
	}
	return ids
}

// readmeCommand is a line of a history example that gives a command.
var readmeCommand = regexp.MustCompile(`(?m)^\$ dagger (.*)\n`)

// checkReadmeHistory runs the commands of block, at line n of README.md,
// on the store in dir, in a folder of their own for the files they
// write, and compares what each prints with what block shows.
func checkReadmeHistory(t *testing.T, n int, block, dir string, toReadme map[string]string, root string) {
	t.Helper()
	fromReadme := make(map[string]string)
	for id, readme := range toReadme {
		fromReadme[readme] = id
	}
	commands := readmeCommand.FindAllStringSubmatchIndex(block, -1)
	if len(commands) == 0 || commands[0][0] != 0 {
		t.Errorf("README.md:%d: want a block of $ dagger ARGS lines, each followed by its output", n)
		return
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(wd)
	if err := os.Chdir(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	for i, m := range commands {
		command := block[m[2]:m[3]]
		end := len(block)
		if i+1 < len(commands) {
			end = commands[i+1][0]
		}
		want := block[m[1]:end]
		if strings.ContainsAny(command, `'"\$`) {
			t.Errorf("README.md:%d: want $ dagger ARGS, without quotes or variables; got %s", n, command)
			continue
		}
		args := strings.Fields(command)
		for j, a := range args {
			// A run ID of the README, or a prefix of one, is that run's.
			ref, rest, _ := strings.Cut(a, "/")
			for readme, id := range fromReadme {
				if len(ref) >= 4 && strings.HasPrefix(readme, ref) {
					args[j] = strings.TrimSuffix(id+"/"+rest, "/")
				}
			}
		}
		r := runDagger(t, slices.Concat(args[:1], []string{"--store", dir}, args[1:])...)
		got := r.stdout + r.stderr
		for id, readme := range toReadme {
			got = strings.ReplaceAll(got, id, readme)
		}
		got = strings.ReplaceAll(got, root, readmeRoot)
		if diff := gocmp.Diff(normalizeHistory(want, nil, readmeRoot), normalizeHistory(got, nil, readmeRoot)); diff != "" {
			t.Errorf("README.md:%d: dagger %s prints differently (-README +got):\n%s", n, command, diff)
		}
	}
}

// TestReadmeHistoryCommands checks that README.md shows no history
// command without the marker that has it checked.
func TestReadmeHistoryCommands(t *testing.T) {
	f, err := os.Open(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lines := bufio.NewScanner(f)
	checked := false // the block being read is a history example
	inBlock := false
	for n := 1; lines.Scan(); n++ {
		line := lines.Text()
		switch {
		case strings.HasPrefix(line, "<!-- history"):
			checked = true
		case strings.HasPrefix(line, "```"):
			inBlock = !inBlock
			if !inBlock {
				checked = false
			}
		case inBlock && !checked && regexp.MustCompile(`^\$ dagger (runs|inspect|logs)\b`).MatchString(line):
			t.Errorf("README.md:%d: %s is in no <!-- history --> example, which a test checks", n, line)
		}
	}
	if err := lines.Err(); err != nil {
		t.Fatal(err)
	}
}
