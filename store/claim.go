package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Claims are how veni's processes know that another one is alive and busy
// with something, without trusting a PID. A claim is an exclusive flock on a
// file in the claims directory beside the store. The kernel releases it when
// its holder exits, however it dies, and every process that sees the
// directory sees the lock: the CNI plugin on the host, the daemon in a
// DaemonSet's own PID namespace and the operator's CLI alike. A PID, by
// contrast, means nothing across PID namespaces, and a reused one looks
// alive.
//
// Two kinds exist: the node's allocator (who may call the cloud to grow or
// shrink the pool) and one per attachment (whoever is adding, deleting or
// collecting that attachment: ADD holds it from before its reservation to
// after its commit, DEL and GC while they tear down and release). A
// reservation whose attachment claim nobody holds belongs to an ADD that
// died.
//
// Attachment claim files are removed by their holder on Release, so they do
// not pile up; a waiter that locked a file someone removed meanwhile notices
// (the path no longer names its inode) and tries again.

// ErrClaimed means another live process holds the claim.
var ErrClaimed = errors.New("claimed by another process")

// claimPoll is how often WaitClaim retries a busy claim. flock cannot be
// cancelled, so waiting is a loop of non-blocking attempts.
const claimPoll = 5 * time.Millisecond

// ClaimsDir is the directory holding the claims of the store at storePath.
func ClaimsDir(storePath string) string { return storePath + ".claims" }

// AllocatorClaim is the path of the node's allocator claim in claimsDir.
func AllocatorClaim(claimsDir string) string {
	return filepath.Join(claimsDir, "allocator")
}

// OwnerClaim is the path of the claim on one attachment in claimsDir. The
// name is a hash of the key: container ids are long and ifnames may hold
// any character but "/".
func OwnerClaim(claimsDir string, key OwnerKey) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(claimsDir, "owner-"+hex.EncodeToString(sum[:16]))
}

// Claim is a held claim. Release it when done; if the process dies first,
// the kernel does.
type Claim struct {
	f      *os.File
	path   string
	remove bool // delete the file on Release (attachment claims)
}

// TryClaim takes the claim at path if nobody holds it, creating the file
// (and the claims directory, 0700) as needed. remove says whether Release
// deletes the file.
//
// May return an error wrapping ErrClaimed.
func TryClaim(path string, remove bool) (*Claim, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("claim %s: %w", path, err)
	}
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("claim %s: %w", path, err)
		}
		if err := flockNB(f, unix.LOCK_EX); err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, fmt.Errorf("claim %s: %w", filepath.Base(path), ErrClaimed)
			}
			return nil, fmt.Errorf("claim %s: flock: %w", path, err)
		}
		// The previous holder may have removed the file between our open
		// and our lock: then we hold a lock on an inode nobody else can
		// find, and must take the one the path names now.
		if sameFile(f, path) {
			return &Claim{f: f, path: path, remove: remove}, nil
		}
		f.Close()
	}
}

// WaitClaim takes the claim at path, waiting until it is free or ctx ends.
//
// May return an error wrapping ErrClaimed (with ctx's error) when ctx ends
// first.
func WaitClaim(ctx context.Context, path string, remove bool) (*Claim, error) {
	t := time.NewTicker(claimPoll)
	defer t.Stop()
	for {
		c, err := TryClaim(path, remove)
		if !errors.Is(err, ErrClaimed) {
			return c, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (%w)", err, ctx.Err())
		case <-t.C:
		}
	}
}

// Claimed reports whether a live process holds the claim at path. It takes
// a shared lock for an instant, so it never blocks and never makes a
// holder's TryClaim fail unless both race within that instant (the loser
// sees ErrClaimed and waits, as for any held claim).
func Claimed(path string) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("probe claim %s: %w", path, err)
	}
	defer f.Close()
	err = flockNB(f, unix.LOCK_SH)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("probe claim %s: %w", path, err)
	}
	return false, nil
}

// Release gives the claim up, removing its file first when it was taken
// with remove (while still locked, so no one can take the old inode after
// us). Releasing twice does nothing.
func (c *Claim) Release() error {
	if c == nil || c.f == nil {
		return nil
	}
	var err error
	if c.remove {
		if rerr := os.Remove(c.path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = fmt.Errorf("remove claim %s: %w", c.path, rerr)
		}
	}
	if cerr := c.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("release claim %s: %w", c.path, cerr)
	}
	c.f = nil
	return err
}

func flockNB(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// sameFile reports whether path still names f's inode.
func sameFile(f *os.File, path string) bool {
	var a, b unix.Stat_t
	if unix.Fstat(int(f.Fd()), &a) != nil || unix.Stat(path, &b) != nil {
		return false
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}

// ClaimsDir is where the claims of this store live.
func (f File) ClaimsDir() string { return ClaimsDir(f.Path) }

// ClaimsDir is where the claims of this store live.
func (db *DB) ClaimsDir() string { return ClaimsDir(db.path) }
