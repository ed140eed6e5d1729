package ipam

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/veni-cni/veni/eni"
	"github.com/veni-cni/veni/store"
)

// Ensure a store that was lost (a new, empty file) never hands out an
// address a running pod holds: Reconcile adopts the node's ENIs, records
// the addresses the host's pods use as bound (Recovered), and only the
// others as free.
func TestReconcile_StoreLost_HostPodsKeepTheirAddresses(t *testing.T) {
	old, cloud := mustStore(t), newFakeCloud()
	cloud.addVSwitch("vsw-a", "10.0.0.0/24", 200)
	ips := mustENI(t, old, cloud, "eni-1", true, 4, time.Now())
	pod := mustReserve(t, old, "c1", true)

	// The store is gone; a new one starts empty beside it.
	db := store.File{Path: filepath.Join(t.TempDir(), "veni.db")}
	node := testNode()
	node.HostPods = func(context.Context) ([]HostPod, error) {
		return []HostPod{
			{ContainerID: "c1", IfName: "eth0", NetNS: "/var/run/netns/c1", HostVeth: "veni1234", HostIfindex: 7, IPs: []netip.Addr{pod.IP}},
			{HostVeth: "veniold", IPs: []netip.Addr{netip.MustParseAddr("10.0.0.99")}}, // not on our ENIs
		}, nil
	}
	rep, err := Reconcile(bg, db, cloud, node, testConfig(), time.Now())
	wantErr(t, err, nil)
	if len(rep.Errors) != 0 || !slices.Equal(rep.AdoptedENIs, []string{"eni-1"}) || !slices.Equal(rep.RecoveredIPs, []netip.Addr{pod.IP}) {
		t.Fatalf("report %+v", rep)
	}
	var a store.Allocation
	_ = db.View(func(tx *store.ReadTx) (err error) { a, err = tx.AllocationByIP(pod.IP); return err })
	if a.Key != pod.Key || a.State != store.IPBound || !a.Recovered || a.NetNS != "/var/run/netns/c1" || a.HostVeth != "veni1234" {
		t.Fatalf("recovered allocation %+v", a)
	}
	for i := range len(ips) {
		r, err := Reserve(db, owner("new"+string(rune('a'+i))))
		if errors.Is(err, ErrPoolEmpty) {
			break
		}
		wantErr(t, err, nil)
		if r.IP == pod.IP {
			t.Fatalf("handed out %s, which the running pod holds", r.IP)
		}
	}
}

// Ensure that when the host's pods cannot be listed, no address the store
// did not know is recorded at all (the next pass retries), rather than
// recorded free.
func TestReconcile_HostUnreadable_RecordsNothing(t *testing.T) {
	old, cloud := mustStore(t), newFakeCloud()
	cloud.addVSwitch("vsw-a", "10.0.0.0/24", 200)
	mustENI(t, old, cloud, "eni-1", true, 4, time.Now())
	db := store.File{Path: filepath.Join(t.TempDir(), "veni.db")}
	node := testNode()
	node.HostPods = func(context.Context) ([]HostPod, error) { return nil, errors.New("netlink: permission denied") }
	cfg := testConfig()
	cfg.MinPoolSize = 0
	rep, err := Reconcile(bg, db, cloud, node, cfg, time.Now())
	wantErr(t, err, nil)
	if len(rep.Errors) == 0 {
		t.Fatalf("no error reported: %+v", rep)
	}
	if idle, used := poolCounts(t, db); idle != 0 || used != 0 {
		t.Fatalf("idle=%d used=%d: addresses recorded without knowing the host", idle, used)
	}
}

// Ensure an ENI is not drained when an ADD reserved on it after the pool
// snapshot that found it empty: markDraining checks in its own
// transaction and refuses (defect: it used to skip held addresses and the
// ENI was detached under the new pod).
func TestDeleteEmptyENIs_ReservedAfterSnapshot(t *testing.T) {
	db, cloud := mustStore(t), newFakeCloud()
	cloud.addVSwitch("vsw-a", "10.0.0.0/24", 200)
	long := time.Now().Add(-time.Hour)
	mustENI(t, db, cloud, "eni-1", true, 2, long)
	cfg := testConfig()
	cfg.MaxPoolSize, cfg.MinPoolSize = 0, 0
	p, err := snapshot(db) // what deleteEmptyENIs decides on
	wantErr(t, err, nil)
	r := mustReserve(t, db, "c1", false) // the ADD, in the window
	var rep Report
	wantErr(t, deleteEmptyENIs(bg, db, cloud, testNode(), cfg, p, time.Now(), &rep), nil)
	if len(rep.DeletedENIs) != 0 || cloud.count("DetachENI") != 0 || cloud.count("DeleteENI") != 0 {
		t.Fatalf("deleted %v (detach %d, delete %d) with %s reserved on it", rep.DeletedENIs, cloud.count("DetachENI"), cloud.count("DeleteENI"), r.IP)
	}
	_ = db.View(func(tx *store.ReadTx) error {
		e, err := tx.ENI("eni-1")
		if err != nil || e.State != store.ENIReady {
			t.Errorf("eni-1 = %+v, %v", e, err)
		}
		return nil
	})
}

// Ensure one Describe that omits an ENI (eventual consistency) changes
// nothing a pod can see; an ENI missing for missingSyncs syncs and
// missingFor stops handing out addresses, is drained when empty, and, while
// pods hold addresses on it, is kept and reported; one that comes back is
// forgotten as missing.
func TestReconcile_MissingENI(t *testing.T) {
	cases := []struct {
		name      string
		held      bool
		syncs     int
		span      time.Duration
		back      bool // listed again after the last miss
		wantState store.ENIState
		wantGone  bool
	}{
		{"one miss", false, 1, 0, false, store.ENIReady, false},
		{"many quick misses", false, 5, time.Minute, false, store.ENIReady, false},
		{"confirmed, empty", false, 3, 3 * time.Minute, false, "", true},
		{"confirmed, held", true, 3, 3 * time.Minute, false, store.ENIReady, true},
		{"back after misses", false, 2, time.Minute, true, store.ENIReady, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db, cloud := mustStore(t), newFakeCloud()
			cloud.addVSwitch("vsw-a", "10.0.0.0/24", 200)
			mustENI(t, db, cloud, "eni-1", true, 2, time.Now().Add(-time.Hour))
			if tc.held {
				mustReserve(t, db, "c1", true)
			}
			cfg := testConfig()
			cfg.MaxPoolSize, cfg.MinPoolSize = 10, 0
			hidden := *cloud.enis["eni-1"]
			delete(cloud.enis, "eni-1")
			start := time.Now()
			var rep Report
			for i := range tc.syncs {
				at := start
				if tc.syncs > 1 {
					at = start.Add(tc.span * time.Duration(i) / time.Duration(tc.syncs-1))
				}
				var err error
				rep, err = Reconcile(bg, db, cloud, testNode(), cfg, at)
				wantErr(t, err, nil)
			}
			if tc.back {
				cloud.enis["eni-1"] = &hidden
				_, err := Reconcile(bg, db, cloud, testNode(), cfg, start.Add(tc.span))
				wantErr(t, err, nil)
			}
			var e store.ENI
			err := db.View(func(tx *store.ReadTx) (err error) { e, err = tx.ENI("eni-1"); return err })
			if tc.wantState == "" {
				if !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("eni-1 still in the store: %+v", e)
				}
				return
			}
			if err != nil || e.State != tc.wantState || e.Gone() != tc.wantGone {
				t.Fatalf("eni-1 = %+v, %v; want %s gone=%v", e, err, tc.wantState, tc.wantGone)
			}
			if tc.back && e.Missing() {
				t.Errorf("still marked missing after it came back: %+v", e)
			}
			_, err = Reserve(db, owner("new"))
			if tc.wantGone && !errors.Is(err, ErrPoolEmpty) {
				t.Errorf("reserve on a gone ENI: %v", err)
			}
			if !tc.wantGone && err != nil {
				t.Errorf("reserve: %v", err)
			}
			if tc.held && len(rep.LostIPs) != 1 {
				t.Errorf("lost %v, want the held address", rep.LostIPs)
			}
		})
	}
}

// Ensure idle addresses are returned at most once per
// idle_ip_reclaim_interval.
func TestReconcile_ReclaimInterval(t *testing.T) {
	db, cloud := mustStore(t), newFakeCloud()
	cloud.addVSwitch("vsw-a", "10.0.0.0/24", 200)
	node, cfg := testNode(), testConfig()
	node.Limits.IPv4PerENI = 30
	cfg.MaxPoolSize, cfg.IdleReclaimBatch = 2, 2
	cfg.IdleReclaimAfter = 0
	freed := time.Now().Add(-time.Hour)
	mustENI(t, db, cloud, "eni-1", true, 10, freed)
	mustReserve(t, db, "c1", true)
	now := time.Now()
	for _, tc := range []struct {
		at   time.Duration
		want int
	}{{0, 2}, {time.Minute, 0}, {time.Duration(cfg.IdleReclaimEvery), 2}} {
		rep, err := Reconcile(bg, db, cloud, node, cfg, now.Add(tc.at))
		wantErr(t, err, nil)
		if len(rep.ReleasedIPs) != tc.want {
			t.Errorf("at +%s released %v, want %d", tc.at, rep.ReleasedIPs, tc.want)
		}
	}
}

// Ensure ENIs veni created for this node that never reached the store (the
// creator was killed right after CreateNetworkInterface) are deleted once
// older than lease_ttl, and nothing else is: young ones (their creator may
// be about to record them), attached ones, other nodes' and other owners'.
func TestSweepLeakedENIs(t *testing.T) {
	db, cloud := mustStore(t), newFakeCloud()
	cloud.addVSwitch("vsw-a", "10.0.0.0/24", 200)
	cfg := testConfig()
	now := time.Now()
	old, young := now.Add(-time.Duration(cfg.LeaseTTL)-time.Second), now.Add(-time.Second)
	ours := map[string]string{TagCreator: TagCreatorValue, TagInstance: testInstance}
	for _, e := range []eni.ENI{
		{ID: "eni-leaked", Status: eni.StatusAvailable, CreationTime: old, Tags: ours},
		{ID: "eni-young", Status: eni.StatusAvailable, CreationTime: young, Tags: ours},
		{ID: "eni-attached", Status: eni.StatusInUse, InstanceID: testInstance, CreationTime: old, Tags: ours},
		{ID: "eni-other-node", Status: eni.StatusAvailable, CreationTime: old, Tags: map[string]string{TagCreator: TagCreatorValue, TagInstance: "i-other"}},
		{ID: "eni-not-ours", Status: eni.StatusAvailable, CreationTime: old},
	} {
		cloud.addENI(e)
	}
	got, err := SweepLeakedENIs(bg, db, cloud, testNode(), cfg, now)
	wantErr(t, err, nil)
	if !slices.Equal(got, []string{"eni-leaked"}) {
		t.Fatalf("swept %v, want only eni-leaked", got)
	}
	for _, id := range []string{"eni-young", "eni-attached", "eni-other-node", "eni-not-ours"} {
		if _, ok := cloud.enis[id]; !ok {
			t.Errorf("%s deleted", id)
		}
	}
	mustHoldAllocator(t, db)
	if _, err := SweepLeakedENIs(bg, db, cloud, testNode(), cfg, now); !errors.Is(err, store.ErrLeaseHeld) {
		t.Errorf("sweep while another holds the allocator lease: %v", err)
	}
}

// Ensure a create cut short is swept by the next Reconcile even when
// metadata agrees with the store (no cloud sync is due), once lease_ttl has
// passed, and that a create that finishes leaves no mark behind.
func TestReconcile_CreateCutShortIsSwept(t *testing.T) {
	db, cloud := mustStore(t), newFakeCloud()
	cloud.addVSwitch("vsw-a", "10.0.0.0/24", 200)
	node, cfg := testNode(), testConfig()
	node.AttachedENIs = metadataOf(cloud)
	cfg.MinPoolSize, cfg.MaxPoolSize = 2, 4
	t0 := time.Now()
	// The first pass syncs, creates an ENI (clearing its own mark) and sweeps.
	_, err := Reconcile(bg, db, cloud, node, cfg, t0)
	wantErr(t, err, nil)
	if ps := poolState(t, db); !ps.CreatingSince.IsZero() {
		t.Fatalf("a finished create left CreatingSince %v", ps.CreatingSince)
	}

	// A creator killed after CreateNetworkInterface returned.
	ours := map[string]string{TagCreator: TagCreatorValue, TagInstance: testInstance}
	cloud.addENI(eni.ENI{ID: "eni-orphan", Status: eni.StatusAvailable, CreationTime: t0.Add(time.Minute), Tags: ours})
	if _, err := markCreating(db, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	rep, err := Reconcile(bg, db, cloud, node, cfg, t0.Add(time.Minute+time.Second))
	wantErr(t, err, nil)
	if rep.CloudSync != "" || len(rep.DeletedENIs) != 0 {
		t.Fatalf("within lease_ttl of the create: %+v", rep)
	}
	later := t0.Add(time.Minute + time.Duration(cfg.LeaseTTL) + time.Second)
	rep, err = Reconcile(bg, db, cloud, node, cfg, later)
	wantErr(t, err, nil)
	if !slices.Equal(rep.DeletedENIs, []string{"eni-orphan"}) || rep.CloudSync != "" {
		t.Fatalf("after lease_ttl: %+v", rep)
	}
	if ps := poolState(t, db); !ps.CreatingSince.IsZero() {
		t.Errorf("mark kept after the sweep: %v", ps.CreatingSince)
	}
}

func poolState(tb testing.TB, db Store) store.PoolState {
	tb.Helper()
	var ps store.PoolState
	err := db.View(func(tx *store.ReadTx) error {
		var err error
		ps, err = tx.PoolState()
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return ps
}
