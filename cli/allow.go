package cli

import (
	"errors"
	"fmt"
	"strings"

	urfave "github.com/urfave/cli/v2"

	"github.com/daggerflow/dagger"
	"github.com/daggerflow/dagger/dag"
)

// allowFlag is the flag that grants a run capabilities.
func allowFlag() urfave.Flag {
	return &urfave.StringSliceFlag{Name: "allow", Usage: "grant the steps that declare them the capabilities `CAPS`, comma-separated: exec, files, net, net=HOST, env, env=NAME; repeat for more"}
}

// grants reads the --allow flags of the command called name.
func grants(c *urfave.Context, name string) ([]dag.Capability, error) {
	var caps []dag.Capability
	for _, flag := range c.StringSlice("allow") {
		for s := range strings.SplitSeq(flag, ",") {
			if s = strings.TrimSpace(s); s == "" {
				continue
			}
			cp, err := dag.ParseCapability(s)
			if err != nil {
				return nil, &usageError{cmd: name, msg: "--allow " + flag + ": " + err.Error()}
			}
			caps = append(caps, cp)
		}
	}
	return caps, nil
}

// checkGrants refuses a flow one of whose steps declares a capability
// that granted does not cover, saying which flag grants it.
func checkGrants(flow *dagger.Flow, granted []dag.Capability) error {
	missing := flow.Graph().Ungranted(granted)
	if len(missing) == 0 {
		return nil
	}
	var lines []string
	for _, s := range flow.Graph().Steps {
		if c, ok := missing[s.Name]; ok {
			lines = append(lines, fmt.Sprintf("%s: step %s needs the capability %s, which the run does not grant: run it with --allow %s", flow.Path(), s.Name, c, c))
		}
	}
	return &exitError{code: exitInvalid, err: errors.New(strings.Join(lines, "\n"))}
}
