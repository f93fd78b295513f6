package store

import (
	"errors"
	"os"

	"golang.org/x/sys/windows"
)

// tryLock takes an exclusive lock on the first byte of f without waiting,
// reporting false if another handle holds it. Closing f, or the end of the
// process however it ends, releases the lock. It reports errNoLocking if the
// file system does not support locks.
func tryLock(f *os.File) (bool, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return false, err
	}
	var lerr error
	if err := rc.Control(func(fd uintptr) {
		lerr = windows.LockFileEx(windows.Handle(fd), windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY,
			0, 1, 0, new(windows.Overlapped))
	}); err != nil {
		return false, err
	}
	switch {
	case lerr == nil:
		return true, nil
	case errors.Is(lerr, windows.ERROR_LOCK_VIOLATION), errors.Is(lerr, windows.ERROR_IO_PENDING):
		return false, nil
	case errors.Is(lerr, windows.ERROR_NOT_SUPPORTED), errors.Is(lerr, windows.ERROR_INVALID_FUNCTION):
		return false, errNoLocking
	}
	return false, os.NewSyscallError("LockFileEx", lerr)
}
