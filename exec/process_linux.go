package exec

import "syscall"

// dieWithParent returns the attributes of a task runner's process that
// kill it when dagger dies, even by SIGKILL, rather than leave it running
// a task whose result no one will read. Linux sends the signal when the
// thread that started the child ends, which in Go is when the process
// does, unless a goroutine locked to that thread exits: a runner whose
// output cannot be written stops too (see runTask).
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
