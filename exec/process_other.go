//go:build !linux

package exec

import "syscall"

// dieWithParent returns nil: only Linux kills a child when its parent
// dies.
func dieWithParent() *syscall.SysProcAttr { return nil }
