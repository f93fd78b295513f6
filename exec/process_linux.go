package exec

import "syscall"

// dieWithParent returns the attributes of a task runner's process that
// kill it when dagger dies, even by SIGKILL, rather than leave it running
// a task whose result no one will read.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
