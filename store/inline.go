package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
)

const (
	// inlineMax is the size up to which blobs are stored in the database,
	// in the table blobs, rather than in files. Creating a file costs
	// 40-500µs on common disks, and flushing it a file system flush, while
	// a row costs a few microseconds and shares the flush of the write-ahead
	// log with the records that refer to it. But SQLite writes a row twice,
	// to the log and then to the database, and reads it through its page
	// cache, so large rows lose to files. BenchmarkBlobSize, on a virtual
	// disk, commits tasks with 32 KiB blobs 2.8 times faster inline than in
	// files, and reads them as fast; with 128 KiB blobs, commits are about
	// as fast and reads 1.6 times slower.
	inlineMax = 32 << 10

	// maxPendingBytes bounds the memory held by small blobs waiting for a
	// durable write. Past it, Put stores small blobs in files, which
	// needs no memory, until a durable write has taken the pending ones.
	maxPendingBytes = 64 << 20

	// maxWrittenBytes bounds the memory held by the small blobs that
	// writes committed, kept because they are often read right after:
	// the elements of a foreach, which its parent stores and each of its
	// tasks reads once it starts. Reading one from the database costs
	// 7 µs alone (BenchmarkGetSmall) and up to 40 µs beside the store's
	// writer (a read transaction, its locks in the -shm file, and
	// database/sql); from memory, well under one. 16 MiB holds the
	// elements of a foreach of about 100 000 small values.
	maxWrittenBytes = 16 << 20

	// writtenOverhead is what a written blob costs beyond its content:
	// its hash, twice, and a map entry.
	writtenOverhead = 2*len("sha256:") + 2*64 + 48
)

// putBlobSQL stores a small blob. Content already present is replaced only
// if it differs, so that storing a blob again repairs a corrupt copy but
// otherwise writes nothing.
const putBlobSQL = `INSERT INTO blobs (hash, data) VALUES (?, ?)
	ON CONFLICT (hash) DO UPDATE SET data = excluded.data WHERE data != excluded.data`

// pendingBlobs holds the small blobs that Put stored in memory. They are
// written by the next durable write transaction of the store, which takes
// every one present when it begins (see Store.write); they stay here,
// visible to Get, until it commits, and stay for the next one if it fails.
//
// Put must not wait for the disk, which makes a store of small blobs cheap;
// and durable writes happen anyway whenever a task finishes, which are the
// moments when the blobs it made must become durable. Blobs are not written
// by non-durable transactions, which would then leave them in the database
// but not durable, and make Sync need to know which are.
type pendingBlobs struct {
	mu    sync.Mutex
	blobs map[Hash]*pendingBlob
	size  int // bytes of data in blobs

	// written holds the content of blobs that writes committed, the
	// oldest first out of writtenOrder once they hold more than
	// maxWrittenBytes. Blobs are immutable, so a copy never goes stale.
	written      map[Hash][]byte
	writtenOrder []Hash // from writtenOrder[writtenHead] on
	writtenHead  int
	writtenSize  int // bytes of written, overhead included
}

type pendingBlob struct {
	hash  Hash
	data  []byte
	taken bool // by a write in progress
}

// add adds blob h, unless its addition would make the pending blobs exceed
// limit bytes, reporting whether it did or the blob was already present.
// It keeps a copy of data.
func (p *pendingBlobs) add(h Hash, data []byte, limit int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.blobs[h]; ok {
		return true
	}
	if p.size+len(data) > limit {
		return false
	}
	if p.blobs == nil {
		p.blobs = make(map[Hash]*pendingBlob)
	}
	// A non-nil slice even for empty content: database/sql stores nil as
	// NULL.
	p.blobs[h] = &pendingBlob{hash: h, data: append(make([]byte, 0, len(data)), data...)}
	p.size += len(data)
	return true
}

// get returns the content of blob h if it is pending, or was written
// lately. The caller must not modify it.
func (p *pendingBlobs) get(h Hash) ([]byte, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if b, ok := p.blobs[h]; ok {
		return b.data, true
	}
	data, ok := p.written[h]
	return data, ok
}

func (p *pendingBlobs) empty() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.blobs) == 0
}

// take returns the blobs that no write has taken yet, for a write to store.
// The caller must call done with them once it ends.
func (p *pendingBlobs) take() []*pendingBlob {
	p.mu.Lock()
	defer p.mu.Unlock()
	var taken []*pendingBlob
	for _, b := range p.blobs {
		if !b.taken {
			b.taken = true
			taken = append(taken, b)
		}
	}
	return taken
}

// done removes the taken blobs if the write that took them committed, and
// otherwise leaves them for the next.
func (p *pendingBlobs) done(taken []*pendingBlob, committed bool) {
	if len(taken) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range taken {
		b.taken = false
		if committed {
			delete(p.blobs, b.hash)
			p.size -= len(b.data)
			p.keepWritten(b.hash, b.data)
		}
	}
}

// keepWritten keeps the content of blob h, which a write committed,
// making room for it by forgetting the oldest kept.
func (p *pendingBlobs) keepWritten(h Hash, data []byte) {
	cost := len(data) + writtenOverhead
	if _, ok := p.written[h]; ok || cost > maxWrittenBytes {
		return
	}
	for p.writtenSize+cost > maxWrittenBytes {
		old := p.writtenOrder[p.writtenHead]
		p.writtenOrder[p.writtenHead] = ""
		p.writtenHead++
		p.writtenSize -= len(p.written[old]) + writtenOverhead
		delete(p.written, old)
	}
	if p.writtenHead > len(p.writtenOrder)/2 {
		// Reuse the space of the forgotten.
		p.writtenOrder = append(p.writtenOrder[:0], p.writtenOrder[p.writtenHead:]...)
		p.writtenHead = 0
	}
	if p.written == nil {
		p.written = make(map[Hash][]byte)
	}
	p.written[h] = data
	p.writtenOrder = append(p.writtenOrder, h)
	p.writtenSize += cost
}

// writeBlobs stores blobs in the database.
func (s *Store) writeBlobs(ctx context.Context, tx *sql.Tx, blobs []*pendingBlob) error {
	if len(blobs) == 0 {
		return nil
	}
	st := tx.StmtContext(ctx, s.putBlob)
	for _, b := range blobs {
		if _, err := st.ExecContext(ctx, b.hash, b.data); err != nil {
			return fmt.Errorf("blob %s: %w", b.hash, err)
		}
	}
	return nil
}

// inlineBlob returns the content of blob h from the database, or nil and
// false if it is not there.
func (s *Store) inlineBlob(ctx context.Context, h Hash) ([]byte, bool, error) {
	var data []byte
	// Without ctx's cancellation, for which the driver would start a
	// goroutine per query, doubling its cost: a lookup by key in WAL mode
	// does not wait for writers.
	err := s.getBlob.QueryRowContext(context.WithoutCancel(ctx), h).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if data == nil {
		data = []byte{} // an empty blob, which the driver reads as nil
	}
	return data, true, nil
}
