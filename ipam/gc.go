package ipam

import (
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/veni-cni/veni/store"
)

// Attachment names one CNI attachment, as the CNI GC verb lists them in
// cni.dev/valid-attachments.
type Attachment struct {
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifname"`
}

// OwnerAlive is the usual liveness test for GC: a reservation is alive while
// the process that made it runs (the CNI ADD between its two transactions);
// a bound allocation is alive while its netns path exists (an allocation
// recorded without one is assumed alive).
func OwnerAlive(a store.Allocation) bool {
	if a.State == store.IPReserved {
		return store.PIDAlive(a.ReservedBy)
	}
	if a.NetNS == "" {
		return true
	}
	_, err := os.Stat(a.NetNS)
	return err == nil
}

// GC releases allocations whose owner is gone: reservations older than
// grace whose owner isAlive says is dead (a CNI ADD that crashed between its
// two transactions), and bound allocations isAlive says are dead. It returns
// the released allocations and logs each as an event.
func GC(db Store, isAlive func(store.Allocation) bool, grace time.Duration, now time.Time) ([]store.Allocation, error) {
	return collect(db, now, "OwnerGone", func(a store.Allocation) bool {
		if a.State == store.IPReserved && now.Sub(a.ReservedAt) < grace {
			return false
		}
		return !isAlive(a)
	})
}

// GCValid implements the CNI GC verb: it releases every allocation not in
// valid, the complete list of attachments the runtime still has.
func GCValid(db Store, valid []Attachment, now time.Time) ([]store.Allocation, error) {
	keep := make(map[store.OwnerKey]bool, len(valid))
	for _, v := range valid {
		keep[store.NewOwnerKey(v.ContainerID, v.IfName)] = true
	}
	return collect(db, now, "NotInValidAttachments", func(a store.Allocation) bool { return !keep[a.Key] })
}

// collect releases, in one transaction, every allocation dead says is dead.
// The liveness test runs inside the transaction, so it must be quick (a
// stat, not an API call).
//
// Nothing dead, nothing written: a bbolt commit writes the file even when
// empty, and the daemon, which runs GC whenever the store file is written,
// would wake itself up forever.
func collect(db Store, now time.Time, reason string, dead func(store.Allocation) bool) ([]store.Allocation, error) {
	var someDead bool
	err := db.View(func(tx *store.ReadTx) error {
		all, err := tx.Allocations()
		someDead = slices.ContainsFunc(all, dead)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("gc allocations: %w", err)
	}
	if !someDead {
		return nil, nil
	}
	var out []store.Allocation
	err = db.Update(func(tx *store.WriteTx) error {
		all, err := tx.Allocations()
		if err != nil {
			return err
		}
		for _, a := range all {
			if !dead(a) {
				continue
			}
			if _, err := release(tx, a.Key, now); err != nil {
				return err
			}
			out = append(out, a)
			obj := "allocation/" + string(a.Key)
			if a.PodName != "" {
				obj = "pod/" + a.PodNamespace + "/" + a.PodName
			}
			_, err := tx.AppendEvent(store.Event{
				Time: now, Level: slog.LevelInfo, Reason: reason, Object: obj,
				Message: fmt.Sprintf("released %s of %s (%s since %s)", a.IP, a.Key, a.State, a.ReservedAt.Format(time.RFC3339)),
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("gc allocations: %w", err)
	}
	return out, nil
}
