package datastore_test

import (
	"context"
	"io"
	"testing"

	"github.com/daggerflow/dagger/datastore"
	"github.com/daggerflow/dagger/store"
)

// benchSize is the size of the blobs of the throughput benchmarks.
const benchSize = 1 << 30

// cycleReader returns its chunk over and over.
type cycleReader struct {
	chunk []byte
	off   int
}

func (r *cycleReader) Read(p []byte) (int, error) {
	n := copy(p, r.chunk[r.off:])
	r.off = (r.off + n) % len(r.chunk)
	return n, nil
}

// benchBlob returns a reader of benchSize bytes whose content differs for
// each seed, produced without holding them all.
func benchBlob(seed int) io.Reader {
	return io.LimitReader(&cycleReader{chunk: random(1<<20, uint64(seed))}, benchSize)
}

// benchDatastores runs bench against an empty datastore of each backend.
func benchDatastores(b *testing.B, bench func(b *testing.B, d *datastore.Datastore)) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			url, _ := be.start(b)
			bench(b, open(b, url))
		})
	}
}

func BenchmarkPutReader(b *testing.B) {
	benchDatastores(b, func(b *testing.B, d *datastore.Datastore) {
		ctx := context.Background()
		b.SetBytes(benchSize)
		for i := 0; b.Loop(); i++ {
			if _, _, err := d.PutReader(ctx, benchBlob(i)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkPut(b *testing.B) {
	benchDatastores(b, func(b *testing.B, d *datastore.Datastore) {
		ctx := context.Background()
		data := make([]byte, benchSize)
		b.SetBytes(benchSize)
		for i := 0; b.Loop(); i++ {
			b.StopTimer()
			if _, err := io.ReadFull(benchBlob(i), data); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if _, err := d.Put(ctx, data); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// putBenchBlob stores a blob of benchSize bytes.
func putBenchBlob(b *testing.B, d *datastore.Datastore) store.Hash {
	h, _, err := d.PutReader(context.Background(), benchBlob(0))
	if err != nil {
		b.Fatal(err)
	}
	return h
}

func BenchmarkGet(b *testing.B) {
	benchDatastores(b, func(b *testing.B, d *datastore.Datastore) {
		h := putBenchBlob(b, d)
		b.SetBytes(benchSize)
		for b.Loop() {
			if _, err := d.Get(context.Background(), h); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkOpen(b *testing.B) {
	benchDatastores(b, func(b *testing.B, d *datastore.Datastore) {
		h := putBenchBlob(b, d)
		b.SetBytes(benchSize)
		for b.Loop() {
			r, err := d.Open(context.Background(), h)
			if err != nil {
				b.Fatal(err)
			}
			_, err = io.Copy(io.Discard, r)
			r.Close()
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}
