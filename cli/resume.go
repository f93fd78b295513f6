package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
	"strings"

	urfave "github.com/urfave/cli/v2"

	"github.com/daggerflow/dagger"
	"github.com/daggerflow/dagger/builtins"
	"github.com/daggerflow/dagger/dag"
	"github.com/daggerflow/dagger/exec"
	"github.com/daggerflow/dagger/history"
	"github.com/daggerflow/dagger/store"
)

func resumeCommand(set *builtins.Set) *urfave.Command {
	return &urfave.Command{
		Name:      "resume",
		Usage:     "run a failed or cancelled run again, reusing what succeeded",
		ArgsUsage: "RUN",
		Description: "Resume starts a new run of the flow of RUN (an id, a unique prefix of one,\n" +
			"or latest), with its parameter values and the flow file's current code. Every\n" +
			"task that succeeded in RUN, and whose parents were reused too, is copied\n" +
			"instead of run; the first task that is not, and everything after it, runs\n" +
			"with the current code. --from STEP runs that step and every step after it\n" +
			"again even where they succeeded. The new run records RUN as its origin.\n" +
			"It keeps the parameter values of RUN: -p gives only a parameter the flow\n" +
			"gained since.",
		Flags: append([]urfave.Flag{
			&urfave.StringFlag{Name: "from", Usage: "run `STEP` and the steps after it again"},
			&urfave.StringSliceFlag{Name: "param", Aliases: []string{"p"}, KeepSpace: true, Usage: "give a parameter the flow gained since RUN a value, `name=value`; repeat for each"},
			&urfave.StringFlag{Name: "store", Usage: "the store `DIR` the run is in"},
			&urfave.StringFlag{Name: "datastore", Usage: "the datastore `URL` the run keeps its blobs in, which the new run keeps them in too; the run's own if not given"},
		}, executionFlags()...),
		Action: func(c *urfave.Context) error { return resumeRun(c, set) },
	}
}

func resumeRun(c *urfave.Context, set *builtins.Set) error {
	name := c.Command.HelpName
	if c.NArg() != 1 {
		return &usageError{cmd: name, msg: "takes one run: an id, a unique prefix of one, or latest"}
	}
	workers, executor, err := execution(c, name)
	if err != nil {
		return err
	}
	if err := checkDatastore(c); err != nil {
		return err
	}
	ctx, again, stop := notifySignals(c.Context)
	defer stop()
	// A store that is not there has no run to resume: it is not made.
	st, _, err := openStore(ctx, c.String("store"), true)
	if errors.Is(err, history.ErrNoStore) {
		return &exitError{code: exitInvalid, err: fmt.Errorf("run %q: not found: %w", c.Args().First(), err)}
	}
	if err != nil {
		return failed(err)
	}
	origin, err := st.Run(ctx, c.Args().First())
	if err != nil {
		st.Close()
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrAmbiguous) {
			return &exitError{code: exitInvalid, err: err}
		}
		return failed(err)
	}
	from := c.String("from")
	if store.Alive(origin) {
		st.Close()
		return &exitError{code: exitInvalid, err: fmt.Errorf("run %s is still running, in a dagger process of this machine: resume it once it has ended, or stop it first", origin.ID)}
	}
	if origin.Status == store.RunSucceeded && from == "" {
		st.Close()
		return &exitError{code: exitInvalid, err: fmt.Errorf("run %s succeeded: there is nothing to resume; --from STEP runs a step and those after it again", origin.ID)}
	}
	if origin.FlowPath == "" {
		st.Close()
		return &exitError{code: exitInvalid, err: fmt.Errorf("run %s ran a flow that a program loaded from its own files, not from a flow file: resume it from that program", origin.ID)}
	}
	var flow *dagger.Flow
	if _, statErr := os.Stat(origin.FlowPath); errors.Is(statErr, fs.ErrNotExist) {
		// The flow has moved, or is gone: the run saved its code.
		if flow, err = dagger.LoadCode(ctx, st, origin, set); err != nil {
			st.Close()
			return failed(fmt.Errorf("%s is gone, and the code run %s saved cannot be run: %w", origin.FlowPath, origin.ID, err))
		}
		fmt.Fprintf(c.App.ErrWriter, "%s is gone: resuming with the code run %s ran (%s)\n", origin.FlowPath, origin.ID, origin.CodeHash)
	} else if flow, err = loadFlow(origin.FlowPath, set); err != nil {
		st.Close()
		return err
	}
	allow, err := grants(c, name)
	if err != nil {
		st.Close()
		return err
	}
	if err := checkGrants(flow, allow); err != nil {
		st.Close()
		return err
	}
	if from != "" && flow.Graph().Step(from) == nil {
		st.Close()
		steps := make([]string, len(flow.Graph().Steps))
		for i, s := range flow.Graph().Steps {
			steps[i] = s.Name
		}
		return &usageError{cmd: name, msg: fmt.Sprintf("--from %s: flow %s has no such step; its steps are %s", from, flow.Name(), strings.Join(steps, ", "))}
	}
	params, err := resumeParams(c, name, flow, origin)
	if err != nil {
		st.Close()
		return err
	}
	opts := dagger.Options{MaxWorkers: workers, Executor: executor, Datastore: c.String("datastore"), Allow: allow, Params: params}
	onKube, settings, err := resumeOnKubernetes(ctx, c, st, origin)
	if err != nil {
		st.Close()
		return err
	}
	if onKube != nil {
		defer onKube.Close()
		opts.Executor, opts.ExecutorSettings = onKube, settings
		if !c.IsSet("max-workers") {
			opts.MaxWorkers = defaultPods
		}
	}
	return runInStore(ctx, c, again, st, flow, func(ctx context.Context, opts dagger.Options) (store.Run, error) {
		return dagger.Resume(ctx, st, flow, origin, from, opts)
	}, opts)
}

// resumeParams returns the param values of the run that resumes origin
// with flow: origin's, and those that -p gives to params the flow gained
// since; nil without -p, for dagger.Resume to take origin's. A -p of a
// param that origin had is refused, as Metaflow's resume refuses any: the
// tasks that resume copies ran with origin's value, and those after them
// must see the same.
func resumeParams(c *urfave.Context, name string, flow *dagger.Flow, origin store.Run) (map[string]string, error) {
	given, err := paramFlags(name, c.StringSlice("param"))
	if err != nil || len(given) == 0 {
		return nil, err
	}
	for _, p := range slices.Sorted(maps.Keys(given)) {
		v, had := origin.Params[p]
		has := slices.ContainsFunc(flow.Params(), func(fp *dag.Param) bool { return fp.Name == p })
		if had && has {
			return nil, &usageError{cmd: name, msg: fmt.Sprintf("-p %s: run %s ran with %s=%s, which resume keeps, as the tasks it reuses ran with it; -p gives only a parameter the flow gained since, and dagger run starts a run with other values", p, origin.ID, p, v)}
		}
	}
	params, err := exec.ParamsFromRecord(flow.Graph(), origin.Params)
	if err != nil {
		return nil, &exitError{code: exitInvalid, err: fmt.Errorf("the params of run %s: %w", origin.ID, err)}
	}
	maps.Copy(params, given)
	return params, nil
}
