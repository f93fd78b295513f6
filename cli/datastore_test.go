package cli

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/daggerflow/dagger/exec"
	"github.com/daggerflow/dagger/internal/s3test"
)

// TestDatastoreHistory runs a flow with its blobs on an S3-protocol server,
// then reads it back from another directory: inspect, logs and resume
// work as for a run whose blobs are in the store, and print the same.
func TestDatastoreHistory(t *testing.T) {
	t.Chdir(repoRoot)
	t.Setenv(mainEnv, "1")
	s3 := s3test.Start(t)
	setS3Env(t, s3)
	flow, err := filepath.Abs("examples/foreach.star")
	if err != nil {
		t.Fatal(err)
	}
	local, remote := t.TempDir(), t.TempDir()
	for _, args := range [][]string{
		{"run", "--store", local, flow},
		{"run", "--store", remote, "--executor", "process", "--datastore", s3.URL("history"), flow},
	} {
		if r := runDagger(t, args...); r.code != exitOK {
			t.Fatalf("dagger %s: exit %d\n%s", strings.Join(args, " "), r.code, r.stderr)
		}
	}
	keys, err := s3.Keys()
	if err != nil || len(keys) == 0 {
		t.Fatalf("the bucket holds %d keys, %v: the run's blobs are not there", len(keys), err)
	}

	t.Chdir(t.TempDir())
	ids := regexp.MustCompile(`\b[0-9a-z]{12}\b`)
	// Times and durations differ from run to run.
	times := regexp.MustCompile(`(?m)^(path|started|ended|params) .*$|"(started|ended|created)": "[^"]*"|\((<1ms|\d[^)]*)\)|<?\d+(\.\d+)?(ms|µs|s)\b`)
	for _, args := range [][]string{
		{"inspect", "latest"},
		{"inspect", "latest/square/1"},
		{"inspect", "--json", "latest/add/total"},
		{"logs", "latest"},
		{"logs", "--json", "latest/square"},
	} {
		var outputs []string
		for _, dir := range []string{local, remote} {
			r := runDagger(t, append([]string{args[0], "--store", dir}, args[1:]...)...)
			if r.code != exitOK {
				t.Fatalf("dagger %s --store %s: exit %d\n%s", args[0], dir, r.code, r.stderr)
			}
			out := r.stdout
			// Only the run with a datastore names it, which widens the
			// first column of its table.
			if args[0] == "inspect" && args[1] == "latest" {
				if dir == remote && !strings.Contains(out, "\ndatastore  "+s3.URL("history")+"\n") {
					t.Errorf("dagger inspect latest does not name the datastore:\n%s", out)
				}
				out = regexp.MustCompile(`(?m)^datastore .*\n`).ReplaceAllString(out, "")
				out = regexp.MustCompile(`(?m)^(\w+) +`).ReplaceAllString(out, "$1 ")
			}
			out = ids.ReplaceAllString(out, "RUNID")
			out = times.ReplaceAllString(out, "X")
			outputs = append(outputs, out)
		}
		if diff := gocmp.Diff(outputs[0], outputs[1]); diff != "" {
			t.Errorf("dagger %s prints differently for the run with a datastore (-store +datastore):\n%s", strings.Join(args, " "), diff)
		}
	}

	// The resumed run keeps its blobs where its origin does.
	r := runDagger(t, "resume", "--store", remote, "--executor", "process", "--from", "add", "latest")
	if r.code != exitOK {
		t.Fatalf("dagger resume: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "✓ square.2 (reused)") || !strings.Contains(r.stdout, "finish| ") {
		t.Errorf("dagger resume printed:\n%s", r.stdout)
	}
	r = runDagger(t, "inspect", "--store", remote, "--json", "latest/add/total")
	if r.code != exitOK || strings.TrimSpace(r.stdout) != "55" {
		t.Errorf("inspect of the resumed run: exit %d, %q\n%s", r.code, r.stdout, r.stderr)
	}
	r = runDagger(t, "resume", "--store", remote, "--datastore", s3.URL("elsewhere"), "--from", "add", "latest")
	if r.code != exitInvalid || !strings.Contains(r.stderr, "keeps its blobs in "+s3.URL("history")) {
		t.Errorf("resume into another datastore: exit %d\n%s", r.code, r.stderr)
	}
}

// TestStepDatastoreUnavailable runs dagger step against a datastore it
// cannot use: a server that is not there, and credentials the server
// refuses. Each fails with an error that names the datastore and says it
// is unavailable, without the secret.
func TestStepDatastoreUnavailable(t *testing.T) {
	s3 := s3test.Start(t)
	setS3Env(t, s3)
	// A loopback port that nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "s3://" + s3.Bucket + "/x?endpoint=http://" + l.Addr().String() + "&use_path_style=true"
	l.Close()
	tests := []struct {
		name, url string
		env       []string
	}{
		{"unreachable", closedURL, nil},
		{"wrong secret", s3.URL("x"), []string{"AWS_SECRET_ACCESS_KEY=not-the-secret-0123456789"}},
		{"wrong key", s3.URL("x"), []string{"AWS_ACCESS_KEY_ID=AKIANOTTHEKEY0000000"}},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			spec, err := json.Marshal(exec.TaskSpec{RunID: "r", Code: "sha256:" + strings.Repeat("0", 64), Datastore: test.url, Step: "start", TaskID: "start", Attempt: 1})
			if err != nil {
				t.Fatal(err)
			}
			cmd := daggerCommand(t, "step", "--result", filepath.Join(t.TempDir(), "result.json"))
			cmd.Env = append(cmd.Env, test.env...)
			cmd.Stdin = strings.NewReader(string(spec))
			err = cmd.Run()
			stderr := cmd.Stderr.(*strings.Builder).String()
			if code := cmd.ProcessState.ExitCode(); code != exitFailed {
				t.Fatalf("exit %d (%v), want %d\n%s", code, err, exitFailed, stderr)
			}
			if !strings.Contains(stderr, "datastore "+strings.SplitN(test.url, "?", 2)[0]) || !strings.Contains(stderr, "unavailable") {
				t.Errorf("stderr does not name the datastore as unavailable:\n%s", stderr)
			}
			for _, secret := range []string{s3.SecretKey, "not-the-secret-0123456789"} {
				if strings.Contains(stderr, secret) {
					t.Errorf("stderr shows a secret:\n%s", stderr)
				}
			}
		})
	}
	if _, err := os.Stat("meta.db"); err == nil {
		t.Error("dagger step made a database")
	}
}
