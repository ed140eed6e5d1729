package ipam

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/store"
)

// v6PrefixSetup is v6Setup in prefix mode: IPv6-only pods whose addresses
// come from each ENI's /80.
func v6PrefixSetup(tb testing.TB, v6 int) (store.File, *fakeCloud, Node, config.Config) {
	tb.Helper()
	db, cloud, node, cfg := v6Setup(tb, v6)
	cfg.EnableIPPrefix = true
	tb.Cleanup(func() { mustCheckDual(tb, db) })
	return db, cloud, node, cfg
}

// nth80 returns the address n after the /80's first (the first is never
// handed out: lowest6).
func nth80(pfx netip.Prefix, n int) netip.Addr {
	a := pfx.Masked().Addr()
	for range n {
		a = a.Next()
	}
	return a
}

// Ensure an IPv6-only prefix-mode ADD on an empty pool creates one ENI
// with one /80 and nothing else (no secondary IPv4, no IPv6 address, no
// /28), that pods get the /80's addresses lowest first as their one IP
// (IP6 zero), and that a released address is the next one handed out.
func TestAllocate_IPv6OnlyPrefix_LowestOfSlash80(t *testing.T) {
	db, cloud, node, cfg := v6PrefixSetup(t, 6)
	var got []Reservation
	for _, cid := range []string{"c1", "c2", "c3"} {
		r, err := Allocate(bg, db, cloud, node, cfg, owner(cid))
		wantErr(t, err, nil)
		wantErr(t, Commit(db, r.Key, HostSide{Veth: "veni" + cid, Ifindex: 9}, nil), nil)
		got = append(got, r)
	}
	e := got[0].ENI.ID
	p80 := cloud.prefixes6Of(e)
	if len(p80) != 1 || p80[0].Bits() != 80 {
		t.Fatalf("eni %s /80s in the cloud: %v, want one", e, p80)
	}
	for i, r := range got {
		if r.ENI.ID != e || r.IP6.IsValid() || r.IP != nth80(p80[0], i+1) {
			t.Fatalf("pod %d: %s / %s on %s, want %s (lowest of %s) as IP on %s", i, r.IP, r.IP6, r.ENI.ID, nth80(p80[0], i+1), p80[0], e)
		}
	}
	if ips, six, p28 := cloud.ipsOf(e), cloud.ipv6sOf(e), cloud.prefixesOf(e); len(ips) > 1 || len(six) > 0 || len(p28) > 0 {
		t.Fatalf("eni %s has secondary IPv4 %v, IPv6 addresses %v, /28s %v: want its /80 alone", e, ips, six, p28)
	}
	if n := cloud.count("CreateENI"); n != 1 {
		t.Fatalf("%d CreateENI for 3 pods, want 1", n)
	}
	for _, m := range []string{"AssignIPv6s", "AssignPrivateIPs", "AssignPrefixes", "AssignIPv6Prefixes"} {
		if n := cloud.count(m); n != 0 {
			t.Fatalf("%d %s calls: the /80 comes with the ENI", n, m)
		}
	}
	wantErr(t, Release(db, got[1].Key), nil)
	mustStates(t, db, got[1], store.IPFree)
	r, err := Allocate(bg, db, cloud, node, cfg, owner("c4"))
	wantErr(t, err, nil)
	if r.IP != got[1].IP {
		t.Fatalf("after releasing %s the next pod got %s, want the lowest free", got[1].IP, r.IP)
	}
	_ = db.View(func(tx *store.ReadTx) error {
		ps, _ := tx.PoolState()
		if ps.Stack != config.IPStackV6 || ps.Mode != config.PoolModePrefix {
			t.Errorf("store stack %q mode %q, want ipv6 prefix", ps.Stack, ps.Mode)
		}
		a, err := tx.Allocation(r.Key)
		if v4, v6 := a.Families(); err != nil || v4.IsValid() || v6 != r.IP {
			t.Errorf("allocation %+v (%v): families %s / %s", a, err, v4, v6)
		}
		return nil
	})
}

// Ensure an ENI carries at most its IPv6 quota of pods (records of its
// /80), that the pod after that gets an address of a new ENI's /80 (one
// more CreateNetworkInterface, no call on the full ENI), and that once
// every ENI is full the next ADD is refused, not squeezed onto a /80.
func TestAllocate_IPv6OnlyPrefix_NewENIWhenFull(t *testing.T) {
	db, cloud, node, cfg := v6PrefixSetup(t, 3)
	var got []Reservation
	for i := range 6 {
		r, err := Allocate(bg, db, cloud, node, cfg, owner(fmt.Sprint("c", i)))
		wantErr(t, err, nil)
		got = append(got, r)
	}
	per := make(map[string]int)
	for _, r := range got {
		per[r.ENI.ID]++
		if !inPrefixes(cloud.prefixes6Of(r.ENI.ID), r.IP) {
			t.Fatalf("%s: %s is not in %s's /80 %v", r.Key, r.IP, r.ENI.ID, cloud.prefixes6Of(r.ENI.ID))
		}
	}
	if len(per) != 2 || cloud.count("CreateENI") != 2 {
		t.Fatalf("pods per eni %v, %d creates: want 3 and 3 on 2 ENIs", per, cloud.count("CreateENI"))
	}
	if m := MaxPods(node, cfg); m != 6 {
		t.Fatalf("max pods %d, want 6 (2 ENIs of quota 3)", m)
	}
	_, err := Allocate(bg, db, cloud, node, cfg, owner("c6"))
	wantErr(t, err, ErrPoolExhausted)
	for id, n := range per {
		if n > 3 {
			t.Fatalf("eni %s carries %d pods, above its IPv6 quota 3", id, n)
		}
	}
	enis, ips := storeView(t, db)
	for id, e := range enis {
		if n := (pool{ips: ips}).slots6Used(e); n > 3 {
			t.Fatalf("eni %s has %d records of its /80, above its quota", id, n)
		}
	}
	if got[3].ENI.ID == got[0].ENI.ID || got[3].IP != nth80(cloud.prefixes6Of(got[3].ENI.ID)[0], 1) {
		t.Fatalf("4th pod %s on %s, want the lowest of a new ENI's /80", got[3].IP, got[3].ENI.ID)
	}
}

// Ensure the warm pool of an IPv6-only prefix node is kept in records of
// the /80s, counted like any IPv6-only pool, within the quota per ENI.
func TestReconcile_IPv6OnlyPrefix_WarmSlots(t *testing.T) {
	db, cloud, node, cfg := v6PrefixSetup(t, 4)
	cfg.MinPoolSize, cfg.MaxPoolSize = 6, 6
	rep, err := Reconcile(bg, db, cloud, node, cfg, time.Now())
	wantErr(t, err, nil)
	if rep.Idle != 6 || rep.Used != 0 {
		t.Fatalf("idle %d used %d, want 6 free", rep.Idle, rep.Used)
	}
	if n := cloud.count("CreateENI"); n != 2 {
		t.Fatalf("%d ENIs for 6 warm pods at 4 per ENI, want 2", n)
	}
	if n := countIPv6Records(t, db); n != 6 {
		t.Fatalf("%d records, want 6", n)
	}
	// A cloud sync keeps them: the cloud lists the /80, not its addresses.
	cfg.CloudSyncInterval = 0
	rep, err = Reconcile(bg, db, cloud, node, cfg, time.Now().Add(time.Minute))
	wantErr(t, err, nil)
	if len(rep.Errors) != 0 || len(rep.LostIPs) != 0 || rep.Idle != 6 {
		t.Fatalf("after sync: %+v", rep)
	}
}

// Ensure an ENI recorded with its /80 but none of its addresses (a crash
// after the create) is filled by the next grow without a cloud call.
func TestRefill_IPv6OnlyPrefix_SlotsAfterCrash(t *testing.T) {
	db, cloud, node, cfg := v6PrefixSetup(t, 4)
	r, err := Allocate(bg, db, cloud, node, cfg, owner("c1"))
	wantErr(t, err, nil)
	wantErr(t, Release(db, r.Key), nil)
	mustUpdate(t, db, func(tx *store.WriteTx) error {
		ips, err := tx.IPs()
		if err != nil {
			return err
		}
		for _, ip := range ips {
			if err := tx.DeleteIP(ip.Addr); err != nil {
				return err
			}
		}
		return nil
	})
	before := cloud.total()
	r2, err := Allocate(bg, db, cloud, node, cfg, owner("c2"))
	wantErr(t, err, nil)
	if r2.ENI.ID != r.ENI.ID || r2.IP != r.IP {
		t.Fatalf("got %s on %s, want %s on %s again", r2.IP, r2.ENI.ID, r.IP, r.ENI.ID)
	}
	if n := cloud.total() - before; n != 0 {
		t.Fatalf("%d cloud calls to record addresses of a /80 the ENI has", n)
	}
}

// Ensure a node whose store was filled in IPv6-only IP mode refuses
// prefix mode and the other way round (PrefixModeImmutable), with no
// cloud call.
func TestAllocate_IPv6OnlyPrefix_ModeSwitchRefused(t *testing.T) {
	for _, from := range []bool{false, true} {
		t.Run(fmt.Sprint("prefix=", from), func(t *testing.T) {
			db, cloud, node, cfg := v6PrefixSetup(t, 6)
			cfg.EnableIPPrefix = config.BoolStr(from)
			_, err := Allocate(bg, db, cloud, node, cfg, owner("c1"))
			wantErr(t, err, nil)
			before := cloud.total()
			other := cfg
			other.EnableIPPrefix = config.BoolStr(!from)
			_, err = Allocate(bg, db, cloud, node, other, owner("c2"))
			wantErr(t, err, ErrModeMismatch)
			if !strings.Contains(err.Error(), "PrefixModeImmutable") {
				t.Fatalf("error does not name it: %v", err)
			}
			if n := cloud.total() - before; n != 0 {
				t.Fatalf("%d cloud calls for a refused mode", n)
			}
		})
	}
}

// Ensure max pods on an IPv6-only prefix node is its secondary ENIs times
// their IPv6 quota (the /80 never bounds it), and zero without IPv6.
func TestMaxPods_IPv6OnlyPrefix(t *testing.T) {
	_, _, node, cfg := v6PrefixSetup(t, 5)
	if got, want := MaxPods(node, cfg), (node.Limits.ENIs-1)*5; got != want {
		t.Fatalf("max pods %d, want %d", got, want)
	}
	node.Limits.IPv6PerENI = 0
	if got := MaxPods(node, cfg); got != 0 {
		t.Fatalf("max pods %d without IPv6, want 0", got)
	}
	if w := StackWarning(node, cfg); !strings.Contains(w, "no IPv6") {
		t.Fatalf("warning %q", w)
	}
}

// Ensure IPv6-only prefix mode works against the simulated region through
// the SDK: the sim takes an ENI created with only a /80, pods' addresses
// lie in their ENI's /80 as the cloud lists it, none is given twice, and a
// cloud sync keeps every record.
func TestAllocate_Sim_IPv6OnlyPrefix(t *testing.T) {
	env := mustTrunkEnv(t)
	env.cfg.EnableENITrunking = false
	env.cfg.IPStack, env.cfg.EnableIPPrefix = config.IPStackV6, true
	t.Cleanup(func() { mustCheckDual(t, env.db) })
	var got []Reservation
	max := MaxPods(env.node, env.cfg)
	if max < 4 {
		t.Fatalf("max pods %d on the sim's instance type", max)
	}
	for i := range max {
		r, err := Allocate(bg, env.db, env.client, env.node, env.cfg, owner(fmt.Sprint("c", i)))
		wantErr(t, err, nil)
		wantErr(t, Commit(env.db, r.Key, HostSide{Veth: fmt.Sprint("veni", i), Ifindex: 10 + i}, nil), nil)
		got = append(got, r)
	}
	byID := make(map[string][]netip.Prefix)
	for _, e := range env.cloud.Snapshot().ENIs {
		byID[e.ID] = e.IPv6Prefixes
		if len(e.IPv6Prefixes) > 0 && (len(e.Prefixes) > 0 || len(e.IPv6s) > 0) {
			t.Fatalf("eni %s: /28s %v, IPv6 %v next to its /80", e.ID, e.Prefixes, e.IPv6s)
		}
	}
	seen := make(map[netip.Addr]bool)
	for _, r := range got {
		if r.IP6.IsValid() || len(byID[r.ENI.ID]) != 1 || !inPrefixes(byID[r.ENI.ID], r.IP) {
			t.Fatalf("%s: %s / %s on %s, whose /80s are %v in the sim", r.Key, r.IP, r.IP6, r.ENI.ID, byID[r.ENI.ID])
		}
		if seen[r.IP] {
			t.Fatalf("%s: %s given twice", r.Key, r.IP)
		}
		seen[r.IP] = true
	}
	_, err := Allocate(bg, env.db, env.client, env.node, env.cfg, owner("one-more"))
	wantErr(t, err, ErrPoolExhausted)
	env.cfg.CloudSyncInterval = 0
	rep, err := Reconcile(bg, env.db, env.client, env.node, env.cfg, time.Now().Add(time.Hour))
	wantErr(t, err, nil)
	if len(rep.Errors) != 0 || len(rep.LostIPs) != 0 {
		t.Fatalf("sync against the sim: %+v", rep)
	}
	for _, r := range got {
		mustStates(t, env.db, r, store.IPBound)
	}
}
