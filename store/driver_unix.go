//go:build unix

package store

import (
	"errors"
	"syscall"
)

// processExists reports whether the process pid exists, as the kernel
// says even of a process this one may not signal.
func processExists(pid int) bool {
	return !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}
