package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// inlineRows returns the number of blobs in the database of s.
func inlineRows(t testing.TB, s *Store) int {
	t.Helper()
	var n int
	if err := s.rdb.QueryRowContext(t.Context(), "SELECT count(*) FROM blobs").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSmallBlobs checks that small blobs are held in memory until Sync,
// visible at once to the process that stored them, and to others after
// Sync, without ever becoming files.
func TestSmallBlobs(t *testing.T) {
	dir := t.TempDir()
	s := openStoreAt(t, dir)
	other := openStoreAt(t, dir)
	ctx := t.Context()
	contents := [][]byte{{}, []byte("small"), randomBytes(7, inlineMax)}
	var hashes []Hash
	for i, data := range contents {
		var h Hash
		var err error
		if i%2 == 0 {
			h, err = s.Blobs().Put(ctx, data)
		} else {
			var n int64
			h, n, err = s.Blobs().PutReader(ctx, bytes.NewReader(data))
			if n != int64(len(data)) {
				t.Errorf("PutReader of %d bytes returned size %d", len(data), n)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, h)
	}
	// Put must not have written anything.
	if n := inlineRows(t, s); n != 0 {
		t.Errorf("%d blobs in the database before Sync, want 0", n)
	}
	if files := blobFiles(t, dir); len(files) != 0 {
		t.Errorf("%d blob files, want 0", len(files))
	}

	// The storing process sees the blobs at once, from any goroutine;
	// others only once they are durable.
	check := func(s *Store, visible bool) {
		t.Helper()
		var wg sync.WaitGroup
		for i, h := range hashes {
			wg.Go(func() {
				got, err := s.Blobs().Get(ctx, h)
				if !visible {
					if !errors.Is(err, fs.ErrNotExist) {
						t.Errorf("Get of a blob pending in another store: %v; want fs.ErrNotExist", err)
					}
					return
				}
				if err != nil || !bytes.Equal(got, contents[i]) {
					t.Errorf("Get of blob %d: %d bytes, %v; want %d bytes", i, len(got), err, len(contents[i]))
				}
				rc, err := s.Blobs().Open(ctx, h)
				if err != nil {
					t.Error(err)
					return
				}
				got, err = io.ReadAll(rc)
				if err := errors.Join(err, rc.Close()); err != nil || !bytes.Equal(got, contents[i]) {
					t.Errorf("Open of blob %d: read %d bytes, %v; want %d bytes", i, len(got), err, len(contents[i]))
				}
			})
		}
		wg.Wait()
	}
	check(s, true)
	check(other, false)

	if err := s.Blobs().Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if !s.inline.empty() {
		t.Error("blobs still pending after Sync")
	}
	if n := inlineRows(t, s); n != len(contents) {
		t.Errorf("%d blobs in the database after Sync, want %d", n, len(contents))
	}
	check(s, true)
	check(other, true)
	if files := blobFiles(t, dir); len(files) != 0 {
		t.Errorf("%d blob files, want 0", len(files))
	}

	// Storing them again writes nothing new.
	for _, data := range contents {
		if _, err := s.Blobs().Put(ctx, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Blobs().Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if n := inlineRows(t, s); n != len(contents) {
		t.Errorf("%d blobs in the database after storing them again, want %d", n, len(contents))
	}
}

// TestDurableWritesTakePendingBlobs checks that every durable write stores
// the small blobs stored before it, and that StartTask, which is not
// durable, does not.
func TestDurableWritesTakePendingBlobs(t *testing.T) {
	tests := []struct {
		name    string
		durable bool
		write   func(ctx context.Context, s *Store, run string, h Hash) error
	}{
		{"CreateRun", true, func(ctx context.Context, s *Store, _ string, h Hash) error {
			_, err := s.CreateRun(ctx, Run{Flow: "f", CodeHash: h})
			return err
		}},
		{"FinishRun", true, func(ctx context.Context, s *Store, run string, _ Hash) error {
			return s.FinishRun(ctx, run, RunSucceeded, "")
		}},
		{"FinishTasks", true, func(ctx context.Context, s *Store, run string, h Hash) error {
			task := Task{RunID: run, ID: "t", Step: "s", Status: TaskSucceeded, Attempt: 1, Artifacts: map[string]Hash{"x": h}}
			return s.FinishTasks(ctx, []Task{task}, nil)
		}},
		{"CommitTask", true, func(ctx context.Context, s *Store, run string, h Hash) error {
			task := Task{RunID: run, ID: "t", Step: "s", Status: TaskSucceeded, Attempt: 1, Foreach: h}
			return s.CommitTask(ctx, task, Attempt{RunID: run, TaskID: "t", N: 1, Status: TaskSucceeded, Logs: h})
		}},
		{"Sync", true, func(ctx context.Context, s *Store, _ string, _ Hash) error {
			return s.Blobs().Sync(ctx)
		}},
		{"StartTask", false, func(ctx context.Context, s *Store, run string, _ Hash) error {
			return s.StartTask(ctx, Task{RunID: run, ID: "t", Step: "s", Attempt: 1})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStoreAt(t, dir)
			other := openStoreAt(t, dir)
			ctx := t.Context()
			run := createRun(t, s)
			h, err := s.Blobs().Put(ctx, []byte("before "+tt.name))
			if err != nil {
				t.Fatal(err)
			}
			if err := tt.write(ctx, s, run, h); err != nil {
				t.Fatal(err)
			}
			_, err = other.Blobs().Get(ctx, h)
			if tt.durable && err != nil {
				t.Errorf("blob stored before %s: %v", tt.name, err)
			}
			if !tt.durable && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("blob stored before %s: %v; want it still pending", tt.name, err)
			}
			if pending := !s.inline.empty(); pending == tt.durable {
				t.Errorf("blobs pending after %s: %t, want %t", tt.name, pending, !tt.durable)
			}
		})
	}
}

// TestSyncFlushesFilesOnlyIfNeeded checks that Sync of small blobs does not
// flush the file system, which costs milliseconds.
func TestSyncFlushesFilesOnlyIfNeeded(t *testing.T) {
	s := openTestStore(t)
	ctx := t.Context()
	// With its resources closed, the flusher fails if called.
	if err := s.blobs.flusher.close(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f, err := newSyncer(s.blobs.root)
		if err != nil {
			t.Fatal(err)
		}
		s.blobs.flusher = f
	})
	if _, err := s.Blobs().Put(ctx, []byte("small")); err != nil {
		t.Fatal(err)
	}
	if err := s.Blobs().Sync(ctx); err != nil {
		t.Fatalf("Sync of a small blob flushed files: %v", err)
	}
	run := createRun(t, s)
	if err := s.CommitTask(ctx, Task{RunID: run, ID: "t", Step: "s", Status: TaskSucceeded}, Attempt{}); err != nil {
		t.Fatalf("CommitTask after storing a small blob flushed files: %v", err)
	}
	if _, err := s.Blobs().Put(ctx, make([]byte, inlineMax+1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Blobs().Sync(ctx); err == nil {
		t.Log("flushing does not depend on open resources on this platform")
	} else if !strings.Contains(err.Error(), "flush blob files") {
		t.Errorf("Sync with a failing file flush: %v", err)
	}
}

// TestPendingLimit checks that small blobs go to files once too many bytes
// are pending.
func TestPendingLimit(t *testing.T) {
	dir := t.TempDir()
	s := openStoreAt(t, dir)
	s.maxPending = 10
	ctx := t.Context()
	first, second := []byte("12345678"), []byte("abcdefgh")
	var hashes []Hash
	for _, data := range [][]byte{first, second} {
		h, err := s.Blobs().Put(ctx, data)
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, h)
	}
	if files := blobFiles(t, dir); len(files) != 1 || hashOfFile(files[0]) != hashes[1] {
		t.Errorf("blob files %v, want the second blob's only", files)
	}
	if err := s.Blobs().Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if n := inlineRows(t, s); n != 1 {
		t.Errorf("%d blobs in the database, want 1", n)
	}
	// The limit counts pending blobs only.
	if _, err := s.Blobs().Put(ctx, []byte("third")); err != nil {
		t.Fatal(err)
	}
	if s.inline.empty() {
		t.Error("a small blob went to a file after the pending blobs were written")
	}
	for i, h := range hashes {
		if _, err := s.Blobs().Get(ctx, h); err != nil {
			t.Errorf("blob %d: %v", i, err)
		}
	}
}

func TestCloseWritesPendingBlobs(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	h, err := s.Blobs().Put(t.Context(), []byte("stored before Close"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Blobs().Put(t.Context(), []byte("after")); err == nil || !strings.Contains(err.Error(), "store is closed") {
		t.Errorf("Put after Close: %v; want store is closed", err)
	}
	if _, err := openStoreAt(t, dir).Blobs().Get(t.Context(), h); err != nil {
		t.Errorf("blob stored before Close: %v", err)
	}
}

// corruptInline replaces the content of blob h in the database.
func corruptInline(t testing.TB, s *Store, h Hash, data []byte) {
	t.Helper()
	err := s.write(t.Context(), true, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(t.Context(), "UPDATE blobs SET data = ? WHERE hash = ?", data, h)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return fmt.Errorf("%d rows updated (%v)", n, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestGetCorruptInline(t *testing.T) {
	s := openTestStore(t)
	b := s.Blobs()
	// Read as another process would: the writer keeps what it wrote lately
	// in memory, where damage to the database does not reach it.
	r := openStoreAt(t, s.dir).Blobs()
	ctx := t.Context()
	data := []byte("inline content")
	h, err := b.Put(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	corruptInline(t, s, h, []byte("inline c0ntent"))

	_, err = r.Get(ctx, h)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), string(h)) {
		t.Errorf("Get of corrupt blob: %v; want error wrapping ErrCorrupt and naming %s", err, h)
	}
	rc, err := r.Open(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, rc); !errors.Is(err, ErrCorrupt) {
		t.Errorf("reading opened corrupt blob: %v; want error wrapping ErrCorrupt", err)
	}
	rc.Close()

	// A good copy in a file, as an older dagger would have stored it,
	// is found instead.
	if _, err := s.blobs.Put(ctx, data); err != nil {
		t.Fatal(err)
	}
	if got, err := r.Get(ctx, h); err != nil || !bytes.Equal(got, data) {
		t.Errorf("Get of blob corrupt inline and good in a file: %q, %v", got, err)
	}
	if err := os.Remove(s.blobs.path(h)); err != nil {
		t.Fatal(err)
	}

	// Storing the blob again repairs it.
	if _, err := b.Put(ctx, data); err != nil {
		t.Fatal(err)
	}
	if err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := r.Get(ctx, h); err != nil || !bytes.Equal(got, data) {
		t.Errorf("Get after repairing Put: %q, %v", got, err)
	}
}

// TestSmallBlobFiles checks that small blobs that older versions stored in
// files are found.
func TestSmallBlobFiles(t *testing.T) {
	s := openTestStore(t)
	data := []byte("small, in a file")
	h, err := s.blobs.Put(t.Context(), data)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Blobs().Get(t.Context(), h); err != nil || !bytes.Equal(got, data) {
		t.Errorf("Get: %q, %v", got, err)
	}
}

// schemaV1 is the schema of version 1, the first.
const schemaV1 = `
CREATE TABLE schema_version (version INTEGER NOT NULL) STRICT;
CREATE TABLE runs (
	id TEXT PRIMARY KEY, flow TEXT NOT NULL, flow_path TEXT NOT NULL, code_hash TEXT NOT NULL,
	params TEXT, status TEXT NOT NULL, origin TEXT NOT NULL, created INTEGER NOT NULL,
	ended INTEGER, error TEXT NOT NULL
) STRICT;
CREATE INDEX runs_by_flow ON runs (flow, id);
CREATE TABLE tasks (
	seq INTEGER PRIMARY KEY, run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	id TEXT NOT NULL, step TEXT NOT NULL, parents TEXT, idx TEXT, status TEXT NOT NULL,
	attempt INTEGER NOT NULL, started INTEGER, ended INTEGER, next TEXT,
	foreach_len INTEGER NOT NULL, logs TEXT NOT NULL, error TEXT NOT NULL, origin TEXT NOT NULL,
	UNIQUE (run_id, id)
) STRICT;
CREATE TABLE attempts (
	run_id TEXT NOT NULL, task_id TEXT NOT NULL, n INTEGER NOT NULL, status TEXT NOT NULL,
	started INTEGER, ended INTEGER, error TEXT NOT NULL, logs TEXT NOT NULL,
	PRIMARY KEY (run_id, task_id, n),
	FOREIGN KEY (run_id, task_id) REFERENCES tasks (run_id, id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
CREATE TABLE artifacts (
	run_id TEXT NOT NULL, task_id TEXT NOT NULL, name TEXT NOT NULL, hash TEXT NOT NULL,
	PRIMARY KEY (run_id, task_id, name),
	FOREIGN KEY (run_id, task_id) REFERENCES tasks (run_id, id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
CREATE INDEX artifacts_by_hash ON artifacts (hash);
INSERT INTO schema_version (version) VALUES (1);
`

func TestUpgradeFromVersion1(t *testing.T) {
	dir := t.TempDir()
	// A store of version 1, with a task whose artifact is a small blob
	// file.
	if err := os.MkdirAll(filepath.Join(dir, "blobs"), 0o777); err != nil {
		t.Fatal(err)
	}
	data := []byte("artifact of version 1")
	h := sumOf(data)
	p := filepath.Join(dir, "blobs", h.Digest()[:2], h.Digest()[2:])
	if err := os.MkdirAll(filepath.Dir(p), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o444); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", dsn(filepath.Join(dir, "meta.db"), true))
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.ExecContext(t.Context(), schemaV1+`
		INSERT INTO runs VALUES ('0000000000ab', 'f', '/f.star', '', NULL, 'succeeded', '', 1, 2, '');
		INSERT INTO tasks (run_id, id, step, status, attempt, foreach_len, logs, error, origin)
			VALUES ('0000000000ab', 't', 's', 'succeeded', 1, 3, '', '', '');
		INSERT INTO artifacts VALUES ('0000000000ab', 't', 'x', ?);`, h)
	if err := errors.Join(err, db.Close()); err != nil {
		t.Fatal(err)
	}

	s := openStoreAt(t, dir)
	ctx := t.Context()
	if v, err := schemaVersionOf(ctx, s.rdb); err != nil || v != schemaVersion {
		t.Errorf("schema version after upgrade: %d, %v; want %d", v, err, schemaVersion)
	}
	want := Task{RunID: "0000000000ab", ID: "t", Step: "s", Status: TaskSucceeded, Attempt: 1, ForeachLen: 3, Artifacts: map[string]Hash{"x": h}}
	got, err := s.Task(ctx, "0000000000ab", "t")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("task of version 1 mismatch (-want +got):\n%s", diff)
	}
	if got, err := s.Blobs().Get(ctx, h); err != nil || !bytes.Equal(got, data) {
		t.Errorf("Get of a blob of version 1: %q, %v", got, err)
	}
	// The new column and table work.
	want.Foreach, err = s.Blobs().Put(ctx, []byte("0\n1\n2"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.FinishTasks(ctx, []Task{want}, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Task(ctx, want.RunID, want.ID); err != nil || got.Foreach != want.Foreach {
		t.Errorf("Foreach after upgrade = %q, %v; want %q", got.Foreach, err, want.Foreach)
	}
	checkClean(t, s)
	// The upgrade made the tables and indexes of a new store.
	if diff := cmp.Diff(schemaObjects(t, openTestStore(t)), schemaObjects(t, s)); diff != "" {
		t.Errorf("tables and indexes after upgrade (-new store +upgraded):\n%s", diff)
	}
	// Opening again finds the schema up to date.
	openStoreAt(t, dir)
}

// schemaObjects lists the tables and indexes of the database of s.
func schemaObjects(t *testing.T, s *Store) []string {
	t.Helper()
	rows, err := s.rdb.QueryContext(t.Context(), "SELECT type || ' ' || name FROM sqlite_schema ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var objects []string
	for rows.Next() {
		var o string
		if err := rows.Scan(&o); err != nil {
			t.Fatal(err)
		}
		objects = append(objects, o)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return objects
}

// TestConcurrentFirstOpen has several processes open new stores at the
// same moment, repeatedly.
func TestConcurrentFirstOpen(t *testing.T) {
	const rounds, children = 20, 8
	if base := os.Getenv("STORE_TEST_OPEN_DIR"); base != "" {
		for round := range rounds {
			// Wait for the go signal, so that the children open the
			// store at the same moment.
			dir := filepath.Join(base, strconv.Itoa(round))
			for deadline := time.Now().Add(time.Minute); ; {
				if _, err := os.Stat(dir + ".go"); err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no go signal for round %d", round)
				}
				time.Sleep(50 * time.Microsecond)
			}
			s, err := Open(t.Context(), dir)
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.CreateRun(t.Context(), Run{Flow: "open"})
			if err := errors.Join(err, s.Close()); err != nil {
				t.Fatal(err)
			}
			fmt.Println(resultPrefix + strconv.Itoa(round))
		}
		return
	}
	if testing.Short() {
		t.Skip("slow: starts processes")
	}
	base := t.TempDir()
	var procs []*childProcess
	for range children {
		cmd, out := startChild(t, "TestConcurrentFirstOpen", "STORE_TEST_OPEN_DIR="+base)
		procs = append(procs, &childProcess{cmd, out})
	}
	for round := range rounds {
		dir := filepath.Join(base, strconv.Itoa(round))
		if err := os.WriteFile(dir+".go", nil, 0o666); err != nil {
			t.Fatal(err)
		}
		for _, p := range procs {
			if r, err := p.result(); err != nil || r != strconv.Itoa(round) {
				t.Fatalf("round %d: child reported %q, %v", round, r, err)
			}
		}
		runs, err := openStoreAt(t, dir).Runs(t.Context(), RunFilter{})
		if err != nil || len(runs) != children {
			t.Fatalf("round %d: %d runs, %v; want %d", round, len(runs), err, children)
		}
	}
	for _, p := range procs {
		if err := p.wait(); err != nil {
			t.Error(err)
		}
	}
}

// TestWrittenKeptBounded checks that the blobs a write committed stay
// readable from memory, the latest first, within maxWrittenBytes.
func TestWrittenKeptBounded(t *testing.T) {
	var p pendingBlobs
	const n, size = 40, 1 << 20 // 40 MiB in all
	hashes := make([]Hash, n)
	for i := range hashes {
		data := bytes.Repeat([]byte{byte(i)}, size)
		hashes[i] = HashOf(sha256.Sum256(data))
		if !p.add(hashes[i], data, maxPendingBytes) {
			t.Fatalf("blob %d not added", i)
		}
		p.done(p.take(), true)
		if p.writtenSize > maxWrittenBytes {
			t.Fatalf("after %d blobs, %d bytes kept, over %d", i+1, p.writtenSize, maxWrittenBytes)
		}
	}
	kept := maxWrittenBytes / (size + writtenOverhead)
	for i, h := range hashes {
		data, ok := p.get(h)
		if want := i >= n-kept; ok != want {
			t.Errorf("blob %d kept = %v, want %v: the latest %d only", i, ok, want, kept)
		}
		if ok && (len(data) != size || data[0] != byte(i)) {
			t.Errorf("blob %d: wrong content", i)
		}
	}
	if len(p.blobs) != 0 || p.size != 0 {
		t.Errorf("%d blobs, %d bytes still pending", len(p.blobs), p.size)
	}
}
