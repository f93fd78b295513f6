package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkPutGet measures blob throughput. Every Put stores new content.
func BenchmarkPutGet(b *testing.B) {
	for _, size := range []int{1 << 20, 64 << 20} {
		name := fmt.Sprintf("%dMiB", size>>20)
		data := randomBytes(1, size)
		b.Run("Put/"+name, func(b *testing.B) {
			bs := openTestStore(b).Blobs()
			b.SetBytes(int64(size))
			for i := 0; b.Loop(); i++ {
				binary.LittleEndian.PutUint64(data, uint64(i))
				if _, err := bs.Put(b.Context(), data); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("PutSync/"+name, func(b *testing.B) {
			bs := openTestStore(b).Blobs()
			b.SetBytes(int64(size))
			for i := 0; b.Loop(); i++ {
				binary.LittleEndian.PutUint64(data, uint64(i))
				if _, err := bs.Put(b.Context(), data); err != nil {
					b.Fatal(err)
				}
				if err := bs.Sync(b.Context()); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("Get/"+name, func(b *testing.B) {
			bs := openTestStore(b).Blobs()
			h, err := bs.Put(b.Context(), data)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(size))
			for b.Loop() {
				if _, err := bs.Get(b.Context(), h); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("Open/"+name, func(b *testing.B) {
			bs := openTestStore(b).Blobs()
			h, err := bs.Put(b.Context(), data)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(size))
			for b.Loop() {
				rc, err := bs.Open(b.Context(), h)
				if err != nil {
					b.Fatal(err)
				}
				_, err = io.Copy(io.Discard, rc)
				if err := errors.Join(err, rc.Close()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCommitTasks measures the wall time per task of many tasks
// finishing concurrently, each storing a small blob and committing itself;
// ns/op is the total time divided by the number of tasks. Run it with
// -benchtime=10000x for the case of 10000 tasks finishing at once.
func BenchmarkCommitTasks(b *testing.B) {
	for _, workers := range []int{1, 100, 10000} {
		b.Run(fmt.Sprintf("goroutines=%d", workers), func(b *testing.B) {
			s := openTestStore(b)
			run := createRun(b, s)
			b.ResetTimer()
			concurrently(b, workers, func(i int) error {
				id := strconv.Itoa(i)
				h, err := s.Blobs().Put(b.Context(), []byte("output of task "+id))
				if err != nil {
					return err
				}
				t := Task{RunID: run, ID: id, Step: "s", Status: TaskSucceeded, Attempt: 1, Artifacts: map[string]Hash{"out": h}}
				a := Attempt{RunID: run, TaskID: id, N: 1, Status: TaskSucceeded}
				return s.CommitTask(b.Context(), t, a)
			})
		})
	}
}

// BenchmarkTaskLifecycle measures the wall time per task of what the
// scheduler records of a foreach's tasks, from 4096 goroutines, as many
// as it commits at once: the queued start, one small artifact, and the
// commit; the writer's share of the per-task cost of a run.
func BenchmarkTaskLifecycle(b *testing.B) {
	s := openTestStore(b)
	run := createRun(b, s)
	b.ResetTimer()
	concurrently(b, 4096, func(i int) error {
		id := "work." + strconv.Itoa(i)
		started := time.Now()
		if err := s.QueueStartTask(b.Context(), Task{RunID: run, ID: id, Step: "work", Parents: []string{"start"}, Index: []int{i}, Attempt: 1, Started: started}); err != nil {
			return err
		}
		h, err := s.Blobs().Put(b.Context(), []byte("output of task "+id))
		if err != nil {
			return err
		}
		t := Task{RunID: run, ID: id, Step: "work", Parents: []string{"start"}, Index: []int{i}, Status: TaskSucceeded, Attempt: 1,
			Started: started, Ended: time.Now(), Next: []string{"join"}, Artifacts: map[string]Hash{"v": h}}
		a := Attempt{RunID: run, TaskID: id, N: 1, Status: TaskSucceeded, Started: started, Ended: t.Ended}
		return s.CommitTask(b.Context(), t, a)
	})
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/task")
}

// BenchmarkStartTask measures the wall time per task of recording task
// starts from one or many goroutines.
func BenchmarkStartTask(b *testing.B) {
	for _, workers := range []int{1, 10000} {
		b.Run(fmt.Sprintf("goroutines=%d", workers), func(b *testing.B) {
			s := openTestStore(b)
			run := createRun(b, s)
			b.ResetTimer()
			concurrently(b, workers, func(i int) error {
				t := Task{RunID: run, ID: strconv.Itoa(i), Step: "s", Parents: []string{"start.1"}, Attempt: 1}
				return s.StartTask(b.Context(), t)
			})
		})
	}
}

// concurrently calls f(0) to f(b.N-1) from the given number of goroutines.
func concurrently(b *testing.B, goroutines int, f func(i int) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				if err := f(i); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkBlobSize compares storing blobs of some sizes in the database
// and in files, which is how inlineMax was chosen. Commit measures the wall
// time per task of tasks committing concurrently, each with a new blob, and
// Get the time to read a blob back.
func BenchmarkBlobSize(b *testing.B) {
	for _, size := range []int{1 << 10, 8 << 10, 32 << 10, 64 << 10, 128 << 10} {
		for _, inline := range []bool{true, false} {
			where := "file"
			if inline {
				where = "inline"
			}
			name := fmt.Sprintf("%s/%dKiB", where, size>>10)
			setUp := func(b *testing.B) *Store {
				s := openTestStore(b)
				s.inlineMax = -1
				if inline {
					s.inlineMax = size
				}
				return s
			}
			b.Run("Commit/"+name, func(b *testing.B) {
				s := setUp(b)
				run := createRun(b, s)
				data := randomBytes(1, size)
				b.SetBytes(int64(size))
				b.ResetTimer()
				concurrently(b, 100, func(i int) error {
					data := append([]byte(strconv.Itoa(i)+"/"), data...)[:size]
					h, err := s.Blobs().Put(b.Context(), data)
					if err != nil {
						return err
					}
					id := strconv.Itoa(i)
					t := Task{RunID: run, ID: id, Step: "s", Status: TaskSucceeded, Attempt: 1, Artifacts: map[string]Hash{"out": h}}
					return s.CommitTask(b.Context(), t, Attempt{})
				})
			})
			b.Run("Get/"+name, func(b *testing.B) {
				s := setUp(b)
				var hashes []Hash
				for i := range 100 {
					h, err := s.Blobs().Put(b.Context(), randomBytes(uint64(i), size))
					if err != nil {
						b.Fatal(err)
					}
					hashes = append(hashes, h)
				}
				if err := s.Blobs().Sync(b.Context()); err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(size))
				for i := 0; b.Loop(); i++ {
					if _, err := s.Blobs().Get(b.Context(), hashes[i%len(hashes)]); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkGetSmall measures reading a small blob that the database
// holds, as a foreach task reads its element, with a context that can be
// cancelled, as a task's is.
func BenchmarkGetSmall(b *testing.B) {
	s := openTestStore(b)
	bs := s.Blobs()
	hashes := make([]Hash, 1000)
	for i := range hashes {
		h, err := bs.Put(b.Context(), []byte(strconv.Itoa(i)))
		if err != nil {
			b.Fatal(err)
		}
		hashes[i] = h
	}
	if err := bs.Sync(b.Context()); err != nil {
		b.Fatal(err)
	}
	for i := 0; b.Loop(); i++ {
		if _, err := bs.Get(b.Context(), hashes[i%len(hashes)]); err != nil {
			b.Fatal(err)
		}
	}
}
