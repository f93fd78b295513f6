//go:build unix

package store

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// tryLock takes an exclusive flock(2) on f without waiting, reporting false
// if another open file holds it. The lock goes with the open file: closing
// f, or the end of the process however it ends, releases it. It reports
// errNoLocking if the file system does not support locks.
func tryLock(f *os.File) (bool, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return false, err
	}
	var lerr error
	if err := rc.Control(func(fd uintptr) {
		for {
			lerr = unix.Flock(int(fd), unix.LOCK_EX|unix.LOCK_NB)
			if !errors.Is(lerr, unix.EINTR) {
				return
			}
		}
	}); err != nil {
		return false, err
	}
	switch {
	case lerr == nil:
		return true, nil
	case errors.Is(lerr, unix.EWOULDBLOCK):
		return false, nil
	case errors.Is(lerr, unix.ENOLCK), errors.Is(lerr, unix.EOPNOTSUPP), errors.Is(lerr, unix.ENOSYS):
		return false, errNoLocking
	}
	return false, os.NewSyscallError("flock", lerr)
}
