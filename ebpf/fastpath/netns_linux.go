package fastpath

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// inCallerNetNS runs fn on a new goroutine in the network namespace of the
// calling thread and returns a channel with its result. Interface indexes
// are resolved in the namespace of the thread that makes the system call,
// and a new goroutine may run on any thread: fn's thread is switched to the
// caller's namespace first (the caller may itself be inside a netns.Do).
// A thread that cannot be switched back is not returned to the scheduler.
func inCallerNetNS(fn func() error) <-chan error {
	out := make(chan error, 1)
	caller, err := netns.Get()
	if err != nil {
		out <- fmt.Errorf("current netns: %w", err)
		return out
	}
	go func() {
		defer caller.Close()
		runtime.LockOSThread()
		own, err := netns.Get()
		if err != nil {
			out <- fmt.Errorf("thread netns: %w", err)
			return // the thread dies locked
		}
		defer own.Close()
		if own.Equal(caller) {
			runtime.UnlockOSThread()
			out <- fn()
			return
		}
		if err := netns.Set(caller); err != nil {
			out <- fmt.Errorf("enter caller netns: %w", err)
			return
		}
		err = fn()
		if rerr := netns.Set(own); rerr == nil {
			runtime.UnlockOSThread()
		}
		out <- err
	}()
	return out
}
