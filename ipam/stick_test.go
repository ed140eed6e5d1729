package ipam

import (
	"testing"
	"time"

	"github.com/veni-cni/veni/store"
)

// Ensure IP stick: a released address of a pod that asked for it is
// kept for that pod (namespace/name) and given back to its next
// incarnation, whatever its container; no other pod gets it meanwhile,
// it does not count as free for the pool, and it is open to all once its
// time is up.
func TestReserve_StickyAddressComesBack(t *testing.T) {
	db, cloud := mustStore(t), newFakeCloud()
	cloud.addVSwitch("vsw-a", "10.0.0.0/24", 100)
	mustENI(t, db, cloud, "eni-1", true, 2, time.Now().Add(-time.Hour))

	web := Owner{ContainerID: "c1", IfName: "eth0", PodNamespace: "shop", PodName: "web-0", StickFor: time.Minute}
	first, err := Reserve(db, web)
	wantErr(t, err, nil)
	wantErr(t, Commit(db, first.Key, HostSide{}, nil), nil)
	wantErr(t, Release(db, first.Key), nil)
	if idle, _ := poolCounts(t, db); idle != 1 {
		t.Errorf("the kept address counts as free: idle %d, want 1", idle)
	}

	// Another pod gets the other address, then finds none: the kept one
	// is not its.
	other := mustReserve(t, db, "c2", true)
	if other.IP == first.IP {
		t.Fatalf("another pod got %s, kept for shop/web-0", first.IP)
	}
	_, err = Reserve(db, owner("c3"))
	wantErr(t, err, ErrPoolEmpty)

	// The pod again, with a new container: its address.
	web.ContainerID = "c4"
	again, err := Reserve(db, web)
	wantErr(t, err, nil)
	if again.IP != first.IP {
		t.Fatalf("recreated shop/web-0 got %s, want its %s", again.IP, first.IP)
	}
	wantErr(t, Commit(db, again.Key, HostSide{}, nil), nil)

	// Released again; once its time is up anyone may have it.
	wantErr(t, Release(db, again.Key), nil)
	mustUpdate(t, db, func(tx *store.WriteTx) error {
		ip, err := tx.IP(first.IP)
		if err != nil {
			return err
		}
		if ip.StickTo != "shop/web-0" || ip.StickUntil.Before(time.Now().Add(50*time.Second)) {
			t.Errorf("released address: kept for %q until %s", ip.StickTo, ip.StickUntil)
		}
		ip.StickUntil = time.Now().Add(-time.Second)
		return tx.PutIP(ip)
	})
	late := mustReserve(t, db, "c5", true)
	if late.IP != first.IP {
		t.Fatalf("after its time another pod got %s, want the expired %s", late.IP, first.IP)
	}
	_ = db.View(func(tx *store.ReadTx) error {
		ip, err := tx.IP(late.IP)
		if err != nil || ip.StickTo != "" || !ip.StickUntil.IsZero() {
			t.Errorf("taken address still says kept: %+v, %v", ip, err)
		}
		return nil
	})
}

// Ensure a pod that did not ask keeps nothing: its address is free for
// the next pod at once.
func TestRelease_NotStickyFreesAtOnce(t *testing.T) {
	db, cloud := mustStore(t), newFakeCloud()
	cloud.addVSwitch("vsw-a", "10.0.0.0/24", 100)
	mustENI(t, db, cloud, "eni-1", true, 1, time.Now())
	a := mustReserve(t, db, "c1", true)
	wantErr(t, Release(db, a.Key), nil)
	if b := mustReserve(t, db, "c2", true); b.IP != a.IP {
		t.Fatalf("got %s, want the released %s", b.IP, a.IP)
	}
}
