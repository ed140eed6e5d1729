package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/eni"
	"github.com/veni-cni/veni/store"
)

// dualPrefixSetup is dualSetup in prefix mode.
func dualPrefixSetup(tb testing.TB, v6 int) (store.File, *fakeCloud, Node, config.Config) {
	tb.Helper()
	db, cloud, node, cfg := dualSetup(tb, v6)
	cfg.EnableIPPrefix = true
	tb.Cleanup(func() { mustCheckDual(tb, db) })
	return db, cloud, node, cfg
}

// countIPv6Records counts the store's IPv6 records.
func countIPv6Records(tb testing.TB, db Store) int {
	tb.Helper()
	_, ips := storeView(tb, db)
	n := 0
	for _, ip := range ips {
		if ip.Addr.Is6() {
			n++
		}
	}
	return n
}

// Ensure a dual-stack prefix-mode ADD gets an IPv4 of a /28 and an IPv6 of
// a /80 delegated to the same ENI, that the ENI comes with both in its one
// create (no per-address IPv6 call), that the /80 counts as one IPv6 slot,
// and that IPv6 records are made one per pod, lowest address first.
func TestAllocate_DualPrefix_PairFromPrefixes(t *testing.T) {
	db, cloud, node, cfg := dualPrefixSetup(t, 1) // one IPv6 slot: the /80 must fit in it
	seen := make(map[netip.Addr]bool)
	var got []Reservation
	for i := range 20 {
		r, err := Allocate(bg, db, cloud, node, cfg, owner(fmt.Sprint("c", i)))
		wantErr(t, err, nil)
		if !r.IP.Is4() || !r.IP6.Is6() {
			t.Fatalf("pod %d: %s / %s, want an IPv4 and an IPv6", i, r.IP, r.IP6)
		}
		if seen[r.IP] || seen[r.IP6] {
			t.Fatalf("pod %d got %s / %s, already given", i, r.IP, r.IP6)
		}
		seen[r.IP], seen[r.IP6] = true, true
		p4, p6 := cloud.prefixesOf(r.ENI.ID), cloud.prefixes6Of(r.ENI.ID)
		if !inPrefixes(p4, r.IP) || !inPrefixes(p6, r.IP6) {
			t.Fatalf("pod %d: %s / %s not in eni %s's prefixes %v / %v", i, r.IP, r.IP6, r.ENI.ID, p4, p6)
		}
		if len(p6) != 1 || !testCIDR6.Contains(p6[0].Addr()) || p6[0].Bits() != eni.Prefix6Bits {
			t.Fatalf("eni %s has /80s %v, want one of %s", r.ENI.ID, p6, testCIDR6)
		}
		// Lowest free first, the /80's first address skipped.
		want := p6[0].Addr()
		for range i + 1 {
			want = want.Next()
		}
		if r.IP6 != want {
			t.Errorf("pod %d got %s, want the /80's lowest free %s", i, r.IP6, want)
		}
		got = append(got, r)
	}
	for _, m := range []string{"AssignIPv6s", "AssignPrivateIPs", "AssignIPv6Prefixes"} {
		if n := cloud.count(m); n != 0 {
			t.Errorf("%s called %d times; the create brings the /80", m, n)
		}
	}
	if n := cloud.count("CreateENI"); n != 1 {
		t.Errorf("CreateENI called %d times for 20 pods (calls %v)", n, cloud.calls)
	}
	if n := countIPv6Records(t, db); n != 20 {
		t.Errorf("store has %d IPv6 records for 20 pods, want 20 (made as handed out)", n)
	}
	// Release frees both; the freed IPv6 is the lowest free again and is
	// handed out before a new record is made.
	wantErr(t, Release(db, got[3].Key), nil)
	mustStates(t, db, got[3], store.IPFree)
	r, err := Reserve(db, owner("again"))
	wantErr(t, err, nil)
	if r.IP6 != got[3].IP6 {
		t.Errorf("after a release got %s, want the freed %s", r.IP6, got[3].IP6)
	}
	if n := countIPv6Records(t, db); n != 20 {
		t.Errorf("store has %d IPv6 records for 20 pods after reuse, want 20", n)
	}
}

// Ensure the pool counts a /80 ENI's pods by its free IPv4, and an ENI
// without a /80 offers none: no half stack, even with free IPv4.
func TestReserve_DualPrefix_NoHalfStack(t *testing.T) {
	db, cloud, _, _ := dualPrefixSetup(t, 6)
	pfx4 := netip.MustParsePrefix("10.0.0.16/28")
	pfx6 := netip.MustParsePrefix("fd00:1:0:0:7::/80")
	cloud.addENI(eni.ENI{ID: "eni-1", VSwitchID: "vsw-a"})
	mustUpdate(t, db, func(tx *store.WriteTx) error {
		if err := tx.PutENI(store.ENI{
			ID: "eni-1", MAC: "02:00:00:00:00:01", InstanceID: testInstance, VSwitchID: "vsw-a",
			VSwitchCIDR: netip.MustParsePrefix("10.0.0.0/24"), Gateway: netip.MustParseAddr("10.0.0.253"),
			IPv6CIDR: testCIDR6, Gateway6: gateway6Of(testCIDR6), Owned: true, State: store.ENIReady,
			Prefixes: []netip.Prefix{pfx4},
		}); err != nil {
			return err
		}
		for _, a := range prefixAddrs(pfx4)[:2] {
			if err := tx.PutIP(store.IP{Addr: a, ENIID: "eni-1", State: store.IPFree, Prefix: pfx4}); err != nil {
				return err
			}
		}
		ps, _ := tx.PoolState()
		ps.Stack, ps.Mode = config.IPStackDual, config.PoolModePrefix
		return tx.PutPoolState(ps)
	})
	_, err := Reserve(db, owner("c1"))
	wantErr(t, err, ErrPoolEmpty)
	if idle, _ := poolCounts(t, db); idle != 0 {
		t.Fatalf("idle %d on an ENI without a /80, want 0", idle)
	}
	mustUpdate(t, db, func(tx *store.WriteTx) error { return notePrefixes(tx, "eni-1", []netip.Prefix{pfx6}) })
	if idle, _ := poolCounts(t, db); idle != 2 {
		t.Fatalf("idle %d with 2 free IPv4 and a /80, want 2", idle)
	}
	for i := range 2 {
		r, err := Reserve(db, owner(fmt.Sprint("c", i)))
		wantErr(t, err, nil)
		if !pfx6.Contains(r.IP6) || !pfx4.Contains(r.IP) {
			t.Fatalf("reserved %s / %s", r.IP, r.IP6)
		}
	}
	_, err = Reserve(db, owner("c3"))
	wantErr(t, err, ErrPoolEmpty)
	if n := countIPv6Records(t, db); n != 2 {
		t.Fatalf("%d IPv6 records after 2 reservations and a refused one, want 2", n)
	}
}

// Ensure an ENI that has IPv4 prefixes but no /80 (its /80 call failed, or
// it came from an older veni) gets one from the next refill, in one call.
func TestRefill_DualPrefix_AddsMissingSlash80(t *testing.T) {
	db, cloud, node, cfg := dualPrefixSetup(t, 6)
	r, err := Allocate(bg, db, cloud, node, cfg, owner("c1"))
	wantErr(t, err, nil)
	id := r.ENI.ID
	// As if the ENI had come without its /80: the pod and its IPv6
	// records go, so the store is whole.
	wantErr(t, Release(db, r.Key), nil)
	mustUpdate(t, db, func(tx *store.WriteTx) error {
		ips, err := tx.IPs()
		if err != nil {
			return err
		}
		for _, ip := range ips {
			if ip.Addr.Is6() {
				if err := tx.DeleteIP(ip.Addr); err != nil {
					return err
				}
			}
		}
		e, err := tx.ENI(id)
		if err != nil {
			return err
		}
		e.IPv6Prefixes = nil
		return tx.PutENI(e)
	})
	cloud.mu.Lock()
	cloud.enis[id].IPv6Prefixes = nil
	cloud.mu.Unlock()
	_, err = Reserve(db, owner("c2"))
	wantErr(t, err, ErrPoolEmpty)
	r, err = Allocate(bg, db, cloud, node, cfg, owner("c2"))
	wantErr(t, err, nil)
	if r.ENI.ID != id || !inPrefixes(cloud.prefixes6Of(id), r.IP6) {
		t.Fatalf("got %s on %s, want an address of %s's new /80 %v", r.IP6, r.ENI.ID, id, cloud.prefixes6Of(id))
	}
	if n := cloud.count("AssignIPv6Prefixes"); n != 1 {
		t.Errorf("AssignIPv6Prefixes called %d times, want 1", n)
	}
	if n := cloud.count("CreateENI"); n != 1 {
		t.Errorf("CreateENI called %d times, want 1 (the ENI had free IPv4)", n)
	}
}

// Ensure a cloud sync keeps a /80's records (the cloud lists the /80, not
// its addresses), records a /80 the store missed (a crash after the call),
// and drops a /80 the cloud no longer has once no record is tagged with it.
func TestReconcile_DualPrefix_SyncKeepsSlash80Records(t *testing.T) {
	db, cloud, node, cfg := dualPrefixSetup(t, 6)
	r, err := Allocate(bg, db, cloud, node, cfg, owner("c1"))
	wantErr(t, err, nil)
	wantErr(t, Commit(db, r.Key, HostSide{Veth: "veni1", Ifindex: 7}, nil), nil)
	r2, err := Allocate(bg, db, cloud, node, cfg, owner("c2"))
	wantErr(t, err, nil)
	wantErr(t, Release(db, r2.Key), nil) // a free /80 record
	cfg.CloudSyncInterval = 0
	node.AttachedENIs = nil
	later := time.Now().Add(time.Hour) // past every grace
	rep, err := Reconcile(bg, db, cloud, node, cfg, later)
	wantErr(t, err, nil)
	if len(rep.Errors) != 0 || len(rep.LostIPs) != 0 || slices.Contains(rep.DroppedIPs, r2.IP6) {
		t.Fatalf("report %+v: a /80's records were taken as gone from the cloud", rep)
	}
	mustStates(t, db, r, store.IPBound)

	// The cloud delegated a second /80 the store never heard of.
	extra, err := cloud.AssignIPv6Prefixes(bg, r.ENI.ID, 1)
	wantErr(t, err, nil)
	_, err = Reconcile(bg, db, cloud, node, cfg, later)
	wantErr(t, err, nil)
	enis, _ := storeView(t, db)
	if !slices.Contains(enis[r.ENI.ID].IPv6Prefixes, extra[0]) {
		t.Fatalf("store /80s %v, want %v recorded", enis[r.ENI.ID].IPv6Prefixes, extra[0])
	}
	wantErr(t, cloud.UnassignIPv6Prefixes(bg, r.ENI.ID, extra), nil)
	_, err = Reconcile(bg, db, cloud, node, cfg, later)
	wantErr(t, err, nil)
	enis, _ = storeView(t, db)
	if slices.Contains(enis[r.ENI.ID].IPv6Prefixes, extra[0]) {
		t.Fatalf("store still records %v, gone from the cloud with no address of it held", extra[0])
	}
}

// Ensure a dual-stack prefix pod's IPv6, which the cloud does not list
// address by address, is recovered with its IPv4 into one allocation when
// the store is lost and the host still routes it.
func TestReconcile_DualPrefix_StoreLostRecoversBoth(t *testing.T) {
	old, cloud, node, cfg := dualPrefixSetup(t, 6)
	r, err := Allocate(bg, old, cloud, node, cfg, owner("c1"))
	wantErr(t, err, nil)
	wantErr(t, Commit(old, r.Key, HostSide{Veth: "veni1", Ifindex: 7}, nil), nil)

	db := store.File{Path: filepath.Join(t.TempDir(), "veni.db")}
	t.Cleanup(func() { mustCheckDual(t, db) })
	node.HostPods = func(context.Context) ([]HostPod, error) {
		return []HostPod{{ContainerID: "c1", IfName: "eth0", HostVeth: "veni1", HostIfindex: 7, IPs: []netip.Addr{r.IP, r.IP6}}}, nil
	}
	rep, err := Reconcile(bg, db, cloud, node, cfg, time.Now())
	wantErr(t, err, nil)
	if len(rep.Errors) != 0 {
		t.Fatalf("report %+v", rep)
	}
	var a store.Allocation
	_ = db.View(func(tx *store.ReadTx) (err error) { a, err = tx.Allocation(r.Key); return err })
	if a.IP != r.IP || a.IP6 != r.IP6 || a.State != store.IPBound {
		t.Fatalf("recovered %+v, want %s and %s bound", a, r.IP, r.IP6)
	}
	for i := range 5 {
		n, err := Reserve(db, owner(fmt.Sprint("n", i)))
		wantErr(t, err, nil)
		if n.IP == r.IP || n.IP6 == r.IP6 || !n.IP6.IsValid() {
			t.Fatalf("handed out %s / %s; the running pod holds %s / %s", n.IP, n.IP6, r.IP, r.IP6)
		}
	}
}

// Ensure a node whose store was filled in dual-stack IP mode refuses
// prefix mode (Terway: PrefixModeImmutable) with a message that says how
// to get out, and takes no address from the cloud for it.
func TestAllocate_DualPrefix_ModeSwitchRefused(t *testing.T) {
	db, cloud, node, cfg := dualSetup(t, 6)
	_, err := Allocate(bg, db, cloud, node, cfg, owner("c1"))
	wantErr(t, err, nil)
	before := cloud.total()
	pfx := cfg
	pfx.EnableIPPrefix = true
	_, err = Allocate(bg, db, cloud, node, pfx, owner("c2"))
	wantErr(t, err, ErrModeMismatch)
	if msg := err.Error(); !strings.Contains(msg, "PrefixModeImmutable") || !strings.Contains(msg, "remove its store") {
		t.Fatalf("error does not say what happened and how out: %v", err)
	}
	wantErr(t, CheckMode(db, pfx), ErrModeMismatch)
	if n := cloud.total() - before; n != 0 {
		t.Fatalf("%d cloud calls for a refused mode", n)
	}
}

// Ensure max pods in dual-stack prefix mode is the IPv4 prefix figure (the
// /80 never caps it) and zero on an instance type without IPv6, which
// StackWarning names.
func TestMaxPods_DualPrefix(t *testing.T) {
	_, _, node, cfg := dualPrefixSetup(t, 1)
	want := (node.Limits.ENIs - 1) * perENI(node) * PrefixSize
	if got := MaxPods(node, cfg); got != want {
		t.Fatalf("max pods %d, want %d", got, want)
	}
	if w := StackWarning(node, cfg); w != "" {
		t.Fatalf("warning %q with one IPv6 slot per ENI: a /80 takes one", w)
	}
	node.Limits.IPv6PerENI = 0
	if got := MaxPods(node, cfg); got != 0 {
		t.Fatalf("max pods %d without IPv6, want 0", got)
	}
	if w := StackWarning(node, cfg); !strings.Contains(w, "no IPv6") {
		t.Fatalf("warning %q", w)
	}
}

// Ensure a crash between the two transactions of an ADD leaves nothing a
// restarted GC cannot free whole, and no IPv6 record without its IPv4 pod.
func TestRelease_DualPrefix_ReservedPairFreedWhole(t *testing.T) {
	db, cloud, node, cfg := dualPrefixSetup(t, 6)
	r, err := Allocate(bg, db, cloud, node, cfg, owner("c1"))
	wantErr(t, err, nil)
	mustStates(t, db, r, store.IPReserved)
	wantErr(t, Release(db, r.Key), nil)
	wantErr(t, Release(db, r.Key), nil) // idempotent
	mustStates(t, db, r, store.IPFree)
	var a store.Allocation
	err = db.View(func(tx *store.ReadTx) (err error) { a, err = tx.Allocation(r.Key); return err })
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("allocation %+v after release (%v)", a, err)
	}
}

// Ensure dual-stack prefix mode works against the simulated region
// through the unchanged SDK: the sim accepts an ENI created with /28s and
// a /80 together, every pod's IPv4 and IPv6 lie in the /28s and the one
// /80 of one ENI as the cloud lists them, a cloud sync keeps every record,
// and the store stays whole.
func TestAllocate_Sim_DualPrefix(t *testing.T) {
	env := mustTrunkEnv(t)
	env.cfg.EnableENITrunking = false
	env.cfg.IPStack, env.cfg.EnableIPPrefix = config.IPStackDual, true
	t.Cleanup(func() { mustCheckDual(t, env.db) })
	var got []Reservation
	for i := range 20 {
		r, err := Allocate(bg, env.db, env.client, env.node, env.cfg, owner(fmt.Sprint("c", i)))
		wantErr(t, err, nil)
		wantErr(t, Commit(env.db, r.Key, HostSide{Veth: fmt.Sprint("veni", i), Ifindex: 10 + i}, nil), nil)
		got = append(got, r)
	}
	byID := make(map[string][2][]netip.Prefix)
	for _, e := range env.cloud.Snapshot().ENIs {
		byID[e.ID] = [2][]netip.Prefix{e.Prefixes, e.IPv6Prefixes}
	}
	seen := make(map[netip.Addr]bool)
	for _, r := range got {
		p := byID[r.ENI.ID]
		if len(p[1]) != 1 || !inPrefixes(p[0], r.IP) || !inPrefixes(p[1], r.IP6) {
			t.Fatalf("%s: %s / %s on %s, whose /28s are %v and /80s %v in the sim", r.Key, r.IP, r.IP6, r.ENI.ID, p[0], p[1])
		}
		if seen[r.IP] || seen[r.IP6] {
			t.Fatalf("%s: %s / %s given twice", r.Key, r.IP, r.IP6)
		}
		seen[r.IP], seen[r.IP6] = true, true
	}
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
