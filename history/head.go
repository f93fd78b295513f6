package history

import (
	"context"
	"fmt"

	"github.com/daggerflow/dagger/dag"
	"github.com/daggerflow/dagger/starlark"
	"github.com/daggerflow/dagger/store"
)

// LoadHead reads the record of the run that ref identifies, as Load does,
// but none of its tasks: for readers of runs too wide to hold, such as
// the pages of "dagger ui", which ask the store for the tasks they show.
// The Run it returns reads the run's blobs (Artifact, Blobs, Code,
// Graph), and its output through a LogReader, as any; its Tasks are
// empty until Reload reads them all.
func LoadHead(ctx context.Context, st *store.Store, ref string) (*Run, error) {
	rec, err := st.Run(ctx, ref)
	if err != nil {
		return nil, err
	}
	r := &Run{Run: rec, st: st}
	r.flowSteps = r.readFlowSteps(ctx)
	return r, nil
}

// ReloadRecord reads the run's record again, as it is now, but not its
// tasks.
func (r *Run) ReloadRecord(ctx context.Context) error {
	rec, err := r.st.Run(ctx, r.ID)
	if err != nil {
		return err
	}
	r.Run = rec
	return nil
}

// Code returns the code package the run ran: the flow file and the files
// it loads or includes, as they were when it started.
func (r *Run) Code(ctx context.Context) (*starlark.Package, error) {
	blobs, err := r.Blobs(ctx)
	if err != nil {
		return nil, err
	}
	data, err := blobs.Get(ctx, r.CodeHash)
	if err != nil {
		return nil, fmt.Errorf("the code of run %s: %w", r.ID, err)
	}
	pkg, err := starlark.DecodePackage(data)
	if err != nil {
		return nil, fmt.Errorf("the code of run %s: %w", r.ID, err)
	}
	return pkg, nil
}

// Graph returns the step graph of the flow the run ran, read from its
// code package without running any of it, as "dagger show" reads a flow
// file: as far as it can be read, whatever errors it has, which were the
// run's concern.
func (r *Run) Graph(ctx context.Context) (*dag.Graph, error) {
	pkg, err := r.Code(ctx)
	if err != nil {
		return nil, err
	}
	f, err := dag.Parse(pkg.Flow, pkg.Files[pkg.Flow])
	if err != nil {
		return nil, fmt.Errorf("the flow of run %s: %w", r.ID, err)
	}
	g, err := dag.Extract(f, func(string) bool { return false })
	if err == nil {
		// Validate finds the join that closes each split and foreach.
		_ = dag.Validate(g)
	}
	return g, nil
}
