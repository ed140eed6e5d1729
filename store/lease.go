package store

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// Lease names.
const (
	// LeaseAllocator is held by the one process per node allowed to call
	// the cloud to grow or shrink the node's pool.
	LeaseAllocator = "allocator"
)

// PIDAlive reports whether a process with this pid exists. A reused pid
// looks alive; the lease's expiry bounds how long that can block others.
func PIDAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	return err == nil
}

// Lease returns the lease called name, or an error wrapping ErrNotFound if
// nobody ever took it or it was released.
func (t *ReadTx) Lease(name string) (Lease, error) {
	return get[Lease](t, bucketLeases, []byte(name), "lease")
}

// AcquireLease takes the lease called name for pid until now+ttl. It
// succeeds when the lease is free, expired, held by a process that no longer
// exists (Options.PIDAlive), or already held by pid (which renews it).
//
// May return a *LeaseHeldError, which wraps ErrLeaseHeld.
func (t *WriteTx) AcquireLease(name string, pid int, ttl time.Duration, now time.Time) (Lease, error) {
	if name == "" || pid <= 0 || ttl <= 0 {
		return Lease{}, fmt.Errorf("acquire lease %q for pid %d ttl %s: %w", name, pid, ttl, ErrInvalid)
	}
	cur, err := t.Lease(name)
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return Lease{}, err
	case cur.HolderPID != pid && now.Before(cur.Expires) && t.db.opts.PIDAlive(cur.HolderPID):
		return Lease{}, &LeaseHeldError{Lease: cur}
	}
	l := Lease{Name: name, HolderPID: pid, Holder: t.db.opts.Holder, Acquired: now, Expires: now.Add(ttl)}
	if err == nil && cur.HolderPID == pid {
		l.Acquired = cur.Acquired
	}
	if err := put(t, bucketLeases, []byte(name), l); err != nil {
		return Lease{}, err
	}
	return l, nil
}

// ReleaseLease gives up the lease called name if pid holds it. Releasing a
// lease held by someone else, or by nobody, does nothing: a holder whose
// lease expired and was taken over must not free the new holder's lease.
func (t *WriteTx) ReleaseLease(name string, pid int) error {
	cur, err := t.Lease(name)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if cur.HolderPID != pid {
		return nil
	}
	return t.tx.Bucket(bucketLeases).Delete([]byte(name))
}
