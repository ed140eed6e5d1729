package ipam

import (
	"context"
	"errors"
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

var testCIDR6 = netip.MustParsePrefix("fd00:1::/64")

// dualSetup is a fake cloud whose vSwitch has IPv6, a node whose instance
// type gives v6 IPv6 per ENI, and a dual-stack config.
func dualSetup(tb testing.TB, v6 int) (store.File, *fakeCloud, Node, config.Config) {
	tb.Helper()
	db, cloud := mustStore(tb), newFakeCloud()
	cloud.addVSwitch("vsw-a", "10.0.0.0/24", 200)
	cloud.addVSwitch6("vsw-a", testCIDR6.String())
	cloud.maxIPv6 = v6
	node := testNode()
	node.Limits.IPv6PerENI = v6
	cfg := testConfig()
	cfg.IPStack = config.IPStackDual
	return db, cloud, node, cfg
}

// Ensure a dual-stack ADD on an empty pool gets an IPv4 and an IPv6 of one
// ENI, both reserved by it and then bound together, and that releasing it
// frees both in the store.
func TestAllocate_Dual_PairOnOneENI(t *testing.T) {
	db, cloud, node, cfg := dualSetup(t, 6)
	var got []Reservation
	for _, cid := range []string{"c1", "c2", "c3"} {
		r, err := Allocate(bg, db, cloud, node, cfg, owner(cid))
		wantErr(t, err, nil)
		if !r.IP.Is4() || !r.IP6.Is6() || !testCIDR6.Contains(r.IP6) {
			t.Fatalf("%s: reservation %s / %s, want an IPv4 and an IPv6 of %s", cid, r.IP, r.IP6, testCIDR6)
		}
		if r.ENI.IPv6CIDR != testCIDR6 || r.ENI.Gateway6 != netip.MustParseAddr("fd00:1::ffff:ffff:ffff:fffd") {
			t.Fatalf("eni %s ipv6 %s gateway %s", r.ENI.ID, r.ENI.IPv6CIDR, r.ENI.Gateway6)
		}
		if !slices.Contains(cloud.ipv6sOf(r.ENI.ID), r.IP6) || !slices.Contains(cloud.ipsOf(r.ENI.ID), r.IP) {
			t.Fatalf("%s: %s and %s are not both assigned to %s in the cloud", cid, r.IP, r.IP6, r.ENI.ID)
		}
		wantErr(t, Commit(db, r.Key, HostSide{Veth: "veni" + cid, Ifindex: 9}, nil), nil)
		got = append(got, r)
	}
	mustStates(t, db, got[0], store.IPBound)
	if _, used := poolCounts(t, db); used != 3 {
		t.Fatalf("used %d, want 3 pods", used)
	}
	wantErr(t, Release(db, got[0].Key), nil)
	mustStates(t, db, got[0], store.IPFree)
	// The freed pair is the one handed out last: both families come back.
	r, err := Reserve(db, owner("c4"))
	wantErr(t, err, nil)
	if !r.IP6.IsValid() {
		t.Fatalf("reserve without cfg on a dual store gave %s alone", r.IP)
	}
}

// Ensure the pool never hands out half a stack: an ENI with free IPv4 but
// no free IPv6 (or the reverse) offers no pod, and counts as no idle pod.
func TestReserve_Dual_NoHalfStack(t *testing.T) {
	db, cloud, _, _ := dualSetup(t, 6)
	v4 := mustENI(t, db, cloud, "eni-1", true, 2, time.Now())
	mustUpdate(t, db, func(tx *store.WriteTx) error {
		e, err := tx.ENI("eni-1")
		if err != nil {
			return err
		}
		e.IPv6CIDR, e.Gateway6 = testCIDR6, gateway6Of(testCIDR6)
		if err := tx.PutENI(e); err != nil {
			return err
		}
		ps, _ := tx.PoolState()
		ps.Stack = config.IPStackDual
		return tx.PutPoolState(ps)
	})
	_, err := Reserve(db, owner("c1"))
	wantErr(t, err, ErrPoolEmpty)
	if idle, _ := poolCounts(t, db); idle != 0 {
		t.Fatalf("idle %d with no free IPv6, want 0", idle)
	}
	six := netip.MustParseAddr("fd00:1::20")
	mustUpdate(t, db, func(tx *store.WriteTx) error {
		return tx.PutIP(store.IP{Addr: six, ENIID: "eni-1", State: store.IPFree})
	})
	if idle, _ := poolCounts(t, db); idle != 1 {
		t.Fatalf("idle %d with 2 IPv4 and 1 IPv6 free, want 1", idle)
	}
	r, err := Reserve(db, owner("c1"))
	wantErr(t, err, nil)
	if r.IP6 != six || !slices.Contains(v4, r.IP) {
		t.Fatalf("reserved %s / %s", r.IP, r.IP6)
	}
	_, err = Reserve(db, owner("c2"))
	wantErr(t, err, ErrPoolEmpty)
}

// Ensure an instance type with fewer IPv6 than IPv4 per ENI caps every ENI
// at its IPv6, and says so, instead of handing out IPv4-only pods.
func TestAllocate_Dual_CappedByIPv6Quota(t *testing.T) {
	db, cloud, node, cfg := dualSetup(t, 2)
	cfg.MaxENI = 1
	if w := StackWarning(node, cfg); !strings.Contains(w, "2 IPv6 but 5 secondary IPv4") {
		t.Fatalf("StackWarning = %q", w)
	}
	if got := MaxPods(node, cfg); got != 2 {
		t.Fatalf("MaxPods = %d, want 2", got)
	}
	for _, cid := range []string{"c1", "c2"} {
		_, err := Allocate(bg, db, cloud, node, cfg, owner(cid))
		wantErr(t, err, nil)
	}
	_, err := Allocate(bg, db, cloud, node, cfg, owner("c3"))
	wantErr(t, err, ErrPoolExhausted)
	if w := StackWarning(node, testConfig()); w != "" {
		t.Fatalf("StackWarning for ipv4 = %q", w)
	}
}

// Ensure an ENI left with more IPv4 than IPv6 (an AssignIpv6Addresses that
// failed after its AssignPrivateIpAddresses) is topped up with IPv6 first,
// and no pod is handed half a stack meanwhile.
func TestRefill_Dual_TopsUpTheShortFamily(t *testing.T) {
	db, cloud, node, cfg := dualSetup(t, 15)
	node.Limits.IPv4PerENI = 16 // the create brings 10 pairs, 5 more fit
	cfg.MaxENI = 1
	r, err := Allocate(bg, db, cloud, node, cfg, owner("c1"))
	wantErr(t, err, nil)
	cloud.setErr("AssignIPv6s", &eni.APIError{Action: "AssignIpv6Addresses", Code: "ServiceUnavailable", Kind: eni.ErrUnreachable})
	// The ENI's pairs are the create's: ask for more than it has.
	err = Refill(bg, db, cloud, node, cfg, 5)
	if err == nil {
		t.Fatal("refill with AssignIpv6Addresses failing succeeded")
	}
	p, err := snapshot(db)
	wantErr(t, err, nil)
	_, all4, _, all6 := p.ipsByFamily(r.ENI.ID)
	if all4 <= all6 {
		t.Fatalf("ipv4 %d ipv6 %d: want the failed call to leave IPv4 ahead", all4, all6)
	}
	cloud.setErr("AssignIPv6s", nil)
	wantErr(t, Refill(bg, db, cloud, node, cfg, 5), nil)
	p, _ = snapshot(db)
	_, all4, _, all6 = p.ipsByFamily(r.ENI.ID)
	if all4 != all6 || all6 != 15 {
		t.Fatalf("after top-up ipv4 %d ipv6 %d, want 15 each", all4, all6)
	}
}

// Ensure a node's stack is its store's for life, both ways, with an error
// that says what to do.
func TestAllocate_StackImmutable(t *testing.T) {
	db, cloud, node, cfg := dualSetup(t, 6)
	_, err := Allocate(bg, db, cloud, node, cfg, owner("c1"))
	wantErr(t, err, nil)
	v4 := cfg
	v4.IPStack = config.IPStackV4
	_, err = Allocate(bg, db, cloud, node, v4, owner("c2"))
	wantErr(t, err, ErrStackMismatch)
	if !strings.Contains(err.Error(), "remove its store") {
		t.Fatalf("error says no way out: %v", err)
	}
	wantErr(t, CheckMode(db, v4), ErrStackMismatch)

	// An IPv4 store from before dual stack (no stack recorded).
	old, cloud2 := mustStore(t), newFakeCloud()
	cloud2.addVSwitch("vsw-a", "10.0.0.0/24", 200)
	mustENI(t, old, cloud2, "eni-1", true, 2, time.Now())
	mustReserve(t, old, "c1", true)
	_, err = Allocate(bg, old, cloud2, node, cfg, owner("c2"))
	wantErr(t, err, ErrStackMismatch)
}

// Ensure a reservation whose ADD died before Commit (the crash between
// the two transactions) is released whole by GC's one release path.
func TestReleaseAllocation_Dual_CrashBeforeCommit(t *testing.T) {
	db, cloud, node, cfg := dualSetup(t, 6)
	r, err := Allocate(bg, db, cloud, node, cfg, owner("c1"))
	wantErr(t, err, nil)
	cands, err := Candidates(db, func(store.Allocation) bool { return true })
	wantErr(t, err, nil)
	if len(cands) != 1 || cands[0].IP6 != r.IP6 || cands[0].State != store.IPReserved {
		t.Fatalf("candidates %+v", cands)
	}
	released, err := ReleaseAllocation(db, cands[0], nil, time.Now())
	wantErr(t, err, nil)
	if !released {
		t.Fatal("not released")
	}
	mustStates(t, db, r, store.IPFree)
}

// Ensure a dual-stack pod's two addresses are recovered into one
// allocation when the store is lost and the host's links still route them.
func TestReconcile_Dual_StoreLostRecoversBothFamilies(t *testing.T) {
	old, cloud, node, cfg := dualSetup(t, 6)
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
	if a.IP != r.IP || a.IP6 != r.IP6 || a.State != store.IPBound || !a.Recovered {
		t.Fatalf("recovered %+v, want %s and %s bound", a, r.IP, r.IP6)
	}
	// Neither half may be handed to another pod, and the adopted ENI
	// still serves new dual-stack pods (it knows its vSwitch's /64).
	served := 0
	for i := range 20 {
		n, err := Reserve(db, owner("n"+string(rune('a'+i))))
		if errors.Is(err, ErrPoolEmpty) {
			break
		}
		wantErr(t, err, nil)
		if n.IP == r.IP || n.IP6 == r.IP6 {
			t.Fatalf("handed out %s / %s, which the running pod holds", n.IP, n.IP6)
		}
		if !n.IP.IsValid() || !n.IP6.IsValid() {
			t.Fatalf("handed out half a stack: %s / %s", n.IP, n.IP6)
		}
		served++
	}
	if served == 0 {
		t.Fatal("the adopted ENI serves no new dual-stack pod")
	}
}

// mustStates fails unless r's addresses (both, dual stack) are in state.
func mustStates(tb testing.TB, db Store, r Reservation, state store.IPState) {
	tb.Helper()
	_ = db.View(func(tx *store.ReadTx) error {
		for _, a := range []netip.Addr{r.IP, r.IP6} {
			if !a.IsValid() {
				continue // an IPv4-only or IPv6-only pod's
			}
			ip, err := tx.IP(a)
			if err != nil || ip.State != state || (state != store.IPFree && ip.Owner != r.Key) {
				tb.Errorf("%s: %+v (%v), want %s", a, ip, err, state)
			}
		}
		return nil
	})
}

func mustCheckDual(tb testing.TB, db Store) {
	tb.Helper()
	_ = db.View(func(tx *store.ReadTx) error {
		for _, v := range tx.Check() {
			tb.Errorf("store invariant: %s", v)
		}
		return nil
	})
}

// Ensure Reconcile repairs what a damaged store can hold: an IPv6 held by
// a pod whose allocation lost it rejoins that allocation, an address held
// by an owner with no allocation is freed, unless a pod on the host
// routes it.
func TestReconcile_RepairsHalves(t *testing.T) {
	db := store.File{Path: filepath.Join(t.TempDir(), "veni.db")}
	cloud := newFakeCloud()
	cloud.addVSwitch("vsw-a", "10.0.0.0/24", 200)
	cloud.addVSwitch6("vsw-a", testCIDR6.String())
	v4 := mustENI(t, db, cloud, "eni-1", true, 3, time.Now().Add(-time.Hour))
	six := []netip.Addr{netip.MustParseAddr("fd00:1::20"), netip.MustParseAddr("fd00:1::21"), netip.MustParseAddr("fd00:1::22")}
	cloud.enis["eni-1"].IPv6s = six
	mustUpdate(t, db, func(tx *store.WriteTx) error {
		e, _ := tx.ENI("eni-1")
		e.IPv6CIDR, e.Gateway6 = testCIDR6, gateway6Of(testCIDR6)
		if err := tx.PutENI(e); err != nil {
			return err
		}
		if err := tx.PutPoolState(store.PoolState{Mode: config.PoolModeIP, Stack: config.IPStackDual}); err != nil {
			return err
		}
		// c1: bound on its IPv4, its IPv6 held but not named.
		if err := tx.PutIP(store.IP{Addr: v4[0], ENIID: "eni-1", State: store.IPBound, Owner: "c1/eth0"}); err != nil {
			return err
		}
		if err := tx.PutIP(store.IP{Addr: six[0], ENIID: "eni-1", State: store.IPBound, Owner: "c1/eth0"}); err != nil {
			return err
		}
		if err := tx.PutAllocation(store.Allocation{ContainerID: "c1", IfName: "eth0", IP: v4[0], ENIID: "eni-1", State: store.IPBound}); err != nil {
			return err
		}
		// Owners with no allocation at all.
		if err := tx.PutIP(store.IP{Addr: six[1], ENIID: "eni-1", State: store.IPReserved, Owner: "ghost/eth0"}); err != nil {
			return err
		}
		return tx.PutIP(store.IP{Addr: v4[1], ENIID: "eni-1", State: store.IPBound, Owner: "alive/eth0"})
	})
	node := testNode()
	node.Limits.IPv6PerENI = 6
	node.HostPods = func(context.Context) ([]HostPod, error) {
		return []HostPod{{HostVeth: "venialive", IPs: []netip.Addr{v4[1]}}}, nil
	}
	cfg := testConfig()
	cfg.IPStack = config.IPStackDual
	cfg.MinPoolSize, cfg.MaxPoolSize = 0, 10
	rep, err := Reconcile(bg, db, cloud, node, cfg, time.Now())
	wantErr(t, err, nil)
	if !slices.Equal(rep.RepairedIPs, []netip.Addr{six[1], six[0]}) {
		t.Fatalf("repaired %v, want %s freed and %s rejoined (report %+v)", rep.RepairedIPs, six[1], six[0], rep)
	}
	_ = db.View(func(tx *store.ReadTx) error {
		a, err := tx.Allocation("c1/eth0")
		if err != nil || a.IP6 != six[0] {
			t.Errorf("c1 allocation %+v (%v), want ip6 %s", a, err, six[0])
		}
		if ip, _ := tx.IP(six[1]); ip.State != store.IPFree {
			t.Errorf("%s: %+v, want free", six[1], ip)
		}
		if ip, _ := tx.IP(v4[1]); ip.State != store.IPBound || ip.Owner != "alive/eth0" {
			t.Errorf("%s: %+v, want kept for the pod the host routes", v4[1], ip)
		}
		var kinds []string
		for _, v := range tx.Check() {
			kinds = append(kinds, string(v.Kind)+" "+v.Object)
		}
		if !slices.Equal(kinds, []string{"owner-without-allocation ip/" + v4[1].String()}) {
			t.Errorf("violations after repair %q, want only the kept address", kinds)
		}
		return nil
	})
}
