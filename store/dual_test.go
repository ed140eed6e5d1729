package store

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
)

// reserveDual holds an IPv4 and an IPv6 for key in one transaction, the
// way ipam does.
func reserveDual(tx *WriteTx, v4, v6 netip.Addr, key OwnerKey) error {
	for _, a := range []netip.Addr{v4, v6} {
		ip, err := tx.IP(a)
		if err != nil {
			return err
		}
		ip.State, ip.Owner = IPReserved, key
		if err := tx.PutIP(ip); err != nil {
			return err
		}
	}
	cid, ifn, _ := strings.Cut(string(key), "/")
	return tx.PutAllocation(Allocation{ContainerID: cid, IfName: ifn, IP: v4, IP6: v6, ENIID: "eni-a", State: IPReserved, ReservedAt: t0})
}

func mustSeedDual(tb testing.TB, db *DB) {
	tb.Helper()
	mustSeed(tb, db, "10.0.0.10", "10.0.0.11", "fd00::10", "fd00::11")
	mustUpdate(tb, db, func(tx *WriteTx) error { return tx.PutPoolState(PoolState{Stack: "dual"}) })
}

// Ensure an allocation cannot name an IPv6 it does not hold, in its state,
// on its ENI: a pod never records half a stack.
func TestWriteTx_PutAllocation_IP6MustBeHeld(t *testing.T) {
	db := mustCreateDB(t)
	mustSeedDual(t, db)
	err := db.Update(func(tx *WriteTx) error {
		ip, _ := tx.IP(mustAddr(t, "10.0.0.10"))
		ip.State, ip.Owner = IPReserved, "c1/eth0"
		if err := tx.PutIP(ip); err != nil {
			return err
		}
		// The IPv6 is still free.
		return tx.PutAllocation(Allocation{ContainerID: "c1", IfName: "eth0", IP: ip.Addr, IP6: mustAddr(t, "fd00::10"), ENIID: "eni-a", State: IPReserved, ReservedAt: t0})
	})
	wantErr(t, err, ErrInvariant)
	err = db.Update(func(tx *WriteTx) error {
		return tx.PutAllocation(Allocation{ContainerID: "c1", IfName: "eth0", IP: mustAddr(t, "fd00::10"), IP6: mustAddr(t, "fd00::11"), ENIID: "eni-a", State: IPReserved})
	})
	wantErr(t, err, ErrInvalid) // an IPv6 IP is an IPv6-only pod's: no second IPv6
}

// Ensure an IPv6-only node's allocation holds its IPv6 as IP and passes
// the check, and that an IPv4 allocation on such a node is reported.
func TestCheck_IPv6Only(t *testing.T) {
	db := mustCreateDB(t)
	mustSeed(t, db, "10.0.0.10", "fd00::10")
	mustUpdate(t, db, func(tx *WriteTx) error {
		if err := tx.PutPoolState(PoolState{Stack: "ipv6"}); err != nil {
			return err
		}
		for _, c := range []struct{ addr, owner string }{{"fd00::10", "c1"}, {"10.0.0.10", "c2"}} {
			ip, _ := tx.IP(mustAddr(t, c.addr))
			ip.State, ip.Owner = IPReserved, NewOwnerKey(c.owner, "eth0")
			if err := tx.PutIP(ip); err != nil {
				return err
			}
			if err := tx.PutAllocation(Allocation{ContainerID: c.owner, IfName: "eth0", IP: ip.Addr, ENIID: "eni-a", State: IPReserved, ReservedAt: t0}); err != nil {
				return err
			}
		}
		return nil
	})
	_ = db.View(func(tx *ReadTx) error {
		var got []string
		for _, v := range tx.Check() {
			got = append(got, string(v.Kind)+" "+v.Object)
		}
		if len(got) != 1 || got[0] != "half-stack allocation/c2/eth0" {
			t.Errorf("violations %q, want only the IPv4 allocation c2", got)
		}
		a, _ := tx.Allocation("c1/eth0")
		if v4, v6 := a.Families(); v4.IsValid() || v6 != mustAddr(t, "fd00::10") {
			t.Errorf("families of c1: %s / %s", v4, v6)
		}
		return nil
	})
	// Leave a consistent store for the cleanup check.
	mustUpdate(t, db, func(tx *WriteTx) error {
		ip, _ := tx.IP(mustAddr(t, "10.0.0.10"))
		ip.State, ip.Owner = IPFree, ""
		if err := tx.DeleteAllocation("c2/eth0"); err != nil {
			return err
		}
		return tx.PutIP(ip)
	})
}

// Ensure an IPv6 is never bound to two owners.
func TestWriteTx_PutIP_IPv6NotBoundTwice(t *testing.T) {
	db := mustCreateDB(t)
	mustSeedDual(t, db)
	mustUpdate(t, db, func(tx *WriteTx) error {
		return reserveDual(tx, mustAddr(t, "10.0.0.10"), mustAddr(t, "fd00::10"), "c1/eth0")
	})
	err := db.Update(func(tx *WriteTx) error {
		return reserveDual(tx, mustAddr(t, "10.0.0.11"), mustAddr(t, "fd00::10"), "c2/eth0")
	})
	wantErr(t, err, ErrInvariant)
}

// Ensure Check reports a half stack: a dual-stack allocation without its
// IPv6, an IPv6 held by an owner whose allocation names another, and an
// IPv6 two allocations name.
func TestReadTx_Check_HalfStack(t *testing.T) {
	db := mustOpen(t, t.TempDir()+"/veni.db", Options{})
	mustSeedDual(t, db)
	mustUpdate(t, db, func(tx *WriteTx) error {
		return reserveDual(tx, mustAddr(t, "10.0.0.10"), mustAddr(t, "fd00::10"), "c1/eth0")
	})
	// A record written as if a crash had split the pair: the allocation
	// without its IPv6, the IPv6 still reserved by it.
	rawPut(t, db, bucketAllocs, "c1/eth0", Allocation{Key: "c1/eth0", ContainerID: "c1", IfName: "eth0", IP: mustAddr(t, "10.0.0.10"), ENIID: "eni-a", State: IPReserved, ReservedAt: t0})
	var got []Violation
	_ = db.View(func(tx *ReadTx) error { got = tx.Check(); return nil })
	if len(got) != 2 || got[0].Kind != ViolationHalfStack || got[1].Kind != ViolationHalfStack {
		t.Fatalf("violations %v, want the allocation without ipv6 and the orphan ipv6", got)
	}
	// Repair, as release does: both back to free.
	mustUpdate(t, db, func(tx *WriteTx) error {
		if err := tx.DeleteAllocation("c1/eth0"); err != nil {
			return err
		}
		for _, a := range []string{"10.0.0.10", "fd00::10"} {
			if err := tx.PutIP(IP{Addr: mustAddr(t, a), ENIID: "eni-a", State: IPFree}); err != nil {
				return err
			}
		}
		return nil
	})
	// Two allocations naming one IPv6 (bypassing PutAllocation).
	mustUpdate(t, db, func(tx *WriteTx) error {
		return reserveDual(tx, mustAddr(t, "10.0.0.10"), mustAddr(t, "fd00::10"), "c1/eth0")
	})
	rawPut(t, db, bucketAllocs, "c2/eth0", Allocation{Key: "c2/eth0", ContainerID: "c2", IfName: "eth0", IP: mustAddr(t, "10.0.0.11"), IP6: mustAddr(t, "fd00::10"), ENIID: "eni-a", State: IPReserved, ReservedAt: t0})
	_ = db.View(func(tx *ReadTx) error { got = tx.Check(); return nil })
	kinds := map[ViolationKind]bool{}
	for _, v := range got {
		kinds[v.Kind] = true
	}
	if !kinds[ViolationIPTwoOwners] {
		t.Fatalf("violations %v, want %s", got, ViolationIPTwoOwners)
	}
	mustUpdate(t, db, func(tx *WriteTx) error { return tx.DeleteAllocation("c2/eth0") })
}

// Ensure records from before dual stack (no ip6, no stack) read as IPv4
// and pass Check, and an IPv4 store is not held to dual-stack rules.
func TestAllocation_BeforeDualStack(t *testing.T) {
	old := []byte(`{"key":"c1/eth0","containerID":"c1","ifName":"eth0","ip":"10.0.0.10","eniID":"eni-a","state":"reserved","reservedBy":1,"reservedAt":"2026-07-01T12:00:00Z"}`)
	var a Allocation
	if err := json.Unmarshal(old, &a); err != nil {
		t.Fatal(err)
	}
	if a.IP6.IsValid() || a.validate() != nil {
		t.Fatalf("old record read as %+v (%v)", a, a.validate())
	}
	enc, _ := json.Marshal(Allocation{Key: "c1/eth0", ContainerID: "c1", IfName: "eth0", IP: mustAddr(t, "10.0.0.10"), ENIID: "eni-a", State: IPReserved})
	if strings.Contains(string(enc), "ip6") {
		t.Fatalf("an IPv4 allocation writes ip6: %s", enc)
	}
	db := mustCreateDB(t)
	mustSeed(t, db, "10.0.0.10")
	mustUpdate(t, db, func(tx *WriteTx) error { return reserve(tx, mustAddr(t, "10.0.0.10"), "c1/eth0") })
}
