// Package smalldisk gives tests a small file system, to fill: a tmpfs
// mounted for the test.
package smalldisk

import (
	"syscall"
	"testing"
)

// Mount mounts a tmpfs of size bytes ("1m", "2m") on a folder of its own
// for the test, and returns the folder. It skips the test where mounting
// is not allowed, as another user than root.
func Mount(t testing.TB, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("cannot mount a small disk: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmounting the small disk: %v", err)
		}
	})
	return dir
}
