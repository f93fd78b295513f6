package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Blobs is a content-addressed store of immutable byte strings.
//
// Storing a blob does not flush it to stable storage: Sync does that for
// all blobs stored since the previous Sync at once, because flushing blobs
// one by one would dominate the cost of storing many small ones. So do
// Store.CommitTask and Store.FinishTasks for the blobs stored before they
// are called.
//
// A blob is visible to the process that stored it as soon as Put returns.
// Other processes see a large blob at once too, but a small one (see
// inlineMax) once it is durable: the store keeps it in memory until then,
// so that storing it costs no disk access. A process that stores blobs for
// another, as "dagger step" does, calls Sync before handing their hashes
// over.
//
// Implementations are safe for concurrent use.
type Blobs interface {
	// Put stores the concatenation of parts and returns its hash, without
	// joining them in memory: a value's encoding can then refer to its large
	// strings where they are. Put does not modify the parts, nor keep them
	// once it returns. Storing content that is already present costs little
	// more than hashing it.
	Put(ctx context.Context, parts ...[]byte) (Hash, error)

	// PutReader stores everything read from r up to io.EOF and returns its
	// hash and size, holding only a small buffer in memory.
	PutReader(ctx context.Context, r io.Reader) (Hash, int64, error)

	// Get returns the content of blob h after checking that it hashes to h,
	// in a new buffer that is the caller's. An implementation may skip the
	// check for a blob it wrote or checked itself and can tell has not
	// changed since. The error wraps fs.ErrNotExist if the blob is absent
	// and ErrCorrupt if its content does not match h.
	Get(ctx context.Context, h Hash) ([]byte, error)

	// Open returns a reader of the content of blob h, which hashes the
	// content as it is read and, in place of io.EOF, returns an error
	// wrapping ErrCorrupt if it does not match h; it may skip the check as
	// Get does. The error wraps fs.ErrNotExist if the blob is absent. The
	// readers of a Store's blobs have a method Size() int64, which returns
	// the size of the blob, so that a reader of a large one can allocate
	// exactly what it needs.
	Open(ctx context.Context, h Hash) (io.ReadCloser, error)

	// Sync makes durable every blob whose Put or PutReader returned before
	// Sync was called.
	Sync(ctx context.Context) error
}

// ErrCorrupt is wrapped by errors reporting a blob whose content does not
// match its hash.
var ErrCorrupt = errors.New("blob is corrupt")

const (
	// ioChunk bounds the size of a single read or write of blob content, so
	// that large blobs are transferred with few system calls while
	// cancellation is still noticed promptly.
	ioChunk = 1 << 20

	// writeAheadMin is the size from which Put writes a blob while hashing
	// it rather than after.
	writeAheadMin = ioChunk

	// flushChunk is how much of a large blob is written before Put starts
	// flushing it to stable storage.
	flushChunk = 8 << 20

	// maxDirOps bounds the file creations and renames in progress at once.
	// They serialize on directory locks in the kernel anyway, and thousands
	// of goroutines blocked in them would each hold an OS thread, against
	// the runtime's limit of 10000.
	maxDirOps = 4

	// trustMin is the size from which a blob file that a process wrote or
	// verified is trusted by its later reads (see dirBlobs.trust). Smaller
	// files take less time to hash than to open.
	trustMin = ioChunk

	// maxTrusted bounds the blob files trusted at once, and so the memory
	// that trusting them takes, however many large blobs a process reads.
	maxTrusted = 4096

	// staleTempAge is how old a file in the temporary directory must be for
	// Open to delete it as debris of a killed process. Temporary files of
	// live processes are younger, as they are being written to, unless the
	// source of a PutReader stalls for as long.
	staleTempAge = 24 * time.Hour
)

// storeBlobs is the Blobs of a Store. It keeps blobs of up to inlineMax
// bytes in the database, where storing many costs far less than creating as
// many files, and larger ones in files (see dirBlobs). Small blobs wait in
// memory for the next durable write to the database (see pendingBlobs).
//
// Blobs are looked for in memory, then in the database, then in files,
// because a small blob stored by an older version of dagger, or by Put when
// too many were pending, is a file.
type storeBlobs struct {
	s *Store
}

func (b storeBlobs) Put(ctx context.Context, parts ...[]byte) (Hash, error) {
	h, err := b.put(ctx, parts)
	return h, diskFull(b.s.dir, err)
}

func (b storeBlobs) put(ctx context.Context, parts [][]byte) (Hash, error) {
	s := b.s
	if partsLen(parts) > s.inlineMax {
		return s.blobs.Put(ctx, parts...)
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("store: put blob: %w", err)
	}
	if s.closed.Load() {
		return "", fmt.Errorf("store: put blob: %w", errClosed)
	}
	data := joinParts(parts)
	h := HashOf(sha256.Sum256(data))
	if s.inline.add(h, data, s.maxPending) {
		return h, nil
	}
	return s.blobs.put(ctx, h, data)
}

func (b storeBlobs) PutReader(ctx context.Context, r io.Reader) (Hash, int64, error) {
	if err := ctx.Err(); err != nil {
		return "", 0, fmt.Errorf("store: put blob: %w", err)
	}
	// Whether the blob is small is known once that many bytes and one
	// more are read, or fewer and the end.
	buf := make([]byte, b.s.inlineMax+1)
	n, err := io.ReadFull(ctxReader{ctx, r}, buf)
	switch err {
	case io.EOF, io.ErrUnexpectedEOF:
		h, err := b.Put(ctx, buf[:n])
		return h, int64(n), err
	case nil:
		h, n, err := b.s.blobs.putReader(ctx, buf, r)
		return h, n, diskFull(b.s.dir, err)
	}
	return "", 0, fmt.Errorf("store: put blob: %w", err)
}

func (b storeBlobs) Get(ctx context.Context, h Hash) ([]byte, error) {
	data, corrupt, err := b.getInline(ctx, h)
	switch {
	case err != nil:
		return nil, fmt.Errorf("store: get blob %s: %w", h, err)
	case data != nil && corrupt == nil:
		return data, nil
	}
	data, err = b.s.blobs.Get(ctx, h)
	if corrupt != nil && errors.Is(err, fs.ErrNotExist) {
		return nil, corrupt
	}
	return data, err
}

// getInline returns the content of blob h if it is pending in memory or
// in the database, nil if not. If the content does not match h, it returns
// it with an error wrapping ErrCorrupt as corrupt; the blob may also be in a
// file.
func (b storeBlobs) getInline(ctx context.Context, h Hash) (data []byte, corrupt, err error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if err := checkHash(string(h)); err != nil {
		return nil, nil, err
	}
	where := "the copy in memory"
	if d, ok := b.s.inline.get(h); ok {
		// A copy, which the caller may modify.
		data = append(make([]byte, 0, len(d)), d...)
	} else {
		where = "the copy in meta.db"
		var ok bool
		data, ok, err = b.s.inlineBlob(ctx, h)
		if !ok || err != nil {
			return nil, nil, err
		}
	}
	if got := HashOf(sha256.Sum256(data)); got != h {
		return data, corruptError(h, where, got), nil
	}
	return data, nil, nil
}

func (b storeBlobs) Open(ctx context.Context, h Hash) (io.ReadCloser, error) {
	data, corrupt, err := b.getInline(ctx, h)
	switch {
	case err != nil:
		return nil, fmt.Errorf("store: open blob %s: %w", h, err)
	case data != nil && corrupt == nil:
		return &inlineReader{data: data, size: int64(len(data))}, nil
	}
	rc, err := b.s.blobs.Open(ctx, h)
	if corrupt != nil && errors.Is(err, fs.ErrNotExist) {
		return &inlineReader{data: data, size: int64(len(data)), err: corrupt}, nil
	}
	return rc, err
}

// inlineReader reads a blob held in memory. It returns err, if not nil, in
// place of io.EOF.
type inlineReader struct {
	data []byte // what is left to read
	size int64
	err  error
}

func (r *inlineReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		return 0, io.EOF
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func (r *inlineReader) Close() error {
	return nil
}

// Size returns the size of the blob.
func (r *inlineReader) Size() int64 {
	return r.size
}

// Sync flushes the blob files stored since the last flush, if any, and
// writes the pending small blobs in a durable transaction. The transaction
// goes through the queue of CommitTask, so that it is shared with the
// records of tasks finishing meanwhile.
func (b storeBlobs) Sync(ctx context.Context) error {
	s := b.s
	var err error
	if s.inline.empty() {
		err = s.flushFiles(ctx)
	} else {
		err = s.enqueue(ctx, commitRequest{durable: true})
	}
	if err != nil {
		return fmt.Errorf("store: sync blobs: %w", err)
	}
	return nil
}

// flushFiles flushes the blob files stored since the last flush, if any.
func (s *Store) flushFiles(ctx context.Context) error {
	if err := s.blobs.flush(ctx); err != nil {
		return diskFull(s.dir, fmt.Errorf("flush blob files: %w", err))
	}
	return nil
}

// dirBlobs stores each blob in its own file, named after the hash, under a
// two-level fan-out (blobs/ab/cdef...) that keeps directories small. The
// store keeps blobs larger than inlineMax there.
//
// A blob is written to a temporary file on the same file system and renamed
// into place when complete, so a file under blobs/ always holds a whole blob
// even if the writing process is killed. After a power failure, files
// renamed into place since the last Sync may have lost their content; such a
// file is shorter than the blob on common file systems, which Put detects and
// repairs, and Get reports any other mismatch as corruption.
type dirBlobs struct {
	root    string // <dir>/blobs
	tmp     string // <dir>/tmp
	flusher *syncer
	// flushing holds a token while a flush is in progress. Flushes take
	// turns so that one never returns while a concurrent one is still
	// flushing files that were pending when the other began.
	flushing chan struct{}
	// dirOps holds a token for each file creation or rename in progress.
	dirOps chan struct{}

	mu      sync.Mutex
	dirty   bool     // blobs were stored since the last flush
	pending []string // if flushByPath, the files of those blobs
	syncErr error    // the failure of an earlier flush; see flush

	trustMu sync.Mutex
	trusted map[Hash]fs.FileInfo // see trust
}

// openBlobs opens the blobs of the store in dir. With write, it makes
// their folders and removes stale temporary files; without, it changes
// nothing, for a store opened read-only.
func openBlobs(dir string, write bool) (*dirBlobs, error) {
	b := &dirBlobs{
		root:     filepath.Join(dir, "blobs"),
		tmp:      filepath.Join(dir, "tmp"),
		flushing: make(chan struct{}, 1),
		dirOps:   make(chan struct{}, maxDirOps),
	}
	if write {
		for _, d := range []string{b.root, b.tmp} {
			if err := os.MkdirAll(d, 0o777); err != nil {
				return nil, err
			}
		}
		if err := removeStaleTemps(b.tmp, time.Now().Add(-staleTempAge)); err != nil {
			return nil, err
		}
	}
	s, err := newSyncer(b.root)
	if err != nil {
		return nil, err
	}
	b.flusher = s
	return b, nil
}

// removeStaleTemps deletes the temporary files last modified before cutoff.
func removeStaleTemps(dir string, cutoff time.Time) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // finished or removed by another process meanwhile
		}
		if err != nil {
			return err
		}
		if !info.Mode().IsRegular() || !info.ModTime().Before(cutoff) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

func (b *dirBlobs) close() error {
	return b.flusher.close()
}

func (b *dirBlobs) path(h Hash) string {
	d := h.Digest()
	return filepath.Join(b.root, d[:2], d[2:])
}

// hasBlobFile reports whether the blob file p exists with the expected size.
// A size mismatch means the file lost content in a crash, and must be
// rewritten.
func hasBlobFile(p string, size int64) bool {
	info, err := os.Lstat(p)
	return err == nil && info.Mode().IsRegular() && info.Size() == size
}

// sameContent reports whether the file p holds data.
func sameContent(p string, data []byte) bool {
	got, err := os.ReadFile(p)
	return err == nil && bytes.Equal(got, data)
}

// Put hashes data before writing it, so as not to write content that is
// already present again. Large blobs are instead written while being hashed,
// which hides the cost of hashing, the slower of the two on fast disks; if
// the blob turns out to be present, the write is abandoned.
func (b *dirBlobs) Put(ctx context.Context, parts ...[]byte) (Hash, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("store: put blob: %w", err)
	}
	if size := partsLen(parts); size >= writeAheadMin {
		return b.putWriteAhead(ctx, parts, size)
	}
	data := joinParts(parts)
	return b.put(ctx, HashOf(sha256.Sum256(data)), data)
}

// partsLen returns the length of the concatenation of parts.
func partsLen(parts [][]byte) int {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	return n
}

// joinParts returns the concatenation of parts, which it copies only if
// there are several.
func joinParts(parts [][]byte) []byte {
	if len(parts) == 1 {
		return parts[0]
	}
	// Non-nil even when empty, as the database stores nil as NULL.
	return bytes.Join(parts, []byte{})
}

// put stores data, whose hash is h, unless it is present. A small blob
// found present is compared with data, and written again if it differs:
// a corrupt blob is repaired by the next put of its content, rather than
// kept.
func (b *dirBlobs) put(ctx context.Context, h Hash, data []byte) (Hash, error) {
	p := b.path(h)
	if !hasBlobFile(p, int64(len(data))) || !sameContent(p, data) {
		f, err := b.createTemp()
		if err != nil {
			return "", fmt.Errorf("store: put blob %s: %w", h, err)
		}
		if err := writeChunks(ctx, f, data, nil); err != nil {
			return "", fmt.Errorf("store: put blob %s: %w", h, errors.Join(err, discard(f)))
		}
		if err := b.install(f, p, int64(len(data))); err != nil {
			return "", fmt.Errorf("store: put blob %s: %w", h, err)
		}
	}
	b.addPending(p)
	return h, nil
}

// putWriteAhead writes the blob made of parts, of the given size, while
// hashing it, and keeps it only once the hash shows it is not present.
// Having hashed what it wrote, it trusts the file (see trust).
func (b *dirBlobs) putWriteAhead(ctx context.Context, parts [][]byte, size int) (Hash, error) {
	f, err := b.createTemp()
	if err != nil {
		return "", fmt.Errorf("store: put blob: %w", err)
	}
	var abandon atomic.Bool
	written := make(chan error, 1)
	go func() {
		w := &flushingWriter{f: f}
		var err error
		for _, p := range parts {
			if err = writeChunks(ctx, w, p, &abandon); err != nil {
				break
			}
		}
		written <- err
	}()
	h := HashParts(parts...)
	p := b.path(h)
	var info fs.FileInfo
	if hasBlobFile(p, int64(size)) {
		abandon.Store(true)
		// Whether the write failed does not matter: the blob is present.
		<-written
		err = discard(f)
	} else if err = <-written; err != nil {
		err = errors.Join(err, discard(f))
	} else if info, err = backdate(f); err != nil {
		err = errors.Join(err, discard(f))
	} else {
		err = b.install(f, p, int64(size))
	}
	if err != nil {
		return "", fmt.Errorf("store: put blob %s: %w", h, err)
	}
	if info != nil {
		b.trust(h, info)
	}
	b.addPending(p)
	return h, nil
}

// putReader stores prefix followed by everything read from r up to io.EOF.
func (b *dirBlobs) putReader(ctx context.Context, prefix []byte, r io.Reader) (Hash, int64, error) {
	f, err := b.createTemp()
	if err != nil {
		return "", 0, fmt.Errorf("store: put blob: %w", err)
	}
	hw := sha256.New()
	w := io.MultiWriter(f, hw)
	_, err = w.Write(prefix)
	var n int64
	if err == nil {
		n, err = io.CopyBuffer(w, ctxReader{ctx, r}, make([]byte, 256<<10))
		n += int64(len(prefix))
	}
	if err != nil {
		return "", 0, fmt.Errorf("store: put blob: %w", errors.Join(err, discard(f)))
	}
	var sum [sha256.Size]byte
	h := HashOf([sha256.Size]byte(hw.Sum(sum[:0])))
	p := b.path(h)
	var info fs.FileInfo
	if hasBlobFile(p, n) {
		err = discard(f)
	} else if info, err = backdate(f); err != nil {
		err = errors.Join(err, discard(f))
	} else {
		err = b.install(f, p, n)
	}
	if err != nil {
		return "", 0, fmt.Errorf("store: put blob %s: %w", h, err)
	}
	if info != nil {
		b.trust(h, info)
	}
	b.addPending(p)
	return h, n, nil
}

// createTemp creates a temporary file for a blob. Unlike os.CreateTemp, it
// gives the file its final permissions at once, saving a chmod.
func (b *dirBlobs) createTemp() (*os.File, error) {
	b.dirOps <- struct{}{}
	defer func() { <-b.dirOps }()
	for {
		name := filepath.Join(b.tmp, "blob-"+strconv.FormatUint(rand.Uint64(), 36))
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, blobPerm)
		if !errors.Is(err, fs.ErrExist) {
			return f, err
		}
	}
}

// ctxReader makes a copy loop notice cancellation between reads.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// flushingWriter writes to the blob file f, starting to flush each
// flushChunk it writes to stable storage (see startFlush): the flush that
// makes the blob durable then has little left to wait for, as the device
// has been writing while the blob was being hashed, which takes longer.
type flushingWriter struct {
	f              *os.File
	off, flushedTo int64
}

func (w *flushingWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.off += int64(n)
	if w.off-w.flushedTo >= flushChunk {
		startFlush(w.f, w.flushedTo, w.off-w.flushedTo)
		w.flushedTo = w.off
	}
	return n, err
}

// writeChunks writes data to w, checking between chunks whether ctx is done
// or, if abandon is not nil, whether it is set.
func writeChunks(ctx context.Context, w io.Writer, data []byte, abandon *atomic.Bool) error {
	for len(data) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		if abandon != nil && abandon.Load() {
			return nil
		}
		n := min(len(data), ioChunk)
		if _, err := w.Write(data[:n]); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// install moves the complete temporary file f into place as blob file p of
// the given size, closing f.
func (b *dirBlobs) install(f *os.File, p string, size int64) error {
	tmp := f.Name()
	if err := f.Close(); err != nil {
		return errors.Join(err, os.Remove(tmp))
	}
	b.dirOps <- struct{}{}
	defer func() { <-b.dirOps }()
	err := os.Rename(tmp, p)
	if errors.Is(err, fs.ErrNotExist) {
		// The first blob with this prefix creates its fan-out directory,
		// which is cheaper than creating all 256 of them in advance.
		err = os.Mkdir(filepath.Dir(p), 0o777)
		if err == nil || errors.Is(err, fs.ErrExist) {
			err = os.Rename(tmp, p)
		}
	}
	if err != nil {
		if hasBlobFile(p, size) {
			// A concurrent writer of the same content got there first,
			// and the platform refuses to replace its file (Windows does
			// while the file is open).
			return os.Remove(tmp)
		}
		return errors.Join(err, os.Remove(tmp))
	}
	return nil
}

// discard closes and removes the temporary file f.
func discard(f *os.File) error {
	return errors.Join(f.Close(), os.Remove(f.Name()))
}

// addPending notes that blob file p must be flushed. That includes blobs
// that were already present, as they may have been stored by another
// process that has not flushed them yet.
func (b *dirBlobs) addPending(p string) {
	b.mu.Lock()
	b.dirty = true
	if flushByPath {
		b.pending = append(b.pending, p)
	}
	b.mu.Unlock()
}

// Get hashes the content it reads, unless the file is one this process
// wrote or verified and still has the identity it had then (see trust).
func (b *dirBlobs) Get(ctx context.Context, h Hash) ([]byte, error) {
	f, p, err := b.open(ctx, h)
	if err != nil {
		return nil, fmt.Errorf("store: get blob %s: %w", h, err)
	}
	defer f.Close() // read-only, so closing cannot lose data
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("store: get blob %s: %w", h, err)
	}
	if b.isTrusted(h, info) {
		data, err := readChunks(ctx, f, info.Size())
		if err != nil {
			return nil, fmt.Errorf("store: get blob %s: %s: %w", h, p, err)
		}
		return data, nil
	}
	start := time.Now()
	data, sum, err := readHashed(ctx, f, info.Size())
	if err != nil {
		return nil, fmt.Errorf("store: get blob %s: %s: %w", h, p, err)
	}
	if got := HashOf(sum); got != h {
		return nil, corruptError(h, p, got)
	}
	if info.ModTime().Before(start.Add(-racyAge)) {
		b.trust(h, info)
	}
	return data, nil
}

// racyAge is how long before it is checked a file must have last been
// written to for a check to be trusted, and how far back a writer of a
// blob file dates it. A file system dates a write with a coarse clock,
// whose ticks last milliseconds, so a file written to again in the same
// tick as before keeps its modification time: only one last written a
// tick or more before it was checked is sure to show a later write.
const racyAge = time.Second

// backdate sets the modification time of the blob file f, just written,
// racyAge back, so that any later write to it changes it (see trust), and
// returns its identity.
func backdate(f *os.File) (fs.FileInfo, error) {
	if err := os.Chtimes(f.Name(), time.Time{}, time.Now().Add(-racyAge)); err != nil {
		return nil, err
	}
	return f.Stat()
}

// trust notes that the blob file of h, with the given identity, holds the
// content of h: this process wrote the content it hashed, or hashed what
// it read. Get then trusts the file while it keeps that identity (the same
// file, size and modification time), which a file replaced or written to
// since loses, as its last write before is at least racyAge old; only
// damage below the file system goes unnoticed, as it would between the
// check and the use of the content anyway. Small files are not noted,
// being as quick to hash as to look up.
func (b *dirBlobs) trust(h Hash, info fs.FileInfo) {
	if info.Size() < trustMin {
		return
	}
	b.trustMu.Lock()
	defer b.trustMu.Unlock()
	if len(b.trusted) >= maxTrusted {
		clear(b.trusted) // forgetting costs only hashing again
	}
	if b.trusted == nil {
		b.trusted = make(map[Hash]fs.FileInfo)
	}
	b.trusted[h] = info
}

// isTrusted reports whether the blob file of h, which has the identity
// info, is one that trust noted.
func (b *dirBlobs) isTrusted(h Hash, info fs.FileInfo) bool {
	b.trustMu.Lock()
	known, ok := b.trusted[h]
	b.trustMu.Unlock()
	return ok && os.SameFile(known, info) && known.Size() == info.Size() && known.ModTime().Equal(info.ModTime())
}

// readChunks reads size bytes from r, checking between chunks whether ctx
// is done.
func readChunks(ctx context.Context, r io.Reader, size int64) ([]byte, error) {
	buf := make([]byte, size)
	for off := 0; off < len(buf); {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		end := min(off+ioChunk, len(buf))
		if _, err := io.ReadFull(r, buf[off:end]); err != nil {
			return nil, err
		}
		off = end
	}
	return buf, nil
}

func (b *dirBlobs) open(ctx context.Context, h Hash) (*os.File, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	if err := checkHash(string(h)); err != nil {
		return nil, "", err
	}
	p := b.path(h)
	f, err := os.Open(p)
	return f, p, err
}

func corruptError(h Hash, path string, got Hash) error {
	return fmt.Errorf("store: get blob %s: %w: %s has content hash %s", h, ErrCorrupt, path, got)
}

// readHashed reads size bytes from r and returns them with their SHA-256
// digest.
func readHashed(ctx context.Context, r io.Reader, size int64) ([]byte, [sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	buf := make([]byte, size)
	hw := sha256.New()
	if _, err := readInto(ctx, r, buf, hw); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, sum, err
	}
	hw.Sum(sum[:0])
	return buf, sum, nil
}

// readInto fills buf from r, writing what it reads to hw, and returns how
// many bytes it read, which is fewer only with an error, io.EOF if r ended.
// A large buf is read a chunk at a time, each hashed while the next is
// read, which nearly doubles throughput on two cores without copying, and
// lets a collection preempt the hashing between chunks.
func readInto(ctx context.Context, r io.Reader, buf []byte, hw hash.Hash) (int, error) {
	if len(buf) <= ioChunk {
		n, err := io.ReadFull(r, buf)
		hw.Write(buf[:n])
		if err == io.ErrUnexpectedEOF {
			err = io.EOF
		}
		return n, err
	}
	ready := make(chan int, (len(buf)+ioChunk-1)/ioChunk)
	readErr := make(chan error, 1)
	go func() {
		defer close(ready)
		for off := 0; off < len(buf); {
			if err := ctx.Err(); err != nil {
				readErr <- err
				return
			}
			end := min(off+ioChunk, len(buf))
			n, err := io.ReadFull(r, buf[off:end])
			if n > 0 {
				ready <- off + n
			}
			if err != nil {
				if err == io.ErrUnexpectedEOF {
					err = io.EOF
				}
				readErr <- err
				return
			}
			off = end
		}
		readErr <- nil
	}()
	start := 0
	for end := range ready {
		hw.Write(buf[start:end])
		start = end
	}
	return start, <-readErr
}

// Open returns a reader that hashes what it reads, as Get does, unless the
// file is trusted.
func (b *dirBlobs) Open(ctx context.Context, h Hash) (io.ReadCloser, error) {
	f, p, err := b.open(ctx, h)
	if err != nil {
		return nil, fmt.Errorf("store: open blob %s: %w", h, err)
	}
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("store: open blob %s: %w", h, errors.Join(err, f.Close()))
	}
	r := &blobReader{ctx: ctx, f: f, path: p, want: h, b: b, info: info, start: time.Now()}
	if !b.isTrusted(h, info) {
		r.hash = sha256.New()
	}
	return r, nil
}

// blobReader verifies the content of a blob as it is read, unless hash is
// nil; then the file was trusted when it was opened.
type blobReader struct {
	ctx  context.Context
	f    *os.File
	path string
	want Hash
	hash hash.Hash

	// For trust, once the content is verified.
	b     *dirBlobs
	info  fs.FileInfo
	start time.Time
}

func (r *blobReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	if r.hash == nil {
		// A chunk at a time, so that cancellation is noticed.
		return r.f.Read(p[:min(len(p), ioChunk)])
	}
	n, err := readInto(r.ctx, r.f, p, r.hash)
	if err == io.EOF {
		var sum [sha256.Size]byte
		if got := HashOf([sha256.Size]byte(r.hash.Sum(sum[:0]))); got != r.want {
			return n, corruptError(r.want, r.path, got)
		}
		if r.info.ModTime().Before(r.start.Add(-racyAge)) {
			r.b.trust(r.want, r.info)
		}
	}
	return n, err
}

// Size returns the size of the blob.
func (r *blobReader) Size() int64 {
	return r.info.Size()
}

// WriteTo lets io.Copy move large blobs in big chunks instead of its default
// 32 KiB buffer.
func (r *blobReader) WriteTo(w io.Writer) (int64, error) {
	buf := make([]byte, 1<<20)
	var total int64
	for {
		n, err := r.Read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

func (r *blobReader) Close() error {
	return r.f.Close()
}

// flush flushes the blob files stored since the last flush, if any. A
// failed flush is reported by every later one as well: the kernel reports a
// write-back error only once, after which the lost data would look clean,
// so a retry could wrongly succeed.
func (b *dirBlobs) flush(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case b.flushing <- struct{}{}:
		defer func() { <-b.flushing }()
	case <-ctx.Done():
		return ctx.Err()
	}
	b.mu.Lock()
	if b.syncErr != nil {
		err := b.syncErr
		b.mu.Unlock()
		return fmt.Errorf("earlier failure: %w", err)
	}
	dirty, pending := b.dirty, b.pending
	b.dirty, b.pending = false, nil
	b.mu.Unlock()
	if !dirty {
		return nil
	}
	if err := b.flusher.sync(pending); err != nil {
		b.mu.Lock()
		b.syncErr = err
		b.mu.Unlock()
		return err
	}
	return nil
}
