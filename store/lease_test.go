package store

import (
	"testing"
	"time"
)

// Ensure only the writer of a lease record deletes it: a holder taken for
// dead whose record a successor overwrote must not remove the successor's.
func TestWriteTx_DeleteLease_OnlyOwnToken(t *testing.T) {
	db := mustCreateDB(t)
	mustUpdate(t, db, func(tx *WriteTx) error {
		return tx.PutLease(Lease{Name: LeaseAllocator, Token: "second", Holder: "veni daemon", HolderPID: 7, Acquired: t0, Expires: t0.Add(time.Minute)})
	})
	for _, tc := range []struct {
		token    string
		wantHeld bool
	}{{"first", true}, {"second", false}, {"second", false}} {
		mustUpdate(t, db, func(tx *WriteTx) error { return tx.DeleteLease(LeaseAllocator, tc.token) })
		err := db.View(func(tx *ReadTx) error { _, err := tx.Lease(LeaseAllocator); return err })
		if held := err == nil; held != tc.wantHeld {
			t.Errorf("after delete with token %q: held=%v, want %v (%v)", tc.token, held, tc.wantHeld, err)
		}
	}
}

func TestWriteTx_PutLease_Invalid(t *testing.T) {
	db := mustCreateDB(t)
	err := db.Update(func(tx *WriteTx) error { return tx.PutLease(Lease{Name: LeaseAllocator}) })
	wantErr(t, err, ErrInvalid)
}
