package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// fileLock is the flock on "<store>.lock", taken before bbolt opens the
// store: shared by readers, exclusive for a writer. bbolt's own flock polls
// every 50 ms while the file is busy, so a burst of CNI ADDs, each opening
// the store for a few milliseconds, would queue in 50 ms steps; a blocking
// flock wakes the next waiter as soon as the holder closes. With the outer
// lock held, bbolt's flock (shared for ReadOnly, exclusive otherwise) is
// never contended.
//
// Linux flock queues nobody: every release wakes all waiters and they race,
// and a LOCK_SH request is granted while any other LOCK_SH is held, even if
// a LOCK_EX waiter came first. Alone it would let a stream of overlapping
// readers keep a writer out forever, and make a reader behind eight busy
// writers race all of them for every turn. Two OFD byte-range locks on the
// same file (independent of flock on Linux, released with it on close) put
// the turns in order:
//
//   - the writer queue, byte 1: a writer holds it exclusively from before it
//     waits for the flock until it closes, so at most one writer at a time
//     competes with readers; the others wait here.
//   - the gate, byte 0: taken exclusive by the writer, shared by a reader,
//     and released as soon as the flock is held. A writer waiting for the
//     flock holds the gate, so new readers queue behind it while the readers
//     already in finish: readers cannot starve a writer. Readers that queued
//     behind a writer pass the gate as soon as it has the flock, and get the
//     file right after it, before the next writer: a reader waits for at
//     most about one writer's transaction, however many writers queue.
//
// A reader holds the gate only for the instant between two lock calls, so a
// writer finds it free at once.
type fileLock struct {
	f *os.File
}

// lockMode is how an open shares the store.
type lockMode int

const (
	lockRead   lockMode = iota // gate shared, flock shared
	lockWrite                  // writer queue, gate exclusive, flock exclusive
	lockLegacy                 // flock exclusive only, as every open did before readers shared
)

// The byte ranges of the OFD locks. They lie past the end of the (empty)
// lock file, which fcntl allows.
const (
	gateByte  = 0
	queueByte = 1
)

// errLockTimeout is returned by lockFile when the timeout passes first.
var errLockTimeout = errors.New("lock timeout")

// lockFile takes the lock on path in mode, waiting at most timeout
// (negative: not at all). With create, the lock file is created when
// missing; without, it is opened read-only (shared locks need no write
// access), and a missing one is an error wrapping os.ErrNotExist.
//
// May return errLockTimeout.
func lockFile(path string, mode lockMode, create bool, timeout time.Duration) (*fileLock, error) {
	f, err := openLockFile(path, create)
	if err != nil {
		return nil, err
	}
	fd := int(f.Fd())
	if timeout < 0 {
		if err := takeLocks(fd, mode, false); err != nil {
			f.Close()
			if errors.Is(err, errLockTimeout) {
				return nil, err
			}
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		return &fileLock{f: f}, nil
	}
	done := make(chan error, 1)
	go func() { done <- takeLocks(fd, mode, true) }()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case err := <-done:
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		return &fileLock{f: f}, nil
	case <-timer.C:
		// A blocked lock call cannot be cancelled; when it finally
		// succeeds, closing the file releases what nobody wants any more.
		go func() {
			<-done
			f.Close()
		}()
		return nil, errLockTimeout
	}
}

func openLockFile(path string, create bool) (*os.File, error) {
	var f *os.File
	var err error
	if create {
		f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	} else {
		f, err = os.Open(path)
	}
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	return f, nil
}

// takeLocks takes the locks of mode in order: writer queue, gate, flock,
// then leaves the gate. Without block it fails with errLockTimeout instead
// of waiting. On failure the caller closes the file, which drops whatever
// was taken.
func takeLocks(fd int, mode lockMode, block bool) error {
	switch mode {
	case lockLegacy:
		return flock(fd, true, block)
	case lockWrite:
		if err := ofdLock(fd, queueByte, unix.F_WRLCK, block); err != nil {
			return err
		}
	}
	gate := int16(unix.F_RDLCK)
	if mode == lockWrite {
		gate = unix.F_WRLCK
	}
	if err := ofdLock(fd, gateByte, gate, block); err != nil {
		return err
	}
	if err := flock(fd, mode == lockWrite, block); err != nil {
		return err
	}
	if err := ofdLock(fd, gateByte, unix.F_UNLCK, false); err != nil {
		return fmt.Errorf("leave gate: %w", err)
	}
	return nil
}

func flock(fd int, exclusive, block bool) error {
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	if !block {
		how |= unix.LOCK_NB
	}
	err := retryEINTR(func() error { return unix.Flock(fd, how) })
	if errors.Is(err, unix.EWOULDBLOCK) {
		return errLockTimeout
	}
	if err != nil {
		return fmt.Errorf("flock: %w", err)
	}
	return nil
}

// ofdLock sets an open file description lock of typ on byte off.
func ofdLock(fd int, off int64, typ int16, block bool) error {
	cmd := unix.F_OFD_SETLK
	if block {
		cmd = unix.F_OFD_SETLKW
	}
	lk := &unix.Flock_t{Type: typ, Whence: io.SeekStart, Start: off, Len: 1}
	err := retryEINTR(func() error { return unix.FcntlFlock(uintptr(fd), cmd, lk) })
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
		return errLockTimeout
	}
	if err != nil {
		return fmt.Errorf("fcntl lock byte %d: %w", off, err)
	}
	return nil
}

func retryEINTR(fn func() error) error {
	for {
		err := fn()
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// unlock releases the lock.
func (l *fileLock) unlock() error {
	return l.f.Close()
}
