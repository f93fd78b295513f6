package history_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/daggerflow/dagger/builtins"
	"github.com/daggerflow/dagger/exec"
	"github.com/daggerflow/dagger/history"
	"github.com/daggerflow/dagger/starlark"
	"github.com/daggerflow/dagger/store"
)

// squares is a tiny flow: it squares numbers in a foreach and adds them
// up.
const squares = `
def start(ctx):
    ctx.numbers = [1, 2, 3]
    next_step(square, foreach = ctx.numbers)

def square(ctx):
    ctx.square = ctx.input * ctx.input
    print("%d squared is %d" % (ctx.input, ctx.square))
    next_step(add)

def add(ctx, inputs):
    total = 0
    for task in inputs:
        total += task.square
    ctx.total = total
    next_step(finish)

def finish(ctx):
    pass
`

// Example runs a flow into a store, then reads its history back: the
// run's steps, the tasks of a foreach step, what one printed, and an
// artifact's value, found by the path people would give dagger inspect.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "history-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "squares.star")
	if err := os.WriteFile(path, []byte(squares), 0o666); err != nil {
		log.Fatal(err)
	}
	flow, err := starlark.Load(path, builtins.Standard())
	if err != nil {
		log.Fatal(err)
	}
	st, err := store.Open(ctx, filepath.Join(dir, "store"))
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	if _, err := exec.Run(ctx, st, flow, exec.Options{}); err != nil {
		log.Fatal(err)
	}

	run, err := history.Load(ctx, st, "latest")
	if err != nil {
		log.Fatal(err)
	}
	defer run.Close()
	fmt.Println(run.Flow, run.Status, run.Steps())
	tasks, err := run.StepTasks("square")
	if err != nil {
		log.Fatal(err)
	}
	logs := history.NewLogReader(run)
	for _, t := range history.ByIndex(tasks) {
		lines, err := logs.Read(ctx, t)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s| %s\n", t.ID, lines[0].Line)
	}

	p, err := history.ParsePath("latest/add/total")
	if err != nil {
		log.Fatal(err)
	}
	task, err := run.Task(p)
	if err != nil {
		log.Fatal(err)
	}
	total, err := run.Artifact(ctx, task, p.Artifact)
	if err != nil {
		log.Fatal(err)
	}
	text, err := history.FormatValue(total, true)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s = %s\n", p, text)
	// Output:
	// squares succeeded [start square add finish]
	// square.0| 1 squared is 1
	// square.1| 2 squared is 4
	// square.2| 3 squared is 9
	// latest/add/total = 14
}
