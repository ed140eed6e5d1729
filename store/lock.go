package store

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// fileLock is an exclusive flock on "<store>.lock", taken before bbolt opens
// the store. bbolt's own flock polls every 50 ms while the file is busy, so
// a burst of CNI ADDs, each opening the store for a few milliseconds, would
// queue in 50 ms steps; a blocking flock wakes the next waiter as soon as the
// holder closes. With the outer lock held, bbolt's flock is never contended.
type fileLock struct {
	f *os.File
}

// errLockTimeout is returned by lockFile when the timeout passes first.
var errLockTimeout = errors.New("lock timeout")

// lockFile takes the exclusive lock on path, waiting at most timeout
// (negative: not at all).
func lockFile(path string, timeout time.Duration) (*fileLock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	fd := int(f.Fd())
	if timeout < 0 {
		if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, errLockTimeout
			}
			return nil, fmt.Errorf("flock %s: %w", path, err)
		}
		return &fileLock{f: f}, nil
	}
	done := make(chan error, 1)
	go func() { done <- flockRetryEINTR(fd) }()
	select {
	case err := <-done:
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("flock %s: %w", path, err)
		}
		return &fileLock{f: f}, nil
	case <-time.After(timeout):
		// The blocked flock cannot be cancelled; when it finally succeeds,
		// closing the file releases the lock nobody wants any more.
		go func() {
			<-done
			f.Close()
		}()
		return nil, errLockTimeout
	}
}

func flockRetryEINTR(fd int) error {
	for {
		err := unix.Flock(fd, unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// unlock releases the lock.
func (l *fileLock) unlock() error {
	return l.f.Close()
}
