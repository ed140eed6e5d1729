package store

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// Ensure records round-trip and deletes of unknown keys are no-ops.
func TestWriteTx_CRUD(t *testing.T) {
	db := mustCreateDB(t)
	mustSeed(t, db, "10.0.0.11", "10.0.0.10")
	a10 := netip.MustParseAddr("10.0.0.10")
	key := NewOwnerKey("c1", "eth0")
	mustUpdate(t, db, func(tx *WriteTx) error { return reserve(tx, a10, key) })

	err := db.View(func(tx *ReadTx) error {
		e, err := tx.ENI("eni-a")
		if err != nil {
			return err
		}
		if want := testENI("eni-a", "10.0.0.2"); e.ID != want.ID || e.PrimaryIP != want.PrimaryIP || e.VSwitchCIDR != want.VSwitchCIDR || !e.CreatedAt.Equal(want.CreatedAt) {
			t.Errorf("ENI = %+v, want %+v", e, want)
		}
		ips, err := tx.IPs()
		if err != nil {
			return err
		}
		if len(ips) != 2 || ips[0].Addr != a10 || ips[0].State != IPReserved || ips[0].Owner != key || ips[1].State != IPFree {
			t.Errorf("IPs = %+v", ips)
		}
		a, err := tx.AllocationByIP(a10)
		if err != nil {
			return err
		}
		if a.Key != key || a.ContainerID != "c1" || a.IfName != "eth0" {
			t.Errorf("AllocationByIP = %+v", a)
		}
		_, err = tx.AllocationByIP(netip.MustParseAddr("10.0.0.11"))
		wantErr(t, err, ErrNotFound)
		_, err = tx.Allocation("nope/eth0")
		wantErr(t, err, ErrNotFound)
		_, err = tx.IP(netip.MustParseAddr("10.9.9.9"))
		wantErr(t, err, ErrNotFound)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	mustUpdate(t, db, func(tx *WriteTx) error {
		if err := tx.DeleteAllocation(key); err != nil {
			return err
		}
		if err := tx.PutIP(IP{Addr: a10, ENIID: "eni-a", State: IPFree, FreeSince: t0}); err != nil {
			return err
		}
		for _, del := range []func() error{
			func() error { return tx.DeleteAllocation("unknown/eth0") },
			func() error { return tx.DeleteIP(netip.MustParseAddr("10.9.9.9")) },
			func() error { return tx.DeleteENI("eni-unknown") },
		} {
			if err := del(); err != nil {
				return err
			}
		}
		return tx.DeleteENI("eni-a")
	})
	err = db.View(func(tx *ReadTx) error {
		ips, err := tx.IPs()
		if len(ips) != 0 {
			t.Errorf("DeleteENI left IPs %+v", ips)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Ensure the write accessors refuse writes that break an invariant.
func TestWriteTx_Put_Invariants(t *testing.T) {
	a10 := netip.MustParseAddr("10.0.0.10")
	cases := []struct {
		name string
		op   func(tx *WriteTx) error
		want error
	}{
		{"eni without id", func(tx *WriteTx) error { return tx.PutENI(ENI{State: ENIReady}) }, ErrInvalid},
		{"eni bad state", func(tx *WriteTx) error { e := testENI("eni-b", "10.0.0.3"); e.State = "up"; return tx.PutENI(e) }, ErrInvalid},
		{"ip on unknown eni", func(tx *WriteTx) error {
			return tx.PutIP(IP{Addr: netip.MustParseAddr("10.0.0.20"), ENIID: "eni-x", State: IPFree})
		}, ErrInvariant},
		{"free ip with owner", func(tx *WriteTx) error {
			return tx.PutIP(IP{Addr: a10, ENIID: "eni-a", State: IPFree, Owner: "c/eth0"})
		}, ErrInvalid},
		{"bound ip without owner", func(tx *WriteTx) error { return tx.PutIP(IP{Addr: a10, ENIID: "eni-a", State: IPBound}) }, ErrInvalid},
		{"ip taken by a second owner", func(tx *WriteTx) error {
			return tx.PutIP(IP{Addr: a10, ENIID: "eni-a", State: IPReserved, Owner: "c2/eth0"})
		}, ErrInvariant},
		{"held ip moved to another eni", func(tx *WriteTx) error {
			if err := tx.PutENI(testENI("eni-b", "10.0.0.3")); err != nil {
				return err
			}
			return tx.PutIP(IP{Addr: a10, ENIID: "eni-b", State: IPReserved, Owner: "c1/eth0"})
		}, ErrInvariant},
		{"allocation on free ip", func(tx *WriteTx) error {
			return tx.PutAllocation(Allocation{ContainerID: "c3", IfName: "eth0", IP: netip.MustParseAddr("10.0.0.11"), ENIID: "eni-a", State: IPReserved})
		}, ErrInvariant},
		{"allocation in other state than its ip", func(tx *WriteTx) error {
			return tx.PutAllocation(Allocation{ContainerID: "c1", IfName: "eth0", IP: a10, ENIID: "eni-a", State: IPBound})
		}, ErrInvariant},
		{"allocation on unknown ip", func(tx *WriteTx) error {
			return tx.PutAllocation(Allocation{ContainerID: "c4", IfName: "eth0", IP: netip.MustParseAddr("10.0.0.99"), ENIID: "eni-a", State: IPReserved})
		}, ErrInvariant},
		{"allocation key mismatch", func(tx *WriteTx) error {
			return tx.PutAllocation(Allocation{Key: "x/eth0", ContainerID: "c1", IfName: "eth0", IP: a10, ENIID: "eni-a", State: IPReserved})
		}, ErrInvalid},
		{"allocation free state", func(tx *WriteTx) error {
			return tx.PutAllocation(Allocation{ContainerID: "c1", IfName: "eth0", IP: a10, ENIID: "eni-a", State: IPFree})
		}, ErrInvalid},
		{"delete reserved ip", func(tx *WriteTx) error { return tx.DeleteIP(a10) }, ErrInUse},
		{"delete eni in use", func(tx *WriteTx) error { return tx.DeleteENI("eni-a") }, ErrInUse},
		{"same owner re-put", func(tx *WriteTx) error {
			return tx.PutIP(IP{Addr: a10, ENIID: "eni-a", State: IPReserved, Owner: "c1/eth0"})
		}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := mustCreateDB(t)
			mustSeed(t, db, "10.0.0.10", "10.0.0.11")
			mustUpdate(t, db, func(tx *WriteTx) error { return reserve(tx, a10, "c1/eth0") })
			wantErr(t, db.Update(tc.op), tc.want)
		})
	}
}

// Ensure returned records are copies: changing them changes nothing stored.
func TestReadTx_ReturnsCopies(t *testing.T) {
	db := mustCreateDB(t)
	mustUpdate(t, db, func(tx *WriteTx) error {
		e := testENI("eni-a", "10.0.0.2")
		e.SecurityGroupIDs = []string{"sg-1"}
		return tx.PutENI(e)
	})
	var first ENI
	_ = db.View(func(tx *ReadTx) (err error) { first, err = tx.ENI("eni-a"); return err })
	first.SecurityGroupIDs[0] = "sg-changed"
	first.State = ENIDraining
	_ = db.View(func(tx *ReadTx) error {
		e, err := tx.ENI("eni-a")
		if err != nil || e.State != ENIReady || !slices.Equal(e.SecurityGroupIDs, []string{"sg-1"}) {
			t.Errorf("stored ENI changed through a returned copy: %+v, %v", e, err)
		}
		return nil
	})
}

// Ensure the pool state round-trips and back-offs expire.
func TestPoolState_Backoff(t *testing.T) {
	db := mustCreateDB(t)
	_ = db.View(func(tx *ReadTx) error {
		p, err := tx.PoolState()
		if err != nil || p.MinIdle != 0 || len(p.Backoffs) != 0 {
			t.Errorf("empty store PoolState = %+v, %v", p, err)
		}
		return nil
	})
	mustUpdate(t, db, func(tx *WriteTx) error {
		p := PoolState{MinIdle: 2, MaxIdle: 5}
		p.SetBackoff(VSwitchScope("vsw-a"), Backoff{Since: t0, Until: t0.Add(10 * time.Minute), Reason: "no ip"})
		p.SetBackoff(ScopeENIQuota, Backoff{Since: t0, Until: t0.Add(time.Minute), Reason: "quota"})
		return tx.PutPoolState(p)
	})
	var p PoolState
	_ = db.View(func(tx *ReadTx) (err error) { p, err = tx.PoolState(); return err })
	cases := []struct {
		scope string
		at    time.Duration
		want  bool
	}{
		{VSwitchScope("vsw-a"), 5 * time.Minute, true},
		{VSwitchScope("vsw-a"), 10 * time.Minute, false},
		{ScopeENIQuota, 30 * time.Second, true},
		{ScopeENIQuota, 2 * time.Minute, false},
		{VSwitchScope("vsw-b"), 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.scope+"@"+tc.at.String(), func(t *testing.T) {
			if _, got := p.ActiveBackoff(tc.scope, t0.Add(tc.at)); got != tc.want {
				t.Errorf("ActiveBackoff = %v, want %v", got, tc.want)
			}
		})
	}
	p.PruneBackoffs(t0.Add(2 * time.Minute))
	if _, ok := p.Backoffs[ScopeENIQuota]; ok || len(p.Backoffs) != 1 {
		t.Errorf("PruneBackoffs left %+v", p.Backoffs)
	}
}

// Ensure every ENI gets its own routing table for life: assigned once,
// kept on rewrite, reused only after the ENI is gone, and never shared.
func TestWriteTx_PutENI_Table(t *testing.T) {
	db := mustCreateDB(t)
	table := func(id string) int {
		var e ENI
		_ = db.View(func(tx *ReadTx) (err error) { e, err = tx.ENI(id); return err })
		return e.Table
	}
	mustUpdate(t, db, func(tx *WriteTx) error {
		for i, id := range []string{"eni-a", "eni-b", "eni-c"} {
			if err := tx.PutENI(testENI(id, fmt.Sprintf("10.0.0.%d", 2+i))); err != nil {
				return err
			}
		}
		return nil
	})
	if a, b, c := table("eni-a"), table("eni-b"), table("eni-c"); a != FirstENITable || b != a+1 || c != a+2 {
		t.Fatalf("tables %d %d %d", a, b, c)
	}
	mustUpdate(t, db, func(tx *WriteTx) error {
		e := testENI("eni-b", "10.0.0.3")
		e.State = ENIDraining // a rewrite without a table keeps it
		return tx.PutENI(e)
	})
	if got := table("eni-b"); got != FirstENITable+1 {
		t.Fatalf("rewrite moved eni-b to table %d", got)
	}
	mustUpdate(t, db, func(tx *WriteTx) error { return tx.DeleteENI("eni-a") })
	mustUpdate(t, db, func(tx *WriteTx) error { return tx.PutENI(testENI("eni-d", "10.0.0.5")) })
	if got := table("eni-d"); got != FirstENITable {
		t.Fatalf("eni-d got table %d, want the freed %d", got, FirstENITable)
	}
	err := db.Update(func(tx *WriteTx) error {
		e := testENI("eni-e", "10.0.0.6")
		e.Table = FirstENITable + 2
		return tx.PutENI(e)
	})
	wantErr(t, err, ErrInvariant)
}
