// Command dagger runs, checks and shows workflows written in Starlark.
//
// Usage:
//
//	dagger run [-p name=value]... FLOW         run a flow
//	dagger resume [--from STEP] RUN            run a failed run again, reusing what succeeded
//	dagger runs [FLOW]                         list runs
//	dagger inspect RUN[/STEP[/TASK]][/ARTIFACT] show a run, step, task or artifact
//	dagger logs [--follow] RUN[/STEP[/TASK]]   print what tasks printed
//	dagger fsck                                check the store
//	dagger check FLOW                          check a flow without running it
//	dagger show [--json] FLOW                  print a flow's parameters and steps
//	dagger graph [--format dot|mermaid] FLOW   draw a flow's step graph
//
// Flags may also follow the flow: dagger show flow.star --json. The hidden
// command dagger step runs one task for an executor.
//
// The exit code is 0 on success, 1 when a run fails or is cancelled, 2 for
// an invalid flow, a bad parameter value or a usage error, and 130 when a
// run is interrupted twice.
package main

import (
	"os"

	"github.com/daggerflow/dagger/builtins"
	"github.com/daggerflow/dagger/cli"
)

func main() {
	// A task runner (dagger step, in a subprocess or a pod) runs the
	// flow's code, whose garbage is the user's, within the step's memory
	// limit: it collects as Go does.
	if len(os.Args) < 2 || os.Args[1] != "step" {
		holdFirstGC()
	}
	cli.Main(builtins.Standard())
}
