package store

import (
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func TestWriteTx_AcquireLease(t *testing.T) {
	const me, other = 100, 200
	cases := []struct {
		name      string
		holder    int           // 0: no lease yet
		age       time.Duration // how long ago the holder took it, ttl 1m
		otherDead bool
		want      error
	}{
		{name: "free", want: nil},
		{name: "held by live process", holder: other, age: 10 * time.Second, want: ErrLeaseHeld},
		{name: "expired", holder: other, age: 2 * time.Minute, want: nil},
		{name: "holder dead", holder: other, age: 10 * time.Second, otherDead: true, want: nil},
		{name: "renew own", holder: me, age: 30 * time.Second, want: nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			alive := func(pid int) bool { return pid == me || (pid == other && !tc.otherDead) }
			db := mustOpen(t, filepath.Join(t.TempDir(), "veni.db"), Options{PIDAlive: alive, Holder: "test"})
			if tc.holder != 0 {
				mustUpdate(t, db, func(tx *WriteTx) error {
					_, err := tx.AcquireLease(LeaseAllocator, tc.holder, time.Minute, t0.Add(-tc.age))
					return err
				})
			}
			var got Lease
			err := db.Update(func(tx *WriteTx) (err error) {
				got, err = tx.AcquireLease(LeaseAllocator, me, time.Minute, t0)
				return err
			})
			wantErr(t, err, tc.want)
			if tc.want != nil {
				var held *LeaseHeldError
				if !errors.As(err, &held) || held.Lease.HolderPID != other {
					t.Fatalf("error %v does not say who holds the lease", err)
				}
				return
			}
			if got.HolderPID != me || !got.Expires.Equal(t0.Add(time.Minute)) || got.Holder != "test" {
				t.Errorf("lease = %+v", got)
			}
			if tc.holder == me && !got.Acquired.Equal(t0.Add(-tc.age)) {
				t.Errorf("renewal moved Acquired to %s", got.Acquired)
			}
		})
	}
}

// Ensure only the holder releases a lease: a process whose lease was taken
// over must not free its successor's.
func TestWriteTx_ReleaseLease(t *testing.T) {
	db := mustCreateDB(t)
	mustUpdate(t, db, func(tx *WriteTx) error {
		if err := tx.ReleaseLease(LeaseAllocator, 1); err != nil {
			return err
		}
		_, err := tx.AcquireLease(LeaseAllocator, 1, time.Minute, t0)
		return err
	})
	for _, tc := range []struct {
		pid      int
		wantHeld bool
	}{{2, true}, {1, false}} {
		mustUpdate(t, db, func(tx *WriteTx) error { return tx.ReleaseLease(LeaseAllocator, tc.pid) })
		err := db.View(func(tx *ReadTx) error { _, err := tx.Lease(LeaseAllocator); return err })
		if held := err == nil; held != tc.wantHeld {
			t.Errorf("after release by pid %d: held=%v, want %v (%v)", tc.pid, held, tc.wantHeld, err)
		}
	}
}

func TestPIDAlive(t *testing.T) {
	for _, tc := range []struct {
		pid  int
		want bool
	}{{1, true}, {0, false}, {-1, false}, {1 << 30, false}} {
		if got := PIDAlive(tc.pid); got != tc.want {
			t.Errorf("PIDAlive(%d) = %v", tc.pid, got)
		}
	}
}
