// Package builtins is what a flow can call: next_step, param and step, the
// ctx and inputs values steps receive, and the standard modules json, math,
// time and struct. print and fail come with Starlark itself.
//
// A Go program that embeds dagger adds builtins of its own to a [Set]
// before it runs a flow; by default a flow computes and prints, nothing
// more: no files, network or environment.
package builtins
