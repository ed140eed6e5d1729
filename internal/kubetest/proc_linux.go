package kubetest

import "syscall"

// sysProcAttr puts a server in its own process group (stop signals the
// group) and kills it if the test binary dies first.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
