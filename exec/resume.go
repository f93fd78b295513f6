package exec

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/daggerflow/dagger/dag"
	"github.com/daggerflow/dagger/store"
)

// Resume makes a run the resumption of an earlier one, which failed or was
// cancelled: the new run copies the tasks of its origin that it can, and
// runs the rest with the current code.
//
// A task is copied, not run, when its origin task succeeded (or was itself
// copied), its step is not at or after From, every task it follows was
// copied too, and the steps it went to are still where the flow's current
// code goes from its step. So the first task that runs again, and
// everything after it, runs with the current code and params, while what
// came before keeps the artifacts the origin made: a change to the code of
// a step before the failure is not picked up unless From names that step.
type Resume struct {
	Origin store.Run
	// From, if set, is a step to run again with every step after it, even
	// where the origin's tasks succeeded.
	From string
}

// A resumer decides which tasks of a resumed run are copied.
type resumer struct {
	origin string
	tasks  map[string]store.Task // the origin's tasks by ID
	rerun  map[string]bool       // steps that run again whatever the origin did
	copied map[string]bool       // tasks of this run copied from the origin
}

func newResumer(ctx context.Context, st Recorder, g *dag.Graph, r *Resume) (*resumer, error) {
	tasks, err := st.Tasks(ctx, r.Origin.ID)
	if err != nil {
		return nil, err
	}
	res := &resumer{
		origin: r.Origin.ID,
		tasks:  make(map[string]store.Task, len(tasks)),
		rerun:  make(map[string]bool),
		copied: make(map[string]bool),
	}
	for _, t := range tasks {
		res.tasks[t.ID] = t
	}
	if r.From != "" {
		if g.Step(r.From) == nil {
			names := make([]string, len(g.Steps))
			for i, s := range g.Steps {
				names[i] = s.Name
			}
			return nil, fmt.Errorf("flow %s has no step %s; its steps are %s", g.Name, r.From, strings.Join(names, ", "))
		}
		queue := []string{r.From}
		res.rerun[r.From] = true
		for len(queue) > 0 {
			s := g.Step(queue[0])
			queue = queue[1:]
			if s.Next == nil {
				continue
			}
			for _, t := range s.Next.Names() {
				if !res.rerun[t] {
					res.rerun[t] = true
					queue = append(queue, t)
				}
			}
		}
	}
	return res, nil
}

// reusable returns the origin's record of the task p would run, when the
// task can be copied from it.
func (r *resumer) reusable(g *dag.Graph, p *pending) (store.Task, bool) {
	o, ok := r.tasks[p.spec.TaskID]
	if !ok || (o.Status != store.TaskSucceeded && o.Status != store.TaskReused) || r.rerun[p.spec.Step] {
		return store.Task{}, false
	}
	if !slices.Equal(o.Parents, p.parents) {
		return store.Task{}, false
	}
	for _, parent := range p.parents {
		if !r.copied[parent] {
			return store.Task{}, false
		}
	}
	step := g.Step(p.spec.Step)
	fannedOut := o.Foreach != "" // every fan-out has a manifest, empty ones too
	ok = checkTransition(step, len(o.Next) > 0, o.Next, fannedOut) == nil
	return o, ok
}

// reuse copies the origin's record o for the task p would run, in the
// background like a commit.
func (s *scheduler) reuse(p *pending, o store.Task) {
	s.resume.copied[p.spec.TaskID] = true
	s.committing++
	from := s.resume.origin
	if o.Status == store.TaskReused {
		from = o.Origin // where it really ran
	}
	step := s.g.Step(p.spec.Step)
	go func() {
		a := &attempt{p: p, start: time.Now(), copied: true}
		a.res = &TaskResult{OK: true, Artifacts: strs(o.Artifacts), Next: o.Next, Logs: string(o.Logs)}
		if step.Next != nil && step.Next.Kind == dag.Foreach {
			a.res.Foreach, a.err = s.readManifest(o.Foreach)
		}
		a.task = store.Task{RunID: s.run.ID, ID: p.spec.TaskID, Step: p.spec.Step, Parents: p.parents, Index: p.spec.Index,
			Status: store.TaskReused, Attempt: o.Attempt, Started: o.Started, Ended: o.Ended, Next: o.Next,
			ForeachLen: o.ForeachLen, Foreach: o.Foreach, Artifacts: o.Artifacts, Logs: o.Logs, Error: o.Error, Origin: from}
		if a.err == nil {
			a.err = s.st.CommitTask(context.WithoutCancel(s.ctx), a.task, store.Attempt{})
		}
		s.committed <- a
	}()
}

// writeManifest saves the hashes of a task's foreach elements, one a
// line, which a resumed run reads back to fan out again without running
// the task. They are streamed: those of a million elements take 72 MB.
func (s *scheduler) writeManifest(ctx context.Context, elements []string) (store.Hash, error) {
	h, _, err := s.opts.Blobs.PutReader(ctx, &manifestReader{elements: elements})
	return h, err
}

// A manifestReader reads elements, one a line, without a final newline.
type manifestReader struct {
	elements []string
	off      int  // in elements[0]
	newline  bool // before elements[0]
}

func (r *manifestReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) && len(r.elements) > 0 {
		if r.newline {
			p[n] = '\n'
			n++
			r.newline = false
			continue
		}
		c := copy(p[n:], r.elements[0][r.off:])
		n += c
		r.off += c
		if r.off == len(r.elements[0]) {
			r.elements, r.off, r.newline = r.elements[1:], 0, true
		}
	}
	if n == 0 && len(r.elements) == 0 {
		return 0, io.EOF
	}
	return n, nil
}

func (s *scheduler) readManifest(h store.Hash) ([]string, error) {
	if h == "" {
		return []string{}, nil
	}
	data, err := s.opts.Blobs.Get(context.WithoutCancel(s.ctx), h)
	if err != nil {
		return nil, fmt.Errorf("reading the foreach elements of the origin run: %w", err)
	}
	if len(data) == 0 {
		return []string{}, nil
	}
	return strings.Split(string(data), "\n"), nil
}

func strs(m map[string]store.Hash) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = string(v)
	}
	return out
}
