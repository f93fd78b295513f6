package cli

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/daggerflow/dagger/store"
)

// crashFlow fans out to tasks that each take a few milliseconds, so that a
// kill lands among tasks running, being recorded and being reused.
const crashFlow = `
def _work(n):
    total = 0
    for i in range(n):
        total += i * i
    return total

def start(ctx):
    ctx.items = list(range(40))
    next_step(work, foreach = ctx.items)

def work(ctx):
    ctx.result = _work(20000 + ctx.input)
    print("worked on", ctx.input)
    next_step(gather)

def gather(ctx, inputs):
    ctx.total = 0
    for i in inputs:
        ctx.total += i.result
    next_step(finish)

def finish(ctx):
    print("total", ctx.total)
`

// daggerProcess returns the command that runs this test binary as dagger.
func daggerProcess(args ...string) *osexec.Cmd {
	cmd := osexec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), mainEnv+"=1")
	return cmd
}

// Kills of TestKilledRunsResume.
const (
	// wantKills is how many kills must land mid-run, with some tasks
	// finished and some not: those test what resume reuses.
	wantKills = 8
	// maxKills bounds the kills tried, each of which runs dagger twice,
	// one after the other.
	maxKills = 3 * wantKills
)

// TestKilledRunsResume kills dagger run with SIGKILL at many moments of a
// run: after a random number of its tasks finished, as the store records
// them, and a random delay. After each kill the store must be consistent, and
// dagger resume must finish the run without running again any task that
// had finished. Kills that land before any task finished, or once all
// had, are tried again, up to maxKills, until wantKills landed mid-run.
func TestKilledRunsResume(t *testing.T) {
	if testing.Short() {
		t.Skip("kills many runs")
	}
	dir := t.TempDir()
	flow := filepath.Join(dir, "crash.star")
	if err := os.WriteFile(flow, []byte(crashFlow), 0o644); err != nil {
		t.Fatal(err)
	}
	storeDir := filepath.Join(dir, "store")
	if out, err := daggerProcess("run", "--store", storeDir, flow).CombinedOutput(); err != nil {
		t.Fatalf("uninterrupted run: %v\n%s", err, out)
	}
	want := finishedOutput(t, storeDir, "latest")

	rng := rand.New(rand.NewPCG(1, 2))
	landed := 0
	for round := 0; round < maxKills && landed < wantKills; round++ {
		// start, the 40 tasks of work, gather and finish.
		const tasks = 43
		id := killAfter(t, storeDir, flow, 1+rng.IntN(tasks-1), time.Duration(rng.Int64N(int64(2*time.Millisecond))))
		finished := killedRun(t, storeDir, id)
		if len(finished) == 0 || len(finished) == tasks {
			t.Logf("round %d: the kill landed with %d of %d tasks finished; trying again", round, len(finished), tasks)
			continue
		}
		landed++
		resumed := resumeKilled(t, storeDir, id, finished)
		if got := finishedOutput(t, storeDir, resumed); got != want {
			t.Errorf("round %d: the resumed run printed %q, the uninterrupted one %q", round, got, want)
		}
		t.Logf("round %d: killed with %d of %d tasks finished; resumed as %s", round, len(finished), tasks, resumed)
	}
	if landed < wantKills {
		t.Errorf("%d of %d kills landed mid-run, want %d", landed, maxKills, wantKills)
	}
}

// killAfter starts dagger run of flow in storeDir, waits until the store
// records n of its tasks finished, then for delay, and kills it with
// SIGKILL. It returns the ID of the run. The store, not the output, says
// how far the run is: dagger batches its output.
func killAfter(t *testing.T, storeDir, flow string, n int, delay time.Duration) string {
	t.Helper()
	ctx := context.Background()
	st, err := store.OpenReadOnly(ctx, storeDir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	before := latestRun(t, st)
	cmd := daggerProcess("run", "--store", storeDir, flow)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait() // killed, or it had finished
		close(exited)
	}()
	var id string
	for deadline := time.Now().Add(time.Minute); finishedTasks(t, st, id) < n; {
		select {
		case <-exited:
			// It finished between two looks: the caller tries again.
			return latestRun(t, st)
		case <-time.After(500 * time.Microsecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("dagger run %s has not finished %d tasks in a minute", flow, n)
		}
		if id == "" {
			if r := latestRun(t, st); r != before {
				id = r
			}
		}
	}
	time.Sleep(delay)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatal(err)
	}
	<-exited
	return id
}

// latestRun returns the ID of the latest run in st, "" if there is none.
func latestRun(t *testing.T, st *store.Store) string {
	t.Helper()
	runs, err := st.Runs(context.Background(), store.RunFilter{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) == 0 {
		return ""
	}
	return runs[0].ID
}

// finishedTasks returns how many tasks of run id in st succeeded; 0 for
// no run.
func finishedTasks(t *testing.T, st *store.Store, id string) int {
	t.Helper()
	if id == "" {
		return 0
	}
	tasks, err := st.Tasks(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, tk := range tasks {
		if tk.Status == store.TaskSucceeded {
			n++
		}
	}
	return n
}

// killedRun checks the store after run id was killed, and returns the
// IDs of the tasks of the run that had finished.
func killedRun(t *testing.T, storeDir, id string) map[string]bool {
	t.Helper()
	st, err := store.Open(context.Background(), storeDir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	checkStore(t, st)
	tasks, err := st.Tasks(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	finished := make(map[string]bool)
	for _, tk := range tasks {
		if tk.Status == store.TaskSucceeded {
			finished[tk.ID] = true
		}
	}
	return finished
}

// resumeKilled resumes the killed run id, whose tasks finished had
// finished, checks that the resumed run reused them all and succeeded,
// and returns its ID.
func resumeKilled(t *testing.T, storeDir, id string, finished map[string]bool) string {
	t.Helper()
	if out, err := daggerProcess("resume", "--store", storeDir, id).CombinedOutput(); err != nil {
		t.Fatalf("resume of run %s killed with %d tasks finished: %v\n%s", id, len(finished), err, out)
	}
	st, err := store.Open(context.Background(), storeDir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	resumed, err := st.Run(context.Background(), "latest")
	if err != nil {
		t.Fatal(err)
	}
	if resumed.Origin != id || resumed.Status != store.RunSucceeded {
		t.Fatalf("resumed run %s of %q is %s, want a run of %s that succeeded", resumed.ID, resumed.Origin, resumed.Status, id)
	}
	tasks, err := st.Tasks(context.Background(), resumed.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range tasks {
		attempts, err := st.Attempts(context.Background(), resumed.ID, tk.ID)
		if err != nil {
			t.Fatal(err)
		}
		if finished[tk.ID] && (tk.Status != store.TaskReused || len(attempts) != 0) {
			t.Errorf("task %s had finished before the kill, but the resumed run gave it status %s and %d attempts", tk.ID, tk.Status, len(attempts))
		}
	}
	checkStore(t, st)
	return resumed.ID
}

// finishedOutput returns what the finish task of a run printed.
func finishedOutput(t *testing.T, storeDir, run string) string {
	t.Helper()
	r := runDagger(t, "logs", "--store", storeDir, run+"/finish")
	if r.code != 0 {
		t.Fatalf("dagger logs: %d\n%s", r.code, r.stderr)
	}
	return r.stdout
}

// checkStore fails the test if the store reports a problem.
func checkStore(t *testing.T, st *store.Store) {
	t.Helper()
	problems, err := st.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("store problem: %v", p)
	}
}

// TestConcurrentRuns runs two dagger processes on one store at once.
func TestConcurrentRuns(t *testing.T) {
	dir := t.TempDir()
	flow := filepath.Join(dir, "crash.star")
	if err := os.WriteFile(flow, []byte(crashFlow), 0o644); err != nil {
		t.Fatal(err)
	}
	storeDir := filepath.Join(dir, "store")
	var cmds []*osexec.Cmd
	var outs []*strings.Builder
	for range 2 {
		cmd := daggerProcess("run", "--store", storeDir, flow)
		out := &strings.Builder{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
		outs = append(outs, out)
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("run %d: %v\n%s", i, err, outs[i])
		}
	}
	st, err := store.Open(context.Background(), storeDir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	runs, err := st.Runs(context.Background(), store.RunFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 || runs[0].ID == runs[1].ID {
		t.Fatalf("runs = %v, want two distinct ones", runs)
	}
	for _, r := range runs {
		if r.Status != store.RunSucceeded {
			t.Errorf("run %s: %s %s", r.ID, r.Status, r.Error)
		}
	}
	checkStore(t, st)
}
