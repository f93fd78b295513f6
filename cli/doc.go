// Package cli is the dagger command as a library: its commands, flags,
// text and JSON output, and exit codes, and the hidden step command that
// runs one task for the process executor and Kubernetes pods. It holds no
// engine logic: every command is a call into package dagger, history or
// the lower packages.
//
// cmd/dagger is Main with the standard builtins. A Go program that embeds
// dagger calls Main with a set of its own, and is then a complete dagger
// command that knows its builtins, its own task runner included:
//
//	func main() {
//		set := builtins.Standard()
//		set.Add("lookup", starlark.NewBuiltin("lookup", lookup))
//		cli.Main(set)
//	}
//
// The exit code is 0 on success, 1 when a run fails or is cancelled or
// dagger cannot do what it was asked, 2 for an invalid flow, a bad
// parameter value or a usage error, and 130 when a run is interrupted
// twice.
package cli
