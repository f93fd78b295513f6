package cli

import (
	"context"
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

// TestKilledRunsResume kills dagger run with SIGKILL at many moments of a
// run. After each kill the store must be consistent, and dagger resume
// must finish the run without running again any task that had finished.
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

	// How long an uninterrupted run takes tells when to kill.
	start := time.Now()
	if out, err := daggerProcess("run", "--store", storeDir, flow).CombinedOutput(); err != nil {
		t.Fatalf("uninterrupted run: %v\n%s", err, out)
	}
	whole := time.Since(start)
	want := finishedOutput(t, storeDir, "latest")

	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 8 {
		cmd := daggerProcess("run", "--store", storeDir, flow)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.Int64N(int64(whole))))
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		cmd.Wait() // killed, or it had finished

		st, err := store.Open(context.Background(), storeDir)
		if err != nil {
			t.Fatal(err)
		}
		killed, err := st.Run(context.Background(), "latest")
		if err != nil {
			t.Fatal(err)
		}
		checkStore(t, st)
		finished := make(map[string]bool)
		tasks, err := st.Tasks(context.Background(), killed.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range tasks {
			if tk.Status == store.TaskSucceeded {
				finished[tk.ID] = true
			}
		}
		st.Close()
		if killed.Status == store.RunSucceeded {
			t.Logf("round %d: the run finished before the kill", round)
			continue
		}

		if out, err := daggerProcess("resume", "--store", storeDir, killed.ID).CombinedOutput(); err != nil {
			t.Fatalf("round %d: resume of run %s killed with %d tasks finished: %v\n%s", round, killed.ID, len(finished), err, out)
		}
		st, err = store.Open(context.Background(), storeDir)
		if err != nil {
			t.Fatal(err)
		}
		resumed, err := st.Run(context.Background(), "latest")
		if err != nil {
			t.Fatal(err)
		}
		if resumed.Origin != killed.ID || resumed.Status != store.RunSucceeded {
			t.Fatalf("round %d: resumed run %s of %q is %s", round, resumed.ID, resumed.Origin, resumed.Status)
		}
		tasks, err = st.Tasks(context.Background(), resumed.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range tasks {
			attempts, err := st.Attempts(context.Background(), resumed.ID, tk.ID)
			if err != nil {
				t.Fatal(err)
			}
			if finished[tk.ID] && (tk.Status != store.TaskReused || len(attempts) != 0) {
				t.Errorf("round %d: task %s had finished before the kill, but the resumed run gave it status %s and %d attempts", round, tk.ID, tk.Status, len(attempts))
			}
		}
		checkStore(t, st)
		st.Close()
		if got := finishedOutput(t, storeDir, resumed.ID); got != want {
			t.Errorf("round %d: the resumed run printed %q, the uninterrupted one %q", round, got, want)
		}
		t.Logf("round %d: killed with %d of %d tasks finished; resumed as %s", round, len(finished), len(tasks), resumed.ID)
	}
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
