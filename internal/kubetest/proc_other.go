//go:build !linux

package kubetest

import "syscall"

// sysProcAttr puts a server in its own process group (stop signals the
// group).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
