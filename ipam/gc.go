package ipam

import (
	"errors"
	"fmt"
	"time"

	"github.com/veni-cni/veni/store"
)

// Garbage collection is split in two so that an address is never free in
// the store while a pod may still use it: Candidates reads which
// allocations look dead, the caller (package podnet) takes each one's claim,
// checks again, tears the pod down, and only then ReleaseAllocation frees
// the address, if the allocation is still the one it tore down.

// Candidates returns the allocations dead says are dead, in one read-only
// transaction. dead runs inside the transaction: it must be quick (a stat,
// a non-blocking flock), never a netlink or cloud call.
func Candidates(db Store, dead func(store.Allocation) bool) ([]store.Allocation, error) {
	var out []store.Allocation
	err := db.View(func(tx *store.ReadTx) error {
		all, err := tx.Allocations()
		for _, a := range all {
			if dead(a) {
				out = append(out, a)
			}
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("gc: read allocations: %w", err)
	}
	return out, nil
}

// ReleaseAllocation frees a's address and drops it, if the store still
// holds exactly a (same key, address and reservation); otherwise it
// changes nothing and returns false: someone else released it, or the key
// was reserved again, and what the caller tore down was not the current
// holder's. note, when set, is appended to the event log in the same
// transaction (its Object and Message are filled in when empty).
func ReleaseAllocation(db Store, a store.Allocation, note *store.Event, now time.Time) (bool, error) {
	released := false
	err := db.Update(func(tx *store.WriteTx) error {
		cur, err := tx.Allocation(a.Key)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if cur.IP != a.IP || !cur.ReservedAt.Equal(a.ReservedAt) || cur.ENIID != a.ENIID {
			return nil
		}
		if released, err = release(tx, a.Key, now); err != nil || !released || note == nil {
			return err
		}
		ev := *note
		if ev.Time.IsZero() {
			ev.Time = now
		}
		if ev.Object == "" {
			ev.Object = allocationObject(cur)
		}
		if ev.Message == "" {
			ev.Message = fmt.Sprintf("released %s of %s (%s since %s)", cur.IP, cur.Key, cur.State, cur.ReservedAt.Format(time.RFC3339))
		}
		_, err = tx.AppendEvent(ev)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("release %s of %s: %w", a.IP, a.Key, err)
	}
	return released, nil
}

// allocationObject names an allocation in events: its pod when known.
func allocationObject(a store.Allocation) string {
	if a.PodName != "" {
		return "pod/" + a.PodNamespace + "/" + a.PodName
	}
	return "allocation/" + string(a.Key)
}
