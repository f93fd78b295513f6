// Embed is a Go program that embeds dagger. It gives flows a capability
// of its own, kv, a key-value lookup in a SQLite database it makes itself;
// runs order.star, which uses kv, first in this process and then with a
// subprocess per task; prints the run's events as they come; and reads
// the finished run's artifacts back through the history API.
//
// From the repository's root:
//
//	go run ./examples/embed
//
// Given arguments, it is the whole dagger command with kv added, the
// hidden step command that runs tasks in subprocesses included:
//
//	go run ./examples/embed check examples/embed/order.star
package main

import (
	"context"
	"embed"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/daggerflow/dagger"
	"github.com/daggerflow/dagger/builtins"
	"github.com/daggerflow/dagger/cli"
	"github.com/daggerflow/dagger/exec"
	"github.com/daggerflow/dagger/history"
	"github.com/daggerflow/dagger/store"
)

//go:embed order.star
var flows embed.FS

// dbEnv names the kv database for the task runners in subprocesses, which
// inherit it.
const dbEnv = "EMBED_KV_DB"

func main() {
	kv := &kvStore{path: os.Getenv(dbEnv)}
	set, err := newSet(kv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "embed:", err)
		os.Exit(1)
	}
	if len(os.Args) > 1 {
		cli.Main(set) // exits
	}
	err = demo(context.Background(), os.Stdout, set, kv)
	if cerr := kv.close(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "embed:", err)
		os.Exit(1)
	}
}

// newSet returns the builtins of this program's flows: the standard ones
// and kv.
func newSet(kv *kvStore) (*builtins.Set, error) {
	set := builtins.Standard()
	if err := set.Add("kv", kv.module()); err != nil {
		return nil, err
	}
	return set, nil
}

// demo makes the kv database and a store in a temporary folder, and runs
// order.star there with each executor, writing what happens to w.
func demo(ctx context.Context, w io.Writer, set *builtins.Set, kv *kvStore) error {
	dir, err := os.MkdirTemp("", "dagger-embed-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	kv.path = filepath.Join(dir, "kv.db")
	prices := map[string]string{"price/apple": "3", "price/pear": "4", "price/fig": "5"}
	if err := createKV(ctx, kv.path, prices); err != nil {
		return err
	}
	// The task runners of the process executor are this program, started
	// anew: they find the database through the environment.
	if err := os.Setenv(dbEnv, kv.path); err != nil {
		return err
	}

	flow, err := dagger.LoadFS(flows, "order.star", set)
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, filepath.Join(dir, "store"))
	if err != nil {
		return err
	}
	defer st.Close()

	process, err := dagger.ProcessExecutor()
	if err != nil {
		return err
	}
	for _, ex := range []struct {
		name     string
		executor exec.Executor
	}{{"in process", nil}, {"a subprocess per task", process}} {
		fmt.Fprintf(w, "== %s: %s\n", flow.Name(), ex.name)
		run, err := dagger.Run(ctx, st, flow, dagger.Options{Executor: ex.executor, OnEvent: func(e dagger.Event) { printEvent(w, e) }})
		if err != nil {
			return err
		}
		if err := report(ctx, w, st, run.ID); err != nil {
			return err
		}
	}
	return nil
}

// printEvent prints an event of the run as it comes. OnEvent calls it one
// event at a time, so it needs no lock.
func printEvent(w io.Writer, e dagger.Event) {
	switch e.Kind {
	case dagger.TaskStarted:
		fmt.Fprintf(w, "started  %s\n", e.TaskID)
	case dagger.TaskOutput:
		fmt.Fprintf(w, "%s| %s\n", e.TaskID, e.Line)
	case dagger.TaskFinished:
		fmt.Fprintf(w, "%-8s %s\n", e.Status, e.TaskID)
	case dagger.RunFinished:
		fmt.Fprintf(w, "run %s\n", e.Status)
	}
}

// report reads the finished run back through the history API: the
// artifacts its tasks made, as decoded values.
func report(ctx context.Context, w io.Writer, st *store.Store, runID string) error {
	run, err := history.Load(ctx, st, runID)
	if err != nil {
		return err
	}
	defer run.Close()
	tasks, err := run.StepTasks("price")
	if err != nil {
		return err
	}
	for _, t := range history.ByIndex(tasks) {
		price, err := run.Artifact(ctx, t, "price")
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "history: %s set price = %s\n", t.ID, price)
	}
	finish, err := run.Task(history.Path{Step: "finish"})
	if err != nil {
		return err
	}
	total, err := run.Artifact(ctx, finish, "total")
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "history: finish has total = %s\n", total)
	return nil
}
