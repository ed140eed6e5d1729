// Command pause is the sandbox process of the pause image crictest builds:
// it holds a pod's namespaces open until it is told to stop. As PID 1 of its
// PID namespace it gets only the signals it handles, so it handles the ones
// containerd stops it with.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}
