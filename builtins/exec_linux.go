package builtins

import "syscall"

// processGroup returns the attributes of a program exec starts: the
// leader of a process group of its own, which exec signals as a whole,
// killed if the runner dies first.
func processGroup() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// signalGroup sends sig to the process group pgid. A group already gone
// is no error: it was done.
func signalGroup(pgid int, sig syscall.Signal) { _ = syscall.Kill(-pgid, sig) }
