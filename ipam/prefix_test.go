package ipam

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/store"
)

func prefixConfig() config.Config {
	c := testConfig()
	c.EnableIPPrefix = true
	return c
}

// storeView returns the store's ENIs by id and its IPs.
func storeView(tb testing.TB, db Store) (map[string]store.ENI, []store.IP) {
	tb.Helper()
	p, err := snapshot(db)
	if err != nil {
		tb.Fatal(err)
	}
	enis := make(map[string]store.ENI)
	for _, e := range p.enis {
		enis[e.ID] = e
	}
	return enis, p.ips
}

// Ensure a prefix-mode refill delegates /28s instead of assigning IPs, and
// every address of a prefix becomes a pod's: 20 pods on an attached ENI
// take two prefixes, in two calls, and no address twice.
func TestAllocate_Prefix_FillsPastOnePrefix(t *testing.T) {
	db, cloud := mustStore(t), newFakeCloud()
	cloud.addVSwitch("vsw-a", "10.0.0.0/24", 200)
	mustENI(t, db, cloud, "eni-1", true, 0, time.Now())
	node, cfg := testNode(), prefixConfig()
	seen := make(map[netip.Addr]bool)
	for i := range 20 {
		r, err := Allocate(bg, db, cloud, node, cfg, owner(fmt.Sprint("c", i)))
		wantErr(t, err, nil)
		if seen[r.IP] {
			t.Fatalf("pod %d got %s, already given", i, r.IP)
		}
		seen[r.IP] = true
		if r.ENI.ID != "eni-1" {
			t.Errorf("pod %d on %s", i, r.ENI.ID)
		}
	}
	if n := cloud.count("AssignPrivateIPs"); n != 0 {
		t.Errorf("AssignPrivateIPs called %d times in prefix mode", n)
	}
	if n := cloud.count("AssignPrefixes"); n != 2 {
		t.Errorf("AssignPrefixes called %d times for 20 pods, want 2 (16 addresses each)", n)
	}
	enis, ips := storeView(t, db)
	inCloud := cloud.prefixesOf("eni-1")
	if got := enis["eni-1"].Prefixes; len(got) != 2 || !slices.Equal(got, inCloud) {
		t.Fatalf("store records prefixes %v, cloud has %v", got, inCloud)
	}
	if len(ips) != 2*PrefixSize {
		t.Errorf("store has %d addresses, want %d (every address of both /28s)", len(ips), 2*PrefixSize)
	}
	for _, ip := range ips {
		if !ip.Prefix.IsValid() || !ip.Prefix.Contains(ip.Addr) || !slices.Contains(inCloud, ip.Prefix) {
			t.Errorf("%s tagged with prefix %s; cloud has %v", ip.Addr, ip.Prefix, inCloud)
		}
	}
	for a := range seen {
		if !slices.ContainsFunc(inCloud, func(p netip.Prefix) bool { return p.Contains(a) }) {
			t.Errorf("pod address %s is in no delegated prefix", a)
		}
	}
}

// Ensure a prefix-mode node without an ENI creates one with prefixes (the
// cloud takes prefixes or addresses in one create, not both).
func TestAllocate_Prefix_NewENI(t *testing.T) {
	db, cloud := mustStore(t), newFakeCloud()
	cloud.addVSwitch("vsw-a", "10.0.0.0/24", 200)
	node, cfg := testNode(), prefixConfig()
	r, err := Allocate(bg, db, cloud, node, cfg, owner("c1"))
	wantErr(t, err, nil)
	pfx := cloud.prefixesOf(r.ENI.ID)
	if len(pfx) != 1 || !pfx[0].Contains(r.IP) {
		t.Errorf("pod got %s, eni %s has prefixes %v", r.IP, r.ENI.ID, pfx)
	}
	if n := cloud.count("AssignPrefixes") + cloud.count("AssignPrivateIPs"); n != 0 {
		t.Errorf("%d assign calls after a create that carried the prefix", n)
	}
	if idle, used := poolCounts(t, db); idle != PrefixSize-1 || used != 1 {
		t.Errorf("idle %d used %d, want %d 1", idle, used, PrefixSize-1)
	}
}

// Ensure concurrent ADDs on a prefix-mode node never get the same address
// (one refill under the lease, the others wait and reserve).
func TestAllocate_Prefix_NoDoubleAssignment(t *testing.T) {
	db, cloud := mustStore(t), newFakeCloud()
	cloud.addVSwitch("vsw-a", "10.0.0.0/24", 200)
	mustENI(t, db, cloud, "eni-1", true, 0, time.Now())
	node, cfg := testNode(), prefixConfig()
	cfg.MaxPoolSize = 48
	var mu sync.Mutex
	got := make(map[netip.Addr]string)
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			cid := fmt.Sprint("c", i)
			r, err := Allocate(bg, db, cloud, node, cfg, owner(cid))
			if err != nil {
				t.Errorf("allocate %s: %v", cid, err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if other, ok := got[r.IP]; ok {
				t.Errorf("%s given to %s and %s", r.IP, other, cid)
			}
			got[r.IP] = cid
		})
	}
	wg.Wait()
	if len(got) != 40 {
		t.Errorf("%d distinct addresses for 40 pods", len(got))
	}
	if n := cloud.count("AssignPrefixes"); n > 3 {
		t.Errorf("AssignPrefixes called %d times for 40 pods with max_pool_size 48", n)
	}
}

// Ensure a prefix goes back to the cloud only when every one of its
// addresses is free and idle past idle_ip_reclaim_after, never while a
// pod holds one of them.
func TestReconcile_Prefix_ReleasedOnlyWhenWhollyFree(t *testing.T) {
	db, cloud := mustStore(t), newFakeCloud()
	cloud.addVSwitch("vsw-a", "10.0.0.0/24", 200)
	mustENI(t, db, cloud, "eni-1", true, 0, time.Now())
	node, cfg := testNode(), prefixConfig()
	cfg.MaxPoolSize, cfg.IdleReclaimBatch = 0, 0
	cfg.IdleReclaimAfter = config.Duration(10 * time.Minute)
	var res []Reservation
	for i := range PrefixSize + 1 {
		r, err := Allocate(bg, db, cloud, node, cfg, owner(fmt.Sprint("c", i)))
		wantErr(t, err, nil)
		res = append(res, r)
	}
	pfx := cloud.prefixesOf("eni-1")
	if len(pfx) != 2 {
		t.Fatalf("prefixes %v, want 2 for 17 pods", pfx)
	}
	first := pfx[0]
	// Free all but one address of the first prefix, and the pod of the
	// second.
	keep := res[0]
	if !first.Contains(keep.IP) {
		t.Fatalf("first pod %s not in first prefix %s", keep.IP, first)
	}
	for _, r := range res[1:] {
		wantErr(t, Release(db, r.Key), nil)
	}
	now := time.Now()
	rep, err := Reconcile(bg, db, cloud, node, cfg, now.Add(time.Minute))
	wantErr(t, err, nil)
	if len(rep.ReleasedPrefixes) != 0 {
		t.Fatalf("released %v within idle_ip_reclaim_after", rep.ReleasedPrefixes)
	}
	rep, err = Reconcile(bg, db, cloud, node, cfg, now.Add(11*time.Minute))
	wantErr(t, err, nil)
	if len(rep.ReleasedPrefixes) != 1 || rep.ReleasedPrefixes[0] != pfx[1] || len(rep.Errors) != 0 {
		t.Fatalf("released %v (errors %v), want only %s: %s still holds %s", rep.ReleasedPrefixes, rep.Errors, pfx[1], keep.Key, keep.IP)
	}
	if got := cloud.prefixesOf("eni-1"); !slices.Equal(got, []netip.Prefix{first}) {
		t.Errorf("cloud has %v, want %v", got, first)
	}
	enis, ips := storeView(t, db)
	if !slices.Equal(enis["eni-1"].Prefixes, []netip.Prefix{first}) || len(ips) != PrefixSize {
		t.Errorf("store: prefixes %v, %d addresses", enis["eni-1"].Prefixes, len(ips))
	}
	wantErr(t, Release(db, keep.Key), nil)
	rep, err = Reconcile(bg, db, cloud, node, cfg, now.Add(30*time.Minute))
	wantErr(t, err, nil)
	if !slices.Equal(rep.ReleasedPrefixes, []netip.Prefix{first}) {
		t.Errorf("released %v, want %s once its last pod left", rep.ReleasedPrefixes, first)
	}
	if got := cloud.prefixesOf("eni-1"); len(got) != 0 {
		t.Errorf("cloud still has %v", got)
	}
}

// Ensure reclaim keeps max_pool_size free addresses and ipv4_prefix_count
// prefixes.
func TestReconcile_Prefix_Floors(t *testing.T) {
	cases := []struct {
		name          string
		maxPool, keep int
		wantLeft      int // prefixes
	}{
		{"max_pool_size within one prefix", 10, 0, 1},
		{"max_pool_size of two prefixes", 20, 0, 2},
		{"nothing to keep", 0, 0, 0},
		{"ipv4_prefix_count", 0, 2, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db, cloud := mustStore(t), newFakeCloud()
			cloud.addVSwitch("vsw-a", "10.0.0.0/24", 200)
			mustENI(t, db, cloud, "eni-1", true, 0, time.Now())
			node, cfg := testNode(), prefixConfig()
			cfg.MinPoolSize, cfg.MaxPoolSize, cfg.IdleReclaimBatch, cfg.IPv4PrefixCount = 0, tc.maxPool, 0, tc.keep
			p, err := snapshot(db)
			wantErr(t, err, nil)
			if _, _, err := assignPrefixesOnENIs(bg, db, cloud, node, cfg, &p, 3*PrefixSize); err != nil {
				t.Fatal(err)
			}
			for range 3 {
				_, err := Reconcile(bg, db, cloud, node, cfg, time.Now().Add(time.Hour))
				wantErr(t, err, nil)
			}
			if got := len(cloud.prefixesOf("eni-1")); got != tc.wantLeft {
				t.Errorf("%d prefixes left, want %d", got, tc.wantLeft)
			}
		})
	}
}

// Ensure a prefix the cloud delegated and the store never recorded (a
// crash between the call and the write) is found by the cloud sync and
// its addresses recorded, tagged with it; one the cloud dropped is
// forgotten with its free addresses.
func TestReconcile_Prefix_Sync(t *testing.T) {
	db, cloud := mustStore(t), newFakeCloud()
	cloud.addVSwitch("vsw-a", "10.0.0.0/24", 200)
	mustENI(t, db, cloud, "eni-1", true, 0, time.Now().Add(-time.Hour))
	node, cfg := testNode(), prefixConfig()
	cfg.MaxPoolSize = 100
	got, err := cloud.AssignPrefixes(bg, "eni-1", 1)
	wantErr(t, err, nil)
	rep, err := Reconcile(bg, db, cloud, node, cfg, time.Now())
	wantErr(t, err, nil)
	if len(rep.SyncedIPs) != PrefixSize || len(rep.Errors) != 0 {
		t.Fatalf("synced %v errors %v", rep.SyncedIPs, rep.Errors)
	}
	enis, ips := storeView(t, db)
	if !slices.Equal(enis["eni-1"].Prefixes, got) {
		t.Errorf("eni records %v, cloud delegated %v", enis["eni-1"].Prefixes, got)
	}
	for _, ip := range ips {
		if ip.Prefix != got[0] {
			t.Errorf("%s tagged %s", ip.Addr, ip.Prefix)
		}
	}
	// The cloud drops it (someone unassigned it behind veni's back).
	wantErr(t, cloud.UnassignPrefixes(bg, "eni-1", got), nil)
	_, err = Reconcile(bg, db, cloud, node, cfg, time.Now().Add(time.Hour))
	wantErr(t, err, nil)
	enis, ips = storeView(t, db)
	if len(enis["eni-1"].Prefixes) != 0 || len(ips) != 0 {
		t.Errorf("after the cloud dropped it: prefixes %v, %d addresses", enis["eni-1"].Prefixes, len(ips))
	}
}

// Ensure a node does not switch between IP and prefix mode while its store
// holds addresses (Terway: PrefixModeImmutable), in either direction, at
// the daemon's start (EnsureMode), in the pool and in every ADD.
func TestMode_Immutable(t *testing.T) {
	ipCfg, pfxCfg := testConfig(), prefixConfig()
	cases := []struct {
		name       string
		fill, then config.Config
		legacy     bool // the store predates the recorded mode
	}{
		{"ip to prefix", ipCfg, pfxCfg, false},
		{"prefix to ip", pfxCfg, ipCfg, false},
		{"legacy ip store to prefix", ipCfg, pfxCfg, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db, cloud := mustStore(t), newFakeCloud()
			cloud.addVSwitch("vsw-a", "10.0.0.0/24", 200)
			mustENI(t, db, cloud, "eni-1", true, 0, time.Now())
			node := testNode()
			_, err := Allocate(bg, db, cloud, node, tc.fill, owner("c1"))
			wantErr(t, err, nil)
			if tc.legacy {
				mustUpdate(t, db, func(tx *store.WriteTx) error {
					ps, err := tx.PoolState()
					ps.Mode = ""
					return errorsJoin(err, tx.PutPoolState(ps))
				})
			}
			calls := cloud.total()
			_, err = Allocate(bg, db, cloud, node, tc.then, owner("c2"))
			wantErr(t, err, ErrModeMismatch)
			wantErr(t, EnsureMode(db, tc.then), ErrModeMismatch)
			_, err = Reconcile(bg, db, cloud, node, tc.then, time.Now())
			wantErr(t, err, ErrModeMismatch)
			if n := cloud.total(); n != calls {
				t.Errorf("%d cloud calls made in the wrong mode", n-calls)
			}
			// The node's own mode still works.
			wantErr(t, EnsureMode(db, tc.fill), nil)
			_, err = Allocate(bg, db, cloud, node, tc.fill, owner("c2"))
			wantErr(t, err, nil)
		})
	}
	t.Run("fresh store takes either", func(t *testing.T) {
		db := mustStore(t)
		wantErr(t, EnsureMode(db, pfxCfg), nil)
		wantErr(t, EnsureMode(db, pfxCfg), nil)
		wantErr(t, EnsureMode(db, ipCfg), ErrModeMismatch)
	})
}

// Ensure max pods follows Terway's prefix formula
// (IPv4PerAdapter−1)×16×(TotalAdapters−1), capped by max_eni.
func TestMaxPods_Prefix(t *testing.T) {
	node := testNode() // 3 ENIs, 6 addresses each
	ip, pfx := testConfig(), prefixConfig()
	if got := MaxPods(node, ip); got != 2*5 {
		t.Errorf("ip mode: %d", got)
	}
	if got := MaxPods(node, pfx); got != 5*16*2 {
		t.Errorf("prefix mode: %d, want %d", got, 5*16*2)
	}
	pfx.MaxENI = 1
	if got := MaxPods(node, pfx); got != 5*16 {
		t.Errorf("prefix mode, max_eni 1: %d", got)
	}
}

func errorsJoin(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// Ensure instance metadata (which lists no prefixes) agreeing with the
// store costs no API call in prefix mode, and that a delegation cut short
// (the cloud delegated, the store never recorded: a crash) makes the next
// Reconcile describe the ENIs and record the prefix.
func TestReconcile_Prefix_DelegationCutShort(t *testing.T) {
	db, cloud := mustStore(t), newFakeCloud()
	cloud.addVSwitch("vsw-a", "10.0.0.0/24", 200)
	mustENI(t, db, cloud, "eni-1", true, 0, time.Now())
	node, cfg := testNode(), prefixConfig()
	cfg.MaxPoolSize = 100
	node.AttachedENIs = metadataOf(cloud)
	_, err := Allocate(bg, db, cloud, node, cfg, owner("c1"))
	wantErr(t, err, nil)
	_, err = Reconcile(bg, db, cloud, node, cfg, time.Now()) // sets LastCloudSync
	wantErr(t, err, nil)
	describes := cloud.count("ENIs")
	rep, err := Reconcile(bg, db, cloud, node, cfg, time.Now())
	wantErr(t, err, nil)
	if rep.CloudSync != "" || cloud.count("ENIs") != describes {
		t.Fatalf("steady prefix-mode node described its ENIs (%q)", rep.CloudSync)
	}
	// A crash right after the cloud answered.
	wantErr(t, markDelegating(db, time.Now()), nil)
	lost, err := cloud.AssignPrefixes(bg, "eni-1", 1)
	wantErr(t, err, nil)
	rep, err = Reconcile(bg, db, cloud, node, cfg, time.Now())
	wantErr(t, err, nil)
	if rep.CloudSync == "" || len(rep.SyncedIPs) != PrefixSize {
		t.Fatalf("after a cut-short delegation: sync %q, synced %v", rep.CloudSync, rep.SyncedIPs)
	}
	enis, _ := storeView(t, db)
	if !enis["eni-1"].HasPrefix(lost[0]) {
		t.Errorf("prefix %s not recorded: %v", lost[0], enis["eni-1"].Prefixes)
	}
	p, err := snapshot(db)
	wantErr(t, err, nil)
	if !p.state.DelegatingSince.IsZero() {
		t.Errorf("mark left set after the sync")
	}
}

// Ensure a store from before the pool mode was recorded gets its mode (from
// its addresses) at the daemon's next pass, and a fresh one does not.
func TestReconcile_NotesLegacyMode(t *testing.T) {
	db, cloud := mustStore(t), newFakeCloud()
	cloud.addVSwitch("vsw-a", "10.0.0.0/24", 200)
	node, cfg := testNode(), testConfig()
	mode := func() string {
		p, err := snapshot(db)
		wantErr(t, err, nil)
		return p.state.Mode
	}
	_, err := Reconcile(bg, db, cloud, node, cfg, time.Now())
	wantErr(t, err, nil)
	if m := mode(); m != "" {
		t.Fatalf("fresh store got mode %q without an address", m)
	}
	mustENI(t, db, cloud, "eni-1", true, 2, time.Now())
	_, err = Reconcile(bg, db, cloud, node, cfg, time.Now())
	wantErr(t, err, nil)
	if m := mode(); m != config.PoolModeIP {
		t.Errorf("legacy ip store: mode %q after a pass", m)
	}
}
