package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFsckRepair corrupts a blob of a run: fsck reports it, fsck --repair
// removes it, and the next run that makes the same content writes it
// again, after which the store is whole.
func TestFsckRepair(t *testing.T) {
	dir := t.TempDir()
	flow := filepath.Join(dir, "big.star")
	src := "def start(ctx):\n    ctx.big = \"x\" * 200000\n    next_step(finish)\n\ndef finish(ctx):\n    pass\n"
	if err := os.WriteFile(flow, []byte(src), 0o666); err != nil {
		t.Fatal(err)
	}
	st := filepath.Join(dir, "store")
	if r := runDagger(t, "run", "--store", st, flow); r.code != exitOK {
		t.Fatalf("dagger run: exit %d\n%s", r.code, r.stderr)
	}
	files, err := filepath.Glob(filepath.Join(st, "blobs", "*", "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no blob files: %v", err)
	}
	big := files[0]
	for _, f := range files {
		if a, b := size(t, f), size(t, big); a > b {
			big = f
		}
	}
	data, err := os.ReadFile(big)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.Chmod(big, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(big, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := runDagger(t, "fsck", "--store", st); r.code != exitFailed || !strings.Contains(r.stdout, "corrupt blob") {
		t.Errorf("fsck of a corrupt blob: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runDagger(t, "fsck", "--store", st, "--repair"); !strings.Contains(r.stdout, "removed: the next run that makes its content writes it again") {
		t.Errorf("fsck --repair: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(big); !os.IsNotExist(err) {
		t.Errorf("the corrupt blob is still there: %v", err)
	}
	if r := runDagger(t, "run", "--store", st, flow); r.code != exitOK {
		t.Fatalf("dagger run after the repair: exit %d\n%s", r.code, r.stderr)
	}
	if r := runDagger(t, "fsck", "--store", st); r.code != exitOK {
		t.Errorf("fsck after a run wrote the blob again: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func size(t *testing.T, path string) int64 {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Size()
}
