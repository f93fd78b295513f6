//go:build !unix

package builtins

import (
	"os"
	"syscall"
)

// processGroup returns the attributes of a program exec starts: none,
// since this system has no process groups to signal.
func processGroup() *syscall.SysProcAttr { return nil }

// signalGroup ends the program pid, whatever sig: this system can
// neither ask a program to stop nor reach the processes it started.
func signalGroup(pid int, _ syscall.Signal) {
	if p, err := os.FindProcess(pid); err == nil {
		_ = p.Kill()
	}
}
