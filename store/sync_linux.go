package store

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// blobPerm makes blob files read-only, as they are immutable. Temporary
// files are created with it too: the descriptor opened to create a file can
// write to it whatever its permissions.
const blobPerm = 0o444

// flushByPath is false because syncer needs no list of the files to flush.
const flushByPath = false

// syncer flushes blob files with syncfs(2), one system call for the whole
// file system however many files are pending. It also flushes whatever else
// is dirty on that file system, which is the price of not paying a device
// flush per file.
type syncer struct {
	dir *os.File
}

func newSyncer(root string) (*syncer, error) {
	dir, err := os.Open(root)
	if err != nil {
		return nil, err
	}
	// The descriptor stays open so that syncfs reports write-back errors
	// that happen at any time after Open, not only after its own opening.
	return &syncer{dir: dir}, nil
}

func (s *syncer) sync([]string) error {
	rc, err := s.dir.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			serr = unix.Syncfs(int(fd))
			if !errors.Is(serr, unix.EINTR) {
				return
			}
		}
	}); err != nil {
		return err
	}
	return os.NewSyscallError("syncfs", serr)
}

func (s *syncer) close() error {
	return s.dir.Close()
}

// startFlush starts flushing n bytes of f from off to stable storage, and
// returns at once, so that a later flush of the whole file system waits
// only for what was written since. Its failure is not reported: the flush
// that makes the blob durable reports any error of the device.
func startFlush(f *os.File, off, n int64) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_ = unix.SyncFileRange(int(fd), off, n, unix.SYNC_FILE_RANGE_WRITE)
	})
}
