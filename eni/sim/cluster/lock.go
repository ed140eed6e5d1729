package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// LockDir holds one lock file per sim name. The server holds its lock for
// its whole life, so a name is provably in use even when its state
// directory is elsewhere: Down must never clean up a live sim of the same
// name that another directory describes.
const LockDir = "/run/veni"

// LockPath is the lock file of sim name.
func LockPath(name string) string { return lockPath(LockDir, name) }

func lockPath(dir, name string) string { return filepath.Join(dir, "sim-"+name+".lock") }

// lockName takes the name's lock without waiting. May return an error
// wrapping ErrRunning when a live server holds it.
func lockName(name string) (*os.File, error) {
	if err := os.MkdirAll(LockDir, 0o755); err != nil {
		return nil, fmt.Errorf("lock dir: %w", err)
	}
	f, err := os.OpenFile(LockPath(name), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open sim lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: a server holds %s", ErrRunning, LockPath(name))
		}
		return nil, fmt.Errorf("lock %s: %w", LockPath(name), err)
	}
	return f, nil
}
