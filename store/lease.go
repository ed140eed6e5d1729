package store

import (
	"errors"
	"fmt"
)

// Lease names.
const (
	// LeaseAllocator is held by the one process per node allowed to call
	// the cloud to grow or shrink the node's pool.
	LeaseAllocator = "allocator"
)

// A lease record says, for humans and for waiters' error messages, who holds
// a claim and since when. It is not what decides liveness: the claim (a
// flock, see claim.go) is. The holder writes the record after taking the
// claim and deletes it before releasing the claim; a record left by a
// holder that died is overwritten by the next one.

// Lease returns the lease record called name, or an error wrapping
// ErrNotFound if nobody wrote one or it was released.
func (t *ReadTx) Lease(name string) (Lease, error) {
	return get[Lease](t, bucketLeases, []byte(name), "lease")
}

// PutLease records who holds the lease l.Name. Only the holder of the
// matching claim may call it.
//
// May return an error wrapping ErrInvalid.
func (t *WriteTx) PutLease(l Lease) error {
	if l.Name == "" || l.Holder == "" {
		return fmt.Errorf("put lease %q by %q: %w", l.Name, l.Holder, ErrInvalid)
	}
	return put(t, bucketLeases, []byte(l.Name), l)
}

// DeleteLease removes the record of lease name if it is the one with the
// given Token. A holder whose record was overwritten by a successor (it
// died, or was taken for dead and came back) must not remove the
// successor's.
func (t *WriteTx) DeleteLease(name, token string) error {
	cur, err := t.Lease(name)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if cur.Token != token {
		return nil
	}
	return t.tx.Bucket(bucketLeases).Delete([]byte(name))
}
