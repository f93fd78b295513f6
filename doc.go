// Package dagger is the API for Go programs that embed dagger: load a flow
// with the builtins the program gives it, read its graph and params, run it
// or resume a run of it with events as they happen, and read what runs
// recorded through package history.
//
// A program adds its own capabilities, such as a database lookup or a
// model call, to a [builtins.Set] before it loads a flow; the set then
// belongs to the flow, so that the checks, the run and every task runner
// know the same names:
//
//	set := builtins.Standard()
//	set.Add("lookup", starlark.NewBuiltin("lookup", lookup))
//	flow, err := dagger.Load("enrich.star", set)
//	...
//	st, err := store.Open(ctx, dir)
//	...
//	run, err := dagger.Run(ctx, st, flow, dagger.Options{OnEvent: show})
//
// Tasks run in this process unless [Options] gives another executor.
// [ProcessExecutor] runs each in a subprocess of this very executable,
// which must then answer to the step command line: package cli's Main
// does. That is how a program's builtins reach the task runners: the
// runner is the program itself.
//
// With [builtins.Standard] alone a flow computes and prints, nothing more:
// it cannot read a file, the environment, the network or a source of
// randomness. Every such capability is one the embedding program grants by
// adding a builtin.
package dagger
