package store

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Tests that need several processes run the test binary again as a child,
// selecting one test with -test.run and giving it its job in environment
// variables. The child prints its results on lines of standard output
// starting with resultPrefix.

const resultPrefix = "result: "

// startChild starts this test binary running test in a child process with
// the given environment variables added. It returns the child's standard
// output.
func startChild(t *testing.T, test string, env ...string) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// A test that fails early must not leave children waiting forever.
	t.Cleanup(func() { cmd.Process.Kill() })
	return cmd, bufio.NewScanner(stdout)
}

// childProcess is a child started by startChild.
type childProcess struct {
	cmd *exec.Cmd
	out *bufio.Scanner
}

// result returns the next result the child prints or, if it exits first,
// an error with its output.
func (c *childProcess) result() (string, error) {
	var lines []string
	for c.out.Scan() {
		if r, ok := strings.CutPrefix(c.out.Text(), resultPrefix); ok {
			return r, nil
		}
		lines = append(lines, c.out.Text())
	}
	return "", fmt.Errorf("child exited: %v\n%s", c.cmd.Wait(), strings.Join(lines, "\n"))
}

// wait waits for the child to exit, and returns an error with its output if
// it failed.
func (c *childProcess) wait() error {
	var lines []string
	for c.out.Scan() {
		lines = append(lines, c.out.Text())
	}
	if err := c.cmd.Wait(); err != nil {
		return fmt.Errorf("child: %v\n%s", err, strings.Join(lines, "\n"))
	}
	return nil
}

// results returns the results printed by a child.
func results(sc *bufio.Scanner) ([]string, error) {
	var out []string
	for sc.Scan() {
		if r, ok := strings.CutPrefix(sc.Text(), resultPrefix); ok {
			out = append(out, r)
		}
	}
	return out, sc.Err()
}

// TestKillDuringPut kills a process in the middle of storing a large blob,
// while it commits tasks with small ones from several goroutines; then
// checks the store. The child announces that it is in the middle of a
// blob, and stalls there, so that every kill lands mid-write however fast
// the machine is; the small commits are at random moments.
func TestKillDuringPut(t *testing.T) {
	if dir := os.Getenv("STORE_TEST_KILL_DIR"); dir != "" {
		seed, err := strconv.ParseUint(os.Getenv("STORE_TEST_SEED"), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		putForever(t, dir, seed)
		return
	}
	if testing.Short() {
		t.Skip("slow: starts and kills processes")
	}
	dir := t.TempDir()
	const rounds = 3
	for round := range rounds {
		cmd, out := startChild(t, "TestKillDuringPut", "STORE_TEST_KILL_DIR="+dir, fmt.Sprintf("STORE_TEST_SEED=%d", round))
		c := &childProcess{cmd, out}
		for {
			r, err := c.result()
			if err != nil {
				t.Fatal(err)
			}
			if r == stalled {
				break
			}
		}
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		if err := c.wait(); err == nil {
			t.Fatal("child exited normally; want killed")
		}
		tmp, err := os.ReadDir(filepath.Join(dir, "tmp"))
		if err != nil {
			t.Fatal(err)
		}
		// Temporary files are left by kills only, at least one a kill.
		if len(tmp) <= round {
			t.Fatalf("%d temporary files after %d kills in the middle of a blob", len(tmp), round+1)
		}
	}

	s := openStoreAt(t, dir)
	checkClean(t, s)
	runs, err := s.Runs(t.Context(), RunFilter{})
	if err != nil {
		t.Fatal(err)
	}
	large, small := 0, 0
	for _, r := range runs {
		ts, err := s.Tasks(t.Context(), r.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range ts {
			if task.Status == TaskRunning {
				continue // killed between start and commit
			}
			if strings.HasPrefix(task.ID, "small.") {
				small++
			} else {
				large++
			}
			if _, err := s.Blobs().Get(t.Context(), task.Artifacts["data"]); err != nil {
				t.Errorf("task %s/%s: %v", r.ID, task.ID, err)
			}
		}
	}
	t.Logf("%d blob files, %d small blobs; %d tasks with large blobs committed, %d with small", len(blobFiles(t, dir)), inlineRows(t, s), large, small)
	if large == 0 || small == 0 {
		t.Error("the children committed no tasks of some kind")
	}
}

// putForever stores large blobs in dir, each the artifact of a committed
// task, until it is killed. Meanwhile, other goroutines commit tasks whose
// artifacts, logs and foreach elements are small blobs, as the engine does.
func putForever(t *testing.T, dir string, seed uint64) {
	ctx := t.Context()
	s := openStoreAt(t, dir)
	run, err := s.CreateRun(ctx, Run{Flow: "kill"})
	if err != nil {
		t.Fatal(err)
	}
	for w := range 4 {
		go func() {
			if err := commitSmallForever(ctx, s, run.ID, w); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}()
	}
	rng := rand.New(rand.NewPCG(seed, 0))
	// Blobs are slices of one random buffer, made distinct by a serial
	// number, so that the child spends its time storing rather than
	// generating them.
	buf := randomBytes(seed, 17<<20)
	stall := 1 + rng.IntN(3) // the blob in whose middle the child stalls
	for i := 0; ; i++ {
		n := 1<<20 + rng.IntN(16<<20)
		data := buf[:n]
		binary.LittleEndian.PutUint64(data, seed<<32|uint64(i))
		var h Hash
		switch {
		case i == stall:
			// Past the first inlineMax bytes, which PutReader reads
			// before it opens a file.
			_, _, err = s.Blobs().PutReader(ctx, &stallingReader{data: data, stall: inlineMax + 1 + rng.IntN(n-inlineMax-1)})
		case i%2 == 0:
			h, err = s.Blobs().Put(ctx, data)
		default:
			h, _, err = s.Blobs().PutReader(ctx, bytes.NewReader(data))
		}
		if err != nil {
			t.Fatal(err)
		}
		task := Task{RunID: run.ID, ID: strconv.Itoa(i), Step: "s", Status: TaskSucceeded, Attempt: 1, Artifacts: map[string]Hash{"data": h}}
		if err := s.CommitTask(ctx, task, Attempt{}); err != nil {
			t.Fatal(err)
		}
		fmt.Println(resultPrefix + string(h))
	}
}

// stalled is the result a child prints when it stalls in the middle of a
// blob, waiting to be killed.
const stalled = "stalled"

// stallingReader reads data up to stall bytes, then prints stalled and
// blocks for good.
type stallingReader struct {
	data  []byte
	stall int
}

func (r *stallingReader) Read(p []byte) (int, error) {
	if r.stall == 0 {
		fmt.Println(resultPrefix + stalled)
		select {}
	}
	n := copy(p[:min(len(p), r.stall)], r.data)
	r.data, r.stall = r.data[n:], r.stall-n
	return n, nil
}

// commitSmallForever commits tasks of run whose blobs are small, until the
// process is killed. Every tenth task stores a blob and Syncs it before it
// starts, as "dagger step" does.
func commitSmallForever(ctx context.Context, s *Store, run string, worker int) error {
	for i := 0; ; i++ {
		id := fmt.Sprintf("small.%d.%d", worker, i)
		if i%10 == 0 {
			if _, _, err := s.Blobs().PutReader(ctx, strings.NewReader("synced by "+id)); err != nil {
				return err
			}
			if err := s.Blobs().Sync(ctx); err != nil {
				return err
			}
		}
		start := Task{RunID: run, ID: id, Step: "small", Attempt: 1, Started: time.Now()}
		if err := s.StartTask(ctx, start); err != nil {
			return err
		}
		var hashes [3]Hash
		for j, what := range []string{"data", "logs", "foreach"} {
			h, err := s.Blobs().Put(ctx, []byte(what+" of "+id))
			if err != nil {
				return err
			}
			hashes[j] = h
		}
		task := start
		task.Status, task.Ended = TaskSucceeded, time.Now()
		task.Artifacts, task.Logs, task.Foreach = map[string]Hash{"data": hashes[0]}, hashes[1], hashes[2]
		attempt := Attempt{RunID: run, TaskID: id, N: 1, Status: TaskSucceeded, Started: task.Started, Ended: task.Ended, Logs: hashes[1]}
		if err := s.CommitTask(ctx, task, attempt); err != nil {
			return err
		}
	}
}

// work creates runs of tasks in the store in dir, committing the tasks of
// each run concurrently, and returns the IDs of the runs.
func work(ctx context.Context, dir string, runs, tasks int) ([]string, error) {
	s, err := Open(ctx, dir)
	if err != nil {
		return nil, err
	}
	ids, err := workOn(ctx, s, runs, tasks)
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	return ids, err
}

func workOn(ctx context.Context, s *Store, runs, tasks int) ([]string, error) {
	var ids []string
	for range runs {
		r, err := s.CreateRun(ctx, Run{Flow: "work"})
		if err != nil {
			return nil, err
		}
		ids = append(ids, r.ID)
		errs := make(chan error, tasks)
		for i := range tasks {
			go func() {
				errs <- func() error {
					id := strconv.Itoa(i)
					if err := s.StartTask(ctx, Task{RunID: r.ID, ID: id, Step: "s", Attempt: 1, Started: time.Now()}); err != nil {
						return err
					}
					h, err := s.Blobs().Put(ctx, []byte(r.ID+"/"+id))
					if err != nil {
						return err
					}
					t := Task{RunID: r.ID, ID: id, Step: "s", Status: TaskSucceeded, Attempt: 1, Artifacts: map[string]Hash{"out": h}}
					return s.CommitTask(ctx, t, Attempt{RunID: r.ID, TaskID: id, N: 1, Status: TaskSucceeded})
				}()
			}()
		}
		for range tasks {
			if err := <-errs; err != nil {
				return nil, err
			}
		}
		if err := s.FinishRun(ctx, r.ID, RunSucceeded, ""); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// checkWork checks the runs made by work.
func checkWork(t *testing.T, s *Store, ids []string, tasks int) {
	t.Helper()
	seen := make(map[string]bool)
	for _, id := range ids {
		if seen[id] {
			t.Errorf("run ID %s assigned twice", id)
		}
		seen[id] = true
		r, err := s.Run(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != RunSucceeded {
			t.Errorf("run %s: status %s", id, r.Status)
		}
		ts, err := s.Tasks(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if len(ts) != tasks {
			t.Errorf("run %s: %d tasks, want %d", id, len(ts), tasks)
		}
		for _, task := range ts {
			want := []byte(id + "/" + task.ID)
			got, err := s.Blobs().Get(t.Context(), task.Artifacts["out"])
			if task.Status != TaskSucceeded || err != nil || !bytes.Equal(got, want) {
				t.Errorf("task %s/%s: status %s, artifact %q, %v", id, task.ID, task.Status, got, err)
			}
		}
	}
	all, err := s.Runs(t.Context(), RunFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(ids) {
		t.Errorf("store has %d runs, want %d", len(all), len(ids))
	}
}

func TestConcurrentStores(t *testing.T) {
	dir := t.TempDir()
	const stores, runs, tasks = 3, 4, 50
	s := openStoreAt(t, dir)
	var (
		mu  sync.Mutex
		ids []string
		wg  sync.WaitGroup
	)
	for range stores {
		wg.Go(func() {
			got, err := work(t.Context(), dir, runs, tasks)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			ids = append(ids, got...)
			mu.Unlock()
		})
	}
	wg.Wait()
	checkWork(t, s, ids, tasks)
	checkClean(t, s)
}

func TestConcurrentProcesses(t *testing.T) {
	const runs, tasks = 4, 50
	if dir := os.Getenv("STORE_TEST_WORK_DIR"); dir != "" {
		ids, err := work(t.Context(), dir, runs, tasks)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			fmt.Println(resultPrefix + id)
		}
		return
	}
	if testing.Short() {
		t.Skip("slow: starts processes")
	}
	dir := t.TempDir()
	const children = 2
	type result struct {
		ids []string
		err error
	}
	done := make(chan result, children+1)
	for range children {
		cmd, out := startChild(t, "TestConcurrentProcesses", "STORE_TEST_WORK_DIR="+dir)
		go func() {
			ids, err := results(out)
			if werr := cmd.Wait(); werr != nil {
				err = fmt.Errorf("child: %v", werr)
			}
			done <- result{ids, err}
		}()
	}
	go func() {
		ids, err := work(t.Context(), dir, runs, tasks)
		done <- result{ids, err}
	}()
	var ids []string
	for range children + 1 {
		r := <-done
		if r.err != nil {
			t.Error(r.err)
		}
		ids = append(ids, r.ids...)
	}
	if len(ids) != (children+1)*runs {
		t.Fatalf("got %d run IDs, want %d", len(ids), (children+1)*runs)
	}
	slices.Sort(ids)
	s := openStoreAt(t, dir)
	checkWork(t, s, ids, tasks)
	checkClean(t, s)
}
