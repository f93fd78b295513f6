package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"
)

// openTestStore opens a store in a new temporary directory, to be closed
// when the test ends.
func openTestStore(t testing.TB) *Store {
	t.Helper()
	return openStoreAt(t, t.TempDir())
}

func openStoreAt(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// randomBytes returns n pseudo-random bytes determined by seed.
func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint64())
	}
	return b
}

func sumOf(data []byte) Hash {
	return HashOf(sha256.Sum256(data))
}

// blobFiles returns the paths of the files under dir/blobs, failing the test
// on anything but fan-out directories and files.
func blobFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	root := filepath.Join(dir, "blobs")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		depth := len(strings.Split(filepath.ToSlash(rel), "/"))
		switch {
		case p == root:
		case d.IsDir() && depth == 1 && len(d.Name()) == 2:
		case d.Type().IsRegular() && depth == 2 && len(d.Name()) == 62:
			files = append(files, p)
		default:
			t.Errorf("unexpected entry %s in blobs/", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// hashOfFile returns the Hash named by the path of a blob file.
func hashOfFile(p string) Hash {
	return Hash(hashPrefix + filepath.Base(filepath.Dir(p)) + filepath.Base(p))
}

func TestBlobsRoundTrip(t *testing.T) {
	s := openTestStore(t)
	b := s.Blobs()
	ctx := t.Context()
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", []byte{}},
		{"one byte", []byte{42}},
		{"text", []byte("hello, dagger\n")},
		{"largest inline", randomBytes(3, inlineMax)},
		{"smallest file", randomBytes(4, inlineMax+1)},
		{"1 MiB", randomBytes(1, 1<<20)},
		// Larger than a chunk, and not a multiple of one, so that Get
		// reads and hashes concurrently.
		{"9 MiB and a bit", randomBytes(2, 9<<20+123)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := b.Put(ctx, tt.data)
			if err != nil {
				t.Fatal(err)
			}
			if want := sumOf(tt.data); h != want {
				t.Fatalf("Put = %s, want %s", h, want)
			}
			got, err := b.Get(ctx, h)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.data) {
				t.Fatalf("Get returned %d bytes differing from the %d put", len(got), len(tt.data))
			}

			// The streaming variants agree with Put and Get.
			h2, n, err := b.PutReader(ctx, iotest.HalfReader(bytes.NewReader(tt.data)))
			if err != nil {
				t.Fatal(err)
			}
			if h2 != h || n != int64(len(tt.data)) {
				t.Errorf("PutReader = %s, %d; want %s, %d", h2, n, h, len(tt.data))
			}
			rc, err := b.Open(ctx, h)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if _, err := io.Copy(&buf, rc); err != nil {
				t.Errorf("reading opened blob: %v", err)
			}
			if err := rc.Close(); err != nil {
				t.Error(err)
			}
			if !bytes.Equal(buf.Bytes(), tt.data) {
				t.Errorf("Open read %d bytes differing from the %d put", buf.Len(), len(tt.data))
			}
		})
	}
	if err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestPutIdempotent(t *testing.T) {
	tests := []struct {
		name string
		data []byte
	}{
		{"file", randomBytes(6, inlineMax+1)},
		// Written while being hashed, and abandoned.
		{"large", randomBytes(5, 5*writeAheadMin+1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStoreAt(t, dir)
			b := s.Blobs()
			ctx := t.Context()
			h1, err := b.Put(ctx, tt.data)
			if err != nil {
				t.Fatal(err)
			}
			p := s.blobs.path(h1)
			before, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			h2, err := b.Put(ctx, tt.data)
			if err != nil {
				t.Fatal(err)
			}
			if h1 != h2 {
				t.Fatalf("second Put = %s, want %s", h2, h1)
			}
			after, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if !os.SameFile(before, after) {
				t.Error("second Put replaced the blob file instead of leaving it in place")
			}
			if after.Mode().Perm()&0o222 != 0 {
				t.Errorf("blob file mode %v is writable", after.Mode())
			}
			if tmp, err := os.ReadDir(filepath.Join(dir, "tmp")); err != nil || len(tmp) != 0 {
				t.Errorf("second Put left %d temporary files (%v)", len(tmp), err)
			}
		})
	}
}

func TestPutConcurrentSameContent(t *testing.T) {
	for _, size := range []int{inlineMax + 1, 3 * writeAheadMin} {
		dir := t.TempDir()
		s := openStoreAt(t, dir)
		data := randomBytes(3, size)
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				if _, err := s.Blobs().Put(t.Context(), data); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		got, err := s.Blobs().Get(t.Context(), sumOf(data))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("Get after concurrent Puts of %d bytes: %d bytes, %v", size, len(got), err)
		}
		if files := blobFiles(t, dir); len(files) != 1 {
			t.Errorf("concurrent Puts of %d bytes left %d blob files, want 1", size, len(files))
		}
	}
}

func TestGetMissing(t *testing.T) {
	s := openTestStore(t)
	h := sumOf([]byte("never stored"))
	if _, err := s.Blobs().Get(t.Context(), h); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), string(h)) {
		t.Errorf("Get of missing blob: %v; want error wrapping fs.ErrNotExist and naming %s", err, h)
	}
	if _, err := s.Blobs().Open(t.Context(), h); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open of missing blob: %v; want error wrapping fs.ErrNotExist", err)
	}
}

func TestGetInvalidHash(t *testing.T) {
	s := openTestStore(t)
	for _, h := range []Hash{"", "sha256:abc", "sha256:../../../../etc/passwd"} {
		if _, err := s.Blobs().Get(t.Context(), h); err == nil || !strings.Contains(err.Error(), "invalid hash") {
			t.Errorf("Get(%q): %v; want invalid hash error", h, err)
		}
	}
}

// corrupt applies damage to the file of blob h.
func corrupt(t testing.TB, s *Store, h Hash, damage func([]byte) []byte) {
	t.Helper()
	p := s.blobs.path(h)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, damage(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestGetCorrupt(t *testing.T) {
	tests := []struct {
		name   string
		size   int
		damage func([]byte) []byte
	}{
		{"flipped bit", inlineMax + 1000, func(b []byte) []byte { b[500] ^= 1; return b }},
		{"flipped bit in large blob", 9 << 20, func(b []byte) []byte { b[len(b)-1] ^= 0x80; return b }},
		{"truncated", inlineMax + 1000, func(b []byte) []byte { return b[:len(b)-1] }},
		{"extended", inlineMax + 1000, func(b []byte) []byte { return append(b, 0) }},
		{"emptied", inlineMax + 1000, func(b []byte) []byte { return nil }},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTestStore(t)
			b := s.Blobs()
			h, err := b.Put(t.Context(), randomBytes(uint64(i), tt.size))
			if err != nil {
				t.Fatal(err)
			}
			corrupt(t, s, h, tt.damage)

			_, err = b.Get(t.Context(), h)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), string(h)) {
				t.Errorf("Get of corrupt blob: %v; want error wrapping ErrCorrupt and naming %s", err, h)
			}

			rc, err := b.Open(t.Context(), h)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			if _, err := io.Copy(io.Discard, rc); !errors.Is(err, ErrCorrupt) {
				t.Errorf("reading opened corrupt blob: %v; want error wrapping ErrCorrupt", err)
			}
		})
	}
}

// TestPutRepairsShortBlob covers blob files that lost their content in a
// power failure, which leaves them shorter than they should be.
func TestPutRepairsShortBlob(t *testing.T) {
	for _, size := range []int{inlineMax + 4096, 3 * writeAheadMin} {
		s := openTestStore(t)
		b := s.Blobs()
		data := randomBytes(4, size)
		h, err := b.Put(t.Context(), data)
		if err != nil {
			t.Fatal(err)
		}
		corrupt(t, s, h, func([]byte) []byte { return nil })
		if _, err := b.Put(t.Context(), data); err != nil {
			t.Fatal(err)
		}
		if got, err := b.Get(t.Context(), h); err != nil || !bytes.Equal(got, data) {
			t.Errorf("Get of %d bytes after repairing Put: %d bytes, %v", size, len(got), err)
		}
	}
}

func TestPutLeavesNoTemporaryFiles(t *testing.T) {
	dir := t.TempDir()
	s := openStoreAt(t, dir)
	b := s.Blobs()
	const n = 500
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			data := randomBytes(uint64(i), inlineMax+1+i)
			var err error
			if i%2 == 0 {
				_, err = b.Put(t.Context(), data)
			} else {
				_, _, err = b.PutReader(t.Context(), bytes.NewReader(data))
			}
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if err := b.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	files := blobFiles(t, dir)
	if len(files) != n {
		t.Errorf("%d files under blobs/, want %d", len(files), n)
	}
	for _, p := range files {
		if _, err := b.Get(t.Context(), hashOfFile(p)); err != nil {
			t.Error(err)
		}
	}
	tmp, err := os.ReadDir(filepath.Join(dir, "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	if len(tmp) != 0 {
		t.Errorf("%d files left in tmp/", len(tmp))
	}
}

func TestPutCancelled(t *testing.T) {
	dir := t.TempDir()
	s := openStoreAt(t, dir)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for _, size := range []int{1, 2 * writeAheadMin} {
		if _, err := s.Blobs().Put(ctx, make([]byte, size)); !errors.Is(err, context.Canceled) {
			t.Errorf("Put of %d bytes with cancelled context: %v", size, err)
		}
	}
	if _, _, err := s.Blobs().PutReader(ctx, strings.NewReader("x")); !errors.Is(err, context.Canceled) {
		t.Errorf("PutReader with cancelled context: %v", err)
	}
	if err := s.Blobs().Sync(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Sync with cancelled context: %v", err)
	}
	if files := blobFiles(t, dir); len(files) != 0 {
		t.Errorf("cancelled Puts left %d blobs", len(files))
	}
	if tmp, err := os.ReadDir(filepath.Join(dir, "tmp")); err != nil || len(tmp) != 0 {
		t.Errorf("cancelled Puts left %d temporary files (%v)", len(tmp), err)
	}
}

func TestPutReaderError(t *testing.T) {
	dir := t.TempDir()
	s := openStoreAt(t, dir)
	boom := errors.New("boom")
	r := io.MultiReader(strings.NewReader("partial content"), iotest.ErrReader(boom))
	if _, _, err := s.Blobs().PutReader(t.Context(), r); !errors.Is(err, boom) {
		t.Errorf("PutReader of failing reader: %v; want error wrapping %v", err, boom)
	}
	if files := blobFiles(t, dir); len(files) != 0 {
		t.Errorf("failed PutReader left %d blobs", len(files))
	}
	if tmp, err := os.ReadDir(filepath.Join(dir, "tmp")); err != nil || len(tmp) != 0 {
		t.Errorf("failed PutReader left %d temporary files (%v)", len(tmp), err)
	}
}

func TestOpenRemovesStaleTemporaryFiles(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "tmp")
	stale, fresh := filepath.Join(tmp, "blob-stale"), filepath.Join(tmp, "blob-fresh")
	for _, p := range []string{stale, fresh} {
		if err := os.WriteFile(p, []byte("debris"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-staleTempAge - time.Minute)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}

	openStoreAt(t, dir)
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale temporary file survived Open: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("fresh temporary file, maybe of another process, removed by Open: %v", err)
	}
}

func TestSyncFailureIsSticky(t *testing.T) {
	s := openTestStore(t)
	b := s.Blobs()
	if _, err := b.Put(t.Context(), make([]byte, inlineMax+1)); err != nil {
		t.Fatal(err)
	}
	// Closing the flusher's resources makes the next flush fail, as a
	// write-back error would.
	if err := s.blobs.flusher.close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Sync(t.Context()); err == nil {
		t.Skip("flushing does not depend on open resources on this platform")
	}
	f, err := newSyncer(s.blobs.root)
	if err != nil {
		t.Fatal(err)
	}
	s.blobs.flusher = f
	if err := b.Sync(t.Context()); err == nil || !strings.Contains(err.Error(), "earlier failure") {
		t.Errorf("Sync after a failed Sync: %v; want the earlier failure", err)
	}
}

// TestPutRepairsCorruptBlob flips a byte of a blob file: putting the same
// content again writes the file again, rather than keep the corrupt one.
func TestPutRepairsCorruptBlob(t *testing.T) {
	s := openTestStore(t)
	data := randomBytes(3, s.inlineMax+100) // a file, not inline
	h, err := s.Blobs().Put(t.Context(), data)
	if err != nil {
		t.Fatal(err)
	}
	p := s.blobs.path(h)
	bad := slices.Clone(data)
	bad[10] ^= 0xff
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Blobs().Put(t.Context(), data); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, data) {
		t.Errorf("the blob file still differs from its content after a put: %v", err)
	}
	if got, err := s.Blobs().Get(t.Context(), h); err != nil || !bytes.Equal(got, data) {
		t.Errorf("Get after the repair: %v", err)
	}
}

// TestPutParts checks that Put stores the concatenation of its parts,
// small and large, as it stores them joined.
func TestPutParts(t *testing.T) {
	large := randomBytes(7, 3*ioChunk+5)
	for _, tt := range []struct {
		name  string
		parts [][]byte
	}{
		{"none", nil},
		{"empty parts", [][]byte{{}, {}}},
		{"small", [][]byte{[]byte("ab"), {}, []byte("c")}},
		{"across inlineMax", [][]byte{large[:inlineMax], large[inlineMax : inlineMax+7]}},
		{"one large", [][]byte{large}},
		{"large between small", [][]byte{[]byte("head"), large, []byte("tail"), large[:100]}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := openTestStore(t).Blobs()
			want := bytes.Join(tt.parts, nil)
			h, err := b.Put(t.Context(), tt.parts...)
			if err != nil {
				t.Fatal(err)
			}
			if h != sumOf(want) || HashParts(tt.parts...) != h {
				t.Errorf("Put = %s, HashParts = %s; want %s", h, HashParts(tt.parts...), sumOf(want))
			}
			got, err := b.Get(t.Context(), h)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("Get = %d bytes, %v; want the %d bytes put", len(got), err, len(want))
			}
		})
	}
}

// TestGetTrust checks which reads of a large blob file trust it without
// hashing it: only those of a process that wrote or verified it, while
// the file has not been written to, replaced or renamed over since. So
// that this shows, the file is damaged in ways that the hash would catch.
func TestGetTrust(t *testing.T) {
	data := randomBytes(8, 2*trustMin)
	// flip damages the blob file at p in place, keeping its size and, if
	// keepTime, its modification time, as damage under the file system
	// would.
	flip := func(t *testing.T, p string, keepTime bool) {
		info, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		corrupted := append([]byte(nil), data...)
		corrupted[len(corrupted)/2] ^= 1
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, corrupted, 0o644); err != nil {
			t.Fatal(err)
		}
		if keepTime {
			if err := os.Chtimes(p, time.Time{}, info.ModTime()); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tt := range []struct {
		name string
		// damage damages the file at p, which s2, the store of another
		// process on the same directory, may read first.
		damage func(t *testing.T, s2 *Store, h Hash, p string)
		// Whether the process that wrote the blob, and the other, trust
		// the file.
		trusted, trusted2 bool
	}{
		{"written to at once", func(t *testing.T, _ *Store, _ Hash, p string) { flip(t, p, false) }, false, false},
		{"damaged under the file system", func(t *testing.T, _ *Store, _ Hash, p string) { flip(t, p, true) }, true, false},
		{"replaced", func(t *testing.T, _ *Store, _ Hash, p string) {
			corrupted := append([]byte(nil), data...)
			corrupted[0] ^= 1
			if err := os.Rename(p, p+".old"); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, corrupted, 0o444); err != nil {
				t.Fatal(err)
			}
		}, false, false},
		{"read by another process first", func(t *testing.T, s2 *Store, h Hash, p string) {
			if _, err := s2.Blobs().Get(t.Context(), h); err != nil {
				t.Fatal(err)
			}
			flip(t, p, true)
		}, true, true},
		{"rewritten, read by another process, damaged in the same tick", func(t *testing.T, s2 *Store, h Hash, p string) {
			// As a version of dagger that did not date files back wrote it.
			if err := os.Chmod(p, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := s2.Blobs().Get(t.Context(), h); err != nil {
				t.Fatal(err)
			}
			flip(t, p, true)
		}, false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s, s2 := openStoreAt(t, dir), openStoreAt(t, dir)
			h, err := s.Blobs().Put(t.Context(), data)
			if err != nil {
				t.Fatal(err)
			}
			tt.damage(t, s2, h, s.blobs.path(h))

			for i, s := range []*Store{s, s2} {
				who, trusted := "the writer", tt.trusted
				if i == 1 {
					who, trusted = "another process", tt.trusted2
				}
				for _, read := range []struct {
					op  string
					get func() error
				}{
					{"Get", func() error {
						_, err := s.Blobs().Get(t.Context(), h)
						return err
					}},
					{"Open", func() error {
						rc, err := s.Blobs().Open(t.Context(), h)
						if err != nil {
							return err
						}
						defer rc.Close()
						if size := rc.(interface{ Size() int64 }).Size(); size != int64(len(data)) {
							t.Errorf("Open: Size() = %d, want %d", size, len(data))
						}
						// In one read, which hashes a chunk while it reads
						// the next, and reports the end on the next.
						if _, err := io.ReadFull(rc, make([]byte, len(data))); err != nil {
							return err
						}
						if n, err := rc.Read(make([]byte, 1)); n != 0 || err != io.EOF {
							return fmt.Errorf("read at the end: %d, %w", n, err)
						}
						return nil
					}},
				} {
					err := read.get()
					if trusted && err != nil {
						t.Errorf("%s by %s: %v; want the file trusted", read.op, who, err)
					}
					if !trusted && !errors.Is(err, ErrCorrupt) {
						t.Errorf("%s by %s: %v; want it to hash the file and find it corrupt", read.op, who, err)
					}
				}
			}
		})
	}
}
