// Package starlark is the interpreter side of dagger: loading a flow and
// the modules it loads into a code package, running one step function on
// a fresh thread with limits, and the deterministic, type-preserving codec
// for artifact values.
package starlark
