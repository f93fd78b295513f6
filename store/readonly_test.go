package store

import (
	"bytes"
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestOpenReadOnly checks that a store opened read-only reads what was
// written, creates nothing in its folder but SQLite's shared files, and
// refuses writes. That it reads a store on a read-only file system is tested by the CLI, which
// can mount one in a child process.
func TestOpenReadOnly(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	w, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("small, in the database")
	h, err := w.Blobs().Put(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	run, err := w.CreateRun(ctx, Run{Flow: "f", CodeHash: h})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// What only a writer needs is gone: the read-only store must not
	// make it again.
	for _, name := range []string{"lock", "tmp"} {
		if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}

	before := names(t, dir)
	s, err := OpenReadOnly(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Run(ctx, run.ID); err != nil || got.Flow != "f" {
		t.Errorf("Run: %+v, %v", got, err)
	}
	if got, err := s.Blobs().Get(ctx, h); err != nil || !bytes.Equal(got, data) {
		t.Errorf("Get: %q, %v", got, err)
	}
	if problems, err := s.Check(ctx); err != nil || len(problems) > 0 {
		t.Errorf("Check: %v, %v", problems, err)
	}
	if _, err := s.CreateRun(ctx, Run{Flow: "g"}); !errors.Is(err, ErrReadOnly) {
		t.Errorf("CreateRun of a read-only store: %v, want ErrReadOnly", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for name := range names(t, dir) {
		if !before[name] && name != "meta.db-wal" && name != "meta.db-shm" {
			t.Errorf("%s after a read-only open, want none", name)
		}
	}
}

// names returns the names of the files in dir, and in its folders.
func names(t *testing.T, dir string) map[string]bool {
	t.Helper()
	found := make(map[string]bool)
	err := filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(dir, path)
		found[rel] = true
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func TestOpenReadOnlyNoStore(t *testing.T) {
	dir := t.TempDir()
	if s, err := OpenReadOnly(t.Context(), dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("OpenReadOnly of an empty folder: %v, want fs.ErrNotExist", err)
		if err == nil {
			s.Close()
		}
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) > 0 {
		t.Errorf("the empty folder holds %v (%v), want nothing", entries, err)
	}
}

func TestOpenReadOnlyOldSchema(t *testing.T) {
	dir := t.TempDir()
	db, err := sql.Open("sqlite", dsn(filepath.Join(dir, "meta.db"), true))
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.ExecContext(t.Context(), schemaV1)
	if err := errors.Join(err, db.Close()); err != nil {
		t.Fatal(err)
	}
	if s, err := OpenReadOnly(t.Context(), dir); !errors.Is(err, ErrOldSchema) {
		t.Errorf("OpenReadOnly of schema version 1: %v, want ErrOldSchema", err)
		if err == nil {
			s.Close()
		}
	}
}
