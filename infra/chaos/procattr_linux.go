package main

import "syscall"

// procAttr puts the runner in its own process group (a Ctrl-C meant for
// the harness does not stop it behind the harness's back) and has the
// kernel kill it if the harness dies, so no runner outlives a run.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
