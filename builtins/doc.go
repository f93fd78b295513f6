// Package builtins is what a flow can call: next_step, param and step, the
// ctx and inputs values steps receive, and the standard modules json, math,
// time and struct. print and fail come with Starlark itself.
//
// A Go program that embeds dagger adds builtins of its own to a [Set]
// before it runs a flow; by default a flow computes and prints, nothing
// more: no files, network or environment.
//
// Four modules reach further, each with a capability that a step declares
// with its allow option and the run grants: exec runs programs (exec),
// files reads and writes the files of the task's directory (files), http
// makes requests to a host (net=HOST, or net for any) and env reads a
// variable of the runner's environment (env=NAME, or env for any). A flow
// has the name of such a module only if one of its steps declares its
// capability, and only such a step may use it; the module reaches the
// task through the [Task] the runner sets on the step's thread.
package builtins
