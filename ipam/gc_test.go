package ipam

import (
	"testing"
	"time"

	"github.com/veni-cni/veni/store"
)

// Ensure Candidates lists what the liveness test says is dead, and nothing
// is released by listing.
func TestCandidates(t *testing.T) {
	db, cloud := mustStore(t), newFakeCloud()
	cloud.addVSwitch("vsw-a", "10.0.0.0/24", 100)
	mustENI(t, db, cloud, "eni-1", true, 5, time.Now())
	for _, cid := range []string{"a", "b", "c"} {
		mustReserve(t, db, cid, true)
	}
	got, err := Candidates(db, func(a store.Allocation) bool { return a.ContainerID != "b" })
	wantErr(t, err, nil)
	if len(got) != 2 || got[0].ContainerID != "a" || got[1].ContainerID != "c" {
		t.Errorf("candidates %+v", got)
	}
	if _, used := poolCounts(t, db); used != 3 {
		t.Errorf("used = %d after listing, want 3", used)
	}
}

// Ensure ReleaseAllocation frees only the allocation it was given: when the
// key was released and reserved again meanwhile (a new ADD for the same
// attachment), what the caller tore down was not the current holder's, and
// the new reservation stays.
func TestReleaseAllocation_OnlyTheSameOne(t *testing.T) {
	db, cloud := mustStore(t), newFakeCloud()
	cloud.addVSwitch("vsw-a", "10.0.0.0/24", 100)
	mustENI(t, db, cloud, "eni-1", true, 5, time.Now())
	old := mustReserve(t, db, "a", true)
	var seen store.Allocation
	_ = db.View(func(tx *store.ReadTx) (err error) { seen, err = tx.Allocation(old.Key); return err })

	wantErr(t, Release(db, old.Key), nil)
	mustReserve(t, db, "a", false) // the runtime retried the ADD
	ok, err := ReleaseAllocation(db, seen, &store.Event{Reason: "OwnerGone"}, time.Now())
	wantErr(t, err, nil)
	if ok {
		t.Fatal("released the new reservation of the same key")
	}
	if _, used := poolCounts(t, db); used != 1 {
		t.Fatalf("used = %d, want the new reservation", used)
	}

	var cur store.Allocation
	_ = db.View(func(tx *store.ReadTx) (err error) { cur, err = tx.Allocation(old.Key); return err })
	ok, err = ReleaseAllocation(db, cur, &store.Event{Reason: "OwnerGone"}, time.Now())
	wantErr(t, err, nil)
	if !ok {
		t.Fatal("did not release the current allocation")
	}
	var events []store.Event
	_ = db.View(func(tx *store.ReadTx) (err error) { events, err = tx.Events(0, 0); return err })
	if len(events) == 0 || events[len(events)-1].Reason != "OwnerGone" {
		t.Errorf("no OwnerGone event: %+v", events)
	}
}
