package store

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// ErrDiskFull is wrapped by the errors of writes to a store whose disk is
// full, or whose owner's disk quota is used up.
var ErrDiskFull = errors.New("its disk is full")

// diskFull returns err, which a write to the store in dir returned, saying
// where the disk is full if that is why it failed: the system's "no space
// left on device" names a file deep inside the store, if any, and SQLite's
// "database or disk is full" no place at all.
func diskFull(dir string, err error) error {
	if err == nil || errors.Is(err, ErrDiskFull) || !isDiskFull(err) {
		return err
	}
	return fmt.Errorf("store %s: %w; free space on it and try again: %w", dir, ErrDiskFull, err)
}

func isDiskFull(err error) bool {
	var e *sqlite.Error
	if errors.As(err, &e) && e.Code()&0xff == sqlite3.SQLITE_FULL {
		return true
	}
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// reserveSize is the room the store keeps on its disk, in the file
// reserve, so that the end of a run that a full disk stopped can still be
// recorded: FinishRun gives the room up when the disk is full, and
// CreateRun takes it again when it can.
const reserveSize = 1 << 20

func (s *Store) reservePath() string { return filepath.Join(s.dir, "reserve") }

// keepReserve makes the reserve if it is missing. A disk too full for it is
// no error: the run may still fit, and its errors say so if not.
func (s *Store) keepReserve() {
	p := s.reservePath()
	if info, err := os.Stat(p); err == nil && info.Size() == reserveSize {
		return
	}
	// Bytes that do not compress, synced, so that a file system that
	// compresses, or allocates late, takes the room now.
	data := make([]byte, reserveSize)
	rand.Read(data)
	if err := writeSynced(p, data); err != nil {
		os.Remove(p)
	}
}

func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o666)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

// giveUpReserve frees the room of the reserve, and reports whether there
// was one.
func (s *Store) giveUpReserve() bool {
	return os.Remove(s.reservePath()) == nil
}
