package dagger_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"testing/fstest"

	"go.starlark.net/starlark"

	"github.com/daggerflow/dagger"
	"github.com/daggerflow/dagger/builtins"
	"github.com/daggerflow/dagger/store"
)

// A flow is loaded, and checked, before any of its code runs. LoadFS
// reads it from any file system, such as an embed.FS.
func ExampleLoadFS() {
	fsys := fstest.MapFS{
		"flows/greet.star": {Data: []byte(`"""Greets someone."""

who = param("who", default = "world", help = "whom to greet")

def start(ctx):
    ctx.greeting = "hello, " + who
    next_step(finish)

def finish(ctx):
    print(ctx.greeting)
`)},
	}
	flow, err := dagger.LoadFS(fsys, "flows/greet.star", nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(flow.Name(), "-", flow.Graph().Doc)
	for _, p := range flow.Params() {
		fmt.Printf("param %s (%s): %s\n", p.Name, p.Type, p.Help)
	}
	for _, s := range flow.Graph().Steps {
		fmt.Println("step", s.Name)
	}
	// An invalid flow is refused with every error at its file:line:col.
	fsys["flows/bad.star"] = &fstest.MapFile{Data: []byte("def start(ctx):\n    next_step(finsh)\n\ndef finish(ctx):\n    pass\n")}
	_, err = dagger.LoadFS(fsys, "flows/bad.star", nil)
	fmt.Println(err)
	// Output:
	// greet - Greets someone.
	// param who (string): whom to greet
	// step start
	// step finish
	// flows/bad.star:2:15: unknown step finsh
	// 	hint: did you mean finish?
}

// An embedding program adds builtins of its own to a set, and loads flows
// with it: the flow's checks and its run know them.
func ExampleRun() {
	set := builtins.Standard()
	shout := starlark.NewBuiltin("shout", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var s string
		if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &s); err != nil {
			return nil, err
		}
		return starlark.String(s + "!"), nil
	})
	if err := set.Add("shout", shout); err != nil {
		log.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	flowFile := dir + "/shout.star"
	src := "def start(ctx):\n    ctx.word = shout('hello')\n    next_step(finish)\n\ndef finish(ctx):\n    print(ctx.word)\n"
	if err := os.WriteFile(flowFile, []byte(src), 0o666); err != nil {
		log.Fatal(err)
	}
	flow, err := dagger.Load(flowFile, set)
	if err != nil {
		log.Fatal(err)
	}

	ctx := context.Background()
	st, err := store.Open(ctx, dir+"/store")
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	// Events come one at a time, in order; a task waits while OnEvent
	// runs.
	run, err := dagger.Run(ctx, st, flow, dagger.Options{OnEvent: func(e dagger.Event) {
		switch e.Kind {
		case dagger.TaskStarted:
			fmt.Println("started", e.TaskID)
		case dagger.TaskOutput:
			fmt.Printf("%s| %s\n", e.TaskID, e.Line)
		case dagger.TaskFinished:
			fmt.Println(e.Status, e.TaskID)
		}
	}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("run", run.Status)
	// Output:
	// started start
	// succeeded start
	// started finish
	// finish| hello!
	// succeeded finish
	// run succeeded
}
