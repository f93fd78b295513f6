package cli

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestReadOnlyStore checks that the commands that read a store read one
// on a read-only file system, with the same output as from a writable
// one, and that those that write say why they cannot. The store is made
// read-only by a read-only bind mount in a mount namespace of dagger's
// own, which unshare makes, as root of a user namespace of its own too so
// that it works for any user: a real read-only file system, where chmod
// would not stop root. The test is skipped where unshare cannot.
func TestReadOnlyStore(t *testing.T) {
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("needs unshare, to mount the store read-only")
	}
	if out, err := exec.Command(unshare, "-rm", "true").CombinedOutput(); err != nil {
		t.Skipf("unshare cannot make a mount namespace here: %v: %s", err, out)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	recordRun(t, dir, writeFlow(t, "hello.star", helloFlow))
	// Mounted read-only, dagger runs in a namespace of its own: this
	// binary, which mainEnv makes dagger.
	readOnly := func(args ...string) result {
		script := `mount --bind -o ro "$0" "$0" && exec "$@"`
		cmd := exec.Command(unshare, slices.Concat([]string{"-rm", "sh", "-c", script, dir, exe}, args, []string{"--store", dir})...)
		cmd.Env = append(os.Environ(), mainEnv+"=1")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		code := 0
		if err := cmd.Run(); err != nil {
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatal(err)
			}
			code = ee.ExitCode()
		}
		return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
	}

	reads := [][]string{
		{"runs"},
		{"inspect", "latest"},
		{"inspect", "latest/hello"},
		{"inspect", "latest/start/who"},
		{"logs", "latest"},
		{"fsck"},
	}
	for _, args := range reads {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			got := readOnly(args...)
			want := runDagger(t, slices.Concat(args, []string{"--store", dir})...)
			if got != want {
				t.Errorf("read-only: exit %d\n%s%s\nwant, as from a writable store: exit %d\n%s%s", got.code, got.stdout, got.stderr, want.code, want.stdout, want.stderr)
			}
		})
	}
	// The mount is read-only indeed: what writes fails, saying why.
	r := readOnly("fsck", "--repair")
	if r.code != exitFailed || !strings.Contains(r.stderr, "read-only file system") {
		t.Errorf("dagger fsck --repair of a read-only store: exit %d, %s; want exit 1 and read-only file system", r.code, r.stderr)
	}
}
