package store

import (
	"errors"
	"fmt"
	"time"
)

// These errors can occur when opening the store.
var (
	// ErrLocked means another process held the store's flock for longer
	// than Options.Timeout.
	ErrLocked = errors.New("store locked by another process")

	// ErrSchemaTooNew means the file was written by a newer veni whose
	// schema this binary does not know. Migrations only go forward, so the
	// older binary must not touch it.
	ErrSchemaTooNew = errors.New("store schema newer than this binary")

	// ErrDamaged means the store file failed the check Open runs before
	// bbolt maps it: empty, shorter than two pages, no valid meta page, or
	// shorter than its last transaction needs. A writer keeps such a file
	// aside and starts a new store (see Recovery); a reader returns an
	// error wrapping ErrDamaged, a *DamagedError, and leaves the file alone.
	ErrDamaged = errors.New("store file damaged")

	// ErrReadOnly means Update was called on a DB opened with
	// Options.ReadOnly.
	ErrReadOnly = errors.New("store opened read-only")
)

// These errors can occur in transactions.
var (
	// ErrNotFound means the requested record does not exist.
	ErrNotFound = errors.New("not found")

	// ErrInvalid means a record passed to a Put method is malformed
	// (missing key, unknown state, owner set on a free IP, ...).
	ErrInvalid = errors.New("invalid record")

	// ErrInvariant means a write would break a store invariant: an
	// allocation whose IP is not reserved or bound to it, an IP whose ENI
	// does not exist, an IP taken by a second owner.
	ErrInvariant = errors.New("store invariant violated")

	// ErrInUse means a record still in use cannot be deleted: an ENI with
	// reserved or bound IPs, a reserved or bound IP.
	ErrInUse = errors.New("in use")

	// ErrCorrupt means a stored value cannot be decoded, or was written by
	// a newer record version than this binary knows.
	ErrCorrupt = errors.New("corrupt record")

	// ErrLeaseHeld means a lease is held by another live process and has
	// not expired. The returned error is a *LeaseHeldError.
	ErrLeaseHeld = errors.New("lease held")
)

// DamagedError reports why Open found the store file damaged. It matches
// ErrDamaged.
type DamagedError struct {
	Reason string // what the check found, one lowercase phrase
}

func (e *DamagedError) Error() string { return "store file damaged: " + e.Reason }

// Is reports whether target is ErrDamaged.
func (e *DamagedError) Is(target error) bool { return target == ErrDamaged }

// LeaseHeldError reports who holds a lease that AcquireLease could not take.
// It matches ErrLeaseHeld.
type LeaseHeldError struct {
	Lease Lease // the lease as currently held
}

func (e *LeaseHeldError) Error() string {
	return fmt.Sprintf("lease %s held by %s (pid %d) until %s", e.Lease.Name, e.Lease.Holder, e.Lease.HolderPID, e.Lease.Expires.Format(time.RFC3339))
}

// Is reports whether target is ErrLeaseHeld.
func (e *LeaseHeldError) Is(target error) bool { return target == ErrLeaseHeld }
