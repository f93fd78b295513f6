package store

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/daggerflow/dagger/internal/smalldisk"
)

// TestDiskFull fills the disk of a store, with a large blob, then with
// small ones that go to the database: each error says that the disk of
// the store is full, and where.
func TestDiskFull(t *testing.T) {
	dir := filepath.Join(smalldisk.Mount(t, "1m"), "store")
	s, err := Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		// Close writes the pending small blobs, which cannot fit.
		if err := s.Close(); err != nil && !isDiskFull(err) {
			t.Error(err)
		}
	}()
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ErrDiskFull) || !strings.Contains(err.Error(), "store "+dir+": its disk is full; free space on it and try again: ") {
			t.Errorf("%s: error = %v, want it to say that the disk of store %s is full", what, err, dir)
		}
	}
	_, err = s.Blobs().Put(t.Context(), bytes.Repeat([]byte("x"), 2<<20))
	check("put of a large blob", err)
	_, _, err = s.Blobs().PutReader(t.Context(), bytes.NewReader(bytes.Repeat([]byte("y"), 2<<20)))
	check("put of a large blob from a reader", err)

	// Small blobs wait in memory for the transaction that fails.
	err = nil
	for i := 0; err == nil; i++ {
		if i == 100 { // 3 MB: three times the disk
			t.Fatal("the disk did not fill up")
		}
		data := bytes.Repeat([]byte{byte(i)}, 30<<10)
		if _, err = s.Blobs().Put(t.Context(), data); err == nil {
			err = s.Blobs().Sync(t.Context())
		}
	}
	check("sync of small blobs", err)
	if !strings.Contains(err.Error(), "database or disk is full") {
		t.Errorf("sync of small blobs: error = %v, want SQLite's", err)
	}
}
