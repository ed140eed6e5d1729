package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/eni"
	"github.com/veni-cni/veni/store"
)

// Ensure a pool below min_pool_size is filled towards max_pool_size in one
// call where that reaches min_pool_size, in batches the API accepts.
func TestReconcile_TopUp(t *testing.T) {
	cases := []struct {
		name      string
		min, max  int
		perENI    int
		wantIdle  int
		wantCalls int // AssignPrivateIPs
	}{
		{"small", 3, 5, 20, 5, 1},
		{"batched by ten", 15, 20, 20, 15, 2},
		{"spills to a new eni", 8, 10, 6, 10, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db, cloud := mustStore(t), newFakeCloud()
			cloud.addVSwitch("vsw-a", "10.0.0.0/24", 200)
			mustENI(t, db, cloud, "eni-1", true, 0, time.Now())
			node, cfg := testNode(), testConfig()
			node.Limits.IPv4PerENI = tc.perENI + 1
			cfg.MinPoolSize, cfg.MaxPoolSize = tc.min, tc.max
			rep, err := Reconcile(bg, db, cloud, node, cfg, time.Now())
			wantErr(t, err, nil)
			if rep.Idle != tc.wantIdle || rep.AddedIPs != tc.wantIdle || len(rep.Errors) != 0 {
				t.Errorf("report %+v", rep)
			}
			if n := cloud.count("AssignPrivateIPs"); n != tc.wantCalls {
				t.Errorf("AssignPrivateIPs called %d times, want %d", n, tc.wantCalls)
			}
		})
	}
}

// Ensure idle IPs above max_pool_size go back to the cloud only after the
// cool-down, at most a batch per run, and leave the cloud too.
func TestReconcile_ReclaimIdle(t *testing.T) {
	freed := time.Now()
	cases := []struct {
		name         string
		free, batch  int
		at           time.Duration // after the IPs were freed
		wantReleased int
	}{
		{"in cool-down", 8, 5, time.Minute, 0},
		{"after cool-down", 8, 5, 11 * time.Minute, 2},
		{"batch", 20, 5, 11 * time.Minute, 5},
		{"within max", 6, 5, time.Hour, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db, cloud := mustStore(t), newFakeCloud()
			cloud.addVSwitch("vsw-a", "10.0.0.0/24", 200)
			node, cfg := testNode(), testConfig()
			node.Limits.IPv4PerENI = 30
			cfg.MaxPoolSize, cfg.IdleReclaimBatch = 5, tc.batch
			cfg.IdleReclaimAfter = config.Duration(10 * time.Minute)
			mustENI(t, db, cloud, "eni-1", true, tc.free, freed)
			mustReserve(t, db, "c1", true) // keeps the ENI itself
			rep, err := Reconcile(bg, db, cloud, node, cfg, freed.Add(tc.at))
			wantErr(t, err, nil)
			if len(rep.ReleasedIPs) != tc.wantReleased || len(rep.Errors) != 0 {
				t.Fatalf("released %v, errors %v; want %d", rep.ReleasedIPs, rep.Errors, tc.wantReleased)
			}
			inCloud := cloud.ipsOf("eni-1")
			for _, a := range rep.ReleasedIPs {
				if slices.Contains(inCloud, a) {
					t.Errorf("%s released but still assigned in the cloud", a)
				}
			}
			if idle, _ := poolCounts(t, db); idle != tc.free-1-tc.wantReleased {
				t.Errorf("idle = %d", idle)
			}
		})
	}
}

// Ensure an owned ENI with no held IP is deleted when not needed, and the
// primary ENI and ENIs veni did not create never are.
func TestReconcile_DeleteEmptyENI(t *testing.T) {
	db, cloud := mustStore(t), newFakeCloud()
	cloud.addVSwitch("vsw-a", "10.0.0.0/24", 200)
	node, cfg := testNode(), testConfig()
	node.Limits.ENIs = 5
	cfg.MinPoolSize, cfg.MaxPoolSize = 2, 5
	long := time.Now().Add(-time.Hour)
	mustENI(t, db, cloud, "eni-busy", true, 2, long)
	mustReserve(t, db, "c1", true)
	mustENI(t, db, cloud, "eni-empty", true, 3, long)
	mustENI(t, db, cloud, "eni-foreign", false, 2, long)
	mustENI(t, db, cloud, node.PrimaryENIID, true, 2, long)
	rep, err := Reconcile(bg, db, cloud, node, cfg, time.Now())
	wantErr(t, err, nil)
	if !slices.Equal(rep.DeletedENIs, []string{"eni-empty"}) || len(rep.Errors) != 0 {
		t.Fatalf("deleted %v, errors %v", rep.DeletedENIs, rep.Errors)
	}
	if _, ok := cloud.enis["eni-empty"]; ok {
		t.Error("eni-empty still exists in the cloud")
	}
	for _, id := range []string{"eni-busy", "eni-foreign", node.PrimaryENIID} {
		if _, ok := cloud.enis[id]; !ok {
			t.Errorf("%s was deleted", id)
		}
	}
	if cloud.count("DetachENI") != 1 || cloud.count("DeleteENI") != 1 {
		t.Errorf("calls %v", cloud.calls)
	}
	if len(rep.ReleasedIPs) != 3 || rep.Idle != 5 {
		t.Errorf("released %v", rep.ReleasedIPs)
	}
	// Second run: the pool is within bounds; the rest is needed or not ours.
	rep, err = Reconcile(bg, db, cloud, node, cfg, time.Now())
	wantErr(t, err, nil)
	if len(rep.DeletedENIs) != 0 {
		t.Errorf("second run deleted %v", rep.DeletedENIs)
	}
}

// Ensure the store follows the cloud: IPs it lacks are added free, free IPs
// the cloud dropped are dropped, held ones are reported, and an attached ENI
// veni created but forgot (crash) is adopted.
func TestReconcile_Sync(t *testing.T) {
	db, cloud := mustStore(t), newFakeCloud()
	cloud.addVSwitch("vsw-a", "10.0.0.0/24", 200)
	node, cfg := testNode(), testConfig()
	cfg.MaxPoolSize = 20
	long := time.Now().Add(-time.Hour)
	ips := mustENI(t, db, cloud, "eni-1", true, 3, long)
	bound := mustReserve(t, db, "c1", true)
	// The cloud loses a free IP and the bound one, and gains one.
	extra := netip.MustParseAddr("10.0.0.200")
	var gone netip.Addr
	for _, a := range ips {
		if a != bound.IP {
			gone = a
			break
		}
	}
	e := cloud.enis["eni-1"]
	e.PrivateIPs = slices.DeleteFunc(e.PrivateIPs, func(a netip.Addr) bool { return a == gone || a == bound.IP })
	e.PrivateIPs = append(e.PrivateIPs, extra)
	// An ENI veni made for this node, attached, missing from the store.
	cloud.addENI(eni.ENI{
		ID: "eni-lost", Type: eni.TypeSecondary, Status: eni.StatusInUse, InstanceID: testInstance, VSwitchID: "vsw-a",
		MAC: []byte{2, 0, 0, 0, 7, 7}, PrimaryIP: netip.MustParseAddr("10.0.0.150"),
		PrivateIPs: []netip.Addr{netip.MustParseAddr("10.0.0.150"), netip.MustParseAddr("10.0.0.151")},
		Tags:       map[string]string{TagCreator: TagCreatorValue, TagInstance: testInstance},
	})
	// Someone else's ENI on the node: left alone.
	cloud.addENI(eni.ENI{ID: "eni-other", Type: eni.TypeSecondary, Status: eni.StatusInUse, InstanceID: testInstance, VSwitchID: "vsw-a"})

	rep, err := Reconcile(bg, db, cloud, node, cfg, time.Now())
	wantErr(t, err, nil)
	check := []struct {
		name      string
		got, want []netip.Addr
	}{
		{"synced", rep.SyncedIPs, []netip.Addr{extra}},
		{"dropped", rep.DroppedIPs, []netip.Addr{gone}},
		{"lost", rep.LostIPs, []netip.Addr{bound.IP}},
	}
	for _, c := range check {
		if !slices.Equal(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if !slices.Equal(rep.AdoptedENIs, []string{"eni-lost"}) {
		t.Errorf("adopted %v", rep.AdoptedENIs)
	}
	_ = db.View(func(tx *store.ReadTx) error {
		if _, err := tx.ENI("eni-other"); err == nil {
			t.Error("adopted an ENI veni did not create")
		}
		ip, err := tx.IP(netip.MustParseAddr("10.0.0.151"))
		if err != nil || ip.ENIID != "eni-lost" || ip.State != store.IPFree {
			t.Errorf("adopted ENI's IP = %+v, %v", ip, err)
		}
		return nil
	})
}

// Ensure an ENI whose create/attach was cut short by a crash is cleaned up.
func TestReconcile_CrashedAttach(t *testing.T) {
	db, cloud := mustStore(t), newFakeCloud()
	cloud.addVSwitch("vsw-a", "10.0.0.0/24", 200)
	cloud.addENI(eni.ENI{ID: "eni-half", Type: eni.TypeSecondary, Status: eni.StatusAvailable, VSwitchID: "vsw-a"})
	mustUpdate(t, db, func(tx *store.WriteTx) error {
		return tx.PutENI(store.ENI{ID: "eni-half", InstanceID: testInstance, VSwitchID: "vsw-a", Owned: true, State: store.ENIAttaching, CreatedAt: time.Now().Add(-missingFor)})
	})
	cfg := testConfig()
	cfg.MinPoolSize = 0
	rep, err := Reconcile(bg, db, cloud, testNode(), cfg, time.Now())
	wantErr(t, err, nil)
	if !slices.Equal(rep.DeletedENIs, []string{"eni-half"}) {
		t.Fatalf("report %+v", rep)
	}
	if _, ok := cloud.enis["eni-half"]; ok {
		t.Error("leaked eni-half in the cloud")
	}
}

// Ensure a Reconcile that finds the allocator lease held does nothing.
func TestReconcile_LeaseHeld(t *testing.T) {
	db, cloud := mustStore(t), newFakeCloud()
	cloud.addVSwitch("vsw-a", "10.0.0.0/24", 200)
	mustHoldAllocator(t, db)
	cfg := testConfig()
	cfg.MinPoolSize = 3
	rep, err := Reconcile(bg, db, cloud, testNode(), cfg, time.Now())
	wantErr(t, err, nil)
	if !rep.LeaseHeld || cloud.total() != 0 {
		t.Errorf("report %+v, calls %v", rep, cloud.calls)
	}
}

// Ensure the warm-up fills the pool once, not on every run.
func TestReconcile_WarmUp(t *testing.T) {
	db, cloud := mustStore(t), newFakeCloud()
	cloud.addVSwitch("vsw-a", "10.0.0.0/24", 200)
	node, cfg := testNode(), testConfig()
	node.Limits.IPv4PerENI = 30
	cfg.IPWarmUpSize, cfg.MaxPoolSize = 8, 10
	mustENI(t, db, cloud, "eni-1", true, 0, time.Now())
	for run, want := range []int{8, 0} {
		rep, err := Reconcile(bg, db, cloud, node, cfg, time.Now())
		wantErr(t, err, nil)
		if rep.AddedIPs != want {
			t.Errorf("run %d added %d, want %d", run, rep.AddedIPs, want)
		}
		for i := range 8 { // pods take the warm IPs
			if run == 0 {
				mustReserve(t, db, fmt.Sprint("c", i), true)
			}
		}
	}
}

// metadataOf is what instance metadata would list for the fake cloud's
// ENIs on the test instance.
func metadataOf(cloud *fakeCloud) func(context.Context) ([]eni.MetadataENI, error) {
	return func(context.Context) ([]eni.MetadataENI, error) {
		cloud.mu.Lock()
		defer cloud.mu.Unlock()
		var out []eni.MetadataENI
		for id, e := range cloud.enis {
			if e.Status == eni.StatusAttaching { // time passes for metadata too
				if cloud.pending[id] <= 0 {
					e.Status = eni.StatusInUse
				}
				cloud.pending[id]--
			}
			if e.InstanceID == testInstance && e.Status == eni.StatusInUse {
				out = append(out, eni.MetadataENI{ID: e.ID, MAC: e.MAC, PrimaryIP: e.PrimaryIP, PrivateIPs: slices.Clone(e.PrivateIPs)})
			}
		}
		return out, nil
	}
}

// Ensure the steady state costs no OpenAPI call: Reconcile describes ENIs
// only when metadata and the store disagree or cloud_sync_interval is due.
func TestReconcile_CloudSyncOnlyWhenMetadataDisagrees(t *testing.T) {
	db, cloud := mustStore(t), newFakeCloud()
	cloud.addVSwitch("vsw-a", "10.0.0.0/24", 200)
	mustENI(t, db, cloud, "eni-1", true, 4, time.Now())
	node, cfg := testNode(), testConfig()
	node.AttachedENIs = metadataOf(cloud)
	cfg.MinPoolSize, cfg.MaxPoolSize = 2, 6
	cfg.CloudSyncInterval = config.Duration(time.Hour)
	t0 := time.Now()

	step := func(at time.Duration, wantWhy string, wantDescribes int) {
		t.Helper()
		before := cloud.count("ENIs")
		rep, err := Reconcile(bg, db, cloud, node, cfg, t0.Add(at))
		wantErr(t, err, nil)
		if !strings.Contains(rep.CloudSync, wantWhy) || (wantWhy == "") != (rep.CloudSync == "") {
			t.Errorf("at %v: CloudSync %q, want %q", at, rep.CloudSync, wantWhy)
		}
		if n := cloud.count("ENIs") - before; n != wantDescribes {
			t.Errorf("at %v: %d describes, want %d", at, n, wantDescribes)
		}
	}
	// A new store whose ENIs metadata confirms starts the interval's clock
	// without a call: nodes booting together must not spend the budget.
	step(0, "", 0)
	step(time.Minute, "", 0)
	step(2*time.Minute, "", 0)

	// Someone assigns an address behind veni's back: metadata shows it.
	cloud.mu.Lock()
	a, err := cloud.takeIP("vsw-a")
	if err != nil {
		t.Fatal(err)
	}
	cloud.enis["eni-1"].PrivateIPs = append(cloud.enis["eni-1"].PrivateIPs, a)
	cloud.mu.Unlock()
	// The first sync also sweeps for leaked ENIs (a second describe, by
	// tag); later ones sweep at most every leakSweepEvery.
	step(3*time.Minute, "the store lacks", 2)
	step(4*time.Minute, "", 0)

	// An ENI detached by hand disappears from metadata.
	cloud.mu.Lock()
	cloud.enis["eni-1"].Status = eni.StatusAvailable
	cloud.mu.Unlock()
	step(5*time.Minute, "not attached in metadata", 1)
	cloud.mu.Lock()
	cloud.enis["eni-1"].Status = eni.StatusInUse
	cloud.mu.Unlock()

	// Metadata down: sync through the OpenAPI rather than trust nothing.
	node.AttachedENIs = func(context.Context) ([]eni.MetadataENI, error) { return nil, errors.New("connection refused") }
	step(6*time.Minute, "metadata unreadable", 1)
	node.AttachedENIs = metadataOf(cloud)

	// The safety sync comes within [0.75, 1.25) of the interval.
	step(6*time.Minute+80*time.Minute, "cloud_sync_interval", 2)
}

// Ensure a new ENI on the node's own vSwitch, the only candidate, costs no
// DescribeVSwitches: metadata gave its CIDR. With a choice to make, or a
// CIDR unknown, the vSwitches are described.
// Ensure a daemon waits for a new ENI's attach in instance metadata, not
// with DescribeNetworkInterfaces, and still gets there when metadata
// fails.
func TestGrow_AttachWaitReadsMetadata(t *testing.T) {
	for _, tc := range []struct {
		name      string
		metadata  string // "", "ok", "down"
		describes bool
	}{
		{"no metadata (the plugin)", "", true},
		{"metadata", "ok", false},
		{"metadata down", "down", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, cloud := mustStore(t), newFakeCloud()
			cloud.addVSwitch("vsw-a", "10.0.0.0/24", 200)
			cloud.attachIn = 2
			node, cfg := testNode(), testConfig()
			node.VSwitchCIDR = netip.MustParsePrefix("10.0.0.0/24")
			switch tc.metadata {
			case "ok":
				node.AttachedENIs = metadataOf(cloud)
			case "down":
				node.AttachedENIs = func(context.Context) ([]eni.MetadataENI, error) { return nil, errors.New("connection refused") }
			}
			cfg.MinPoolSize, cfg.MaxPoolSize = 3, 5
			cfg.CloudSyncInterval = config.Duration(time.Hour)
			rep, err := Reconcile(bg, db, cloud, node, cfg, time.Now())
			wantErr(t, err, nil)
			if cloud.count("CreateENI") != 1 || rep.Idle != 5 {
				t.Fatalf("report %+v, calls %v: want one ENI with 5 free addresses", rep, cloud.calls)
			}
			if got := cloud.count("ENIs") > 0; got != tc.describes {
				t.Errorf("DescribeNetworkInterfaces called: %v, want %v (calls %v)", got, tc.describes, cloud.calls)
			}
		})
	}
}

func TestGrow_NodeVSwitchNeedsNoDescribe(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cidr      string
		vswitches []string
		want      int
	}{
		{"node's vswitch, cidr known", "10.0.0.0/24", []string{"vsw-a"}, 0},
		{"cidr unknown", "", []string{"vsw-a"}, 1},
		{"two candidates", "10.0.0.0/24", []string{"vsw-a", "vsw-b"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, cloud := mustStore(t), newFakeCloud()
			cloud.addVSwitch("vsw-a", "10.0.0.0/24", 200)
			cloud.addVSwitch("vsw-b", "10.0.1.0/24", 100)
			node, cfg := testNode(), testConfig()
			if tc.cidr != "" {
				node.VSwitchCIDR = netip.MustParsePrefix(tc.cidr)
			}
			cfg.VSwitches = map[string][]string{"zone-a": tc.vswitches}
			cfg.MinPoolSize, cfg.MaxPoolSize = 2, 5
			rep, err := Reconcile(bg, db, cloud, node, cfg, time.Now())
			wantErr(t, err, nil)
			if rep.Idle < 2 || cloud.count("CreateENI") != 1 {
				t.Fatalf("report %+v, calls %v", rep, cloud.calls)
			}
			if n := cloud.count("VSwitches"); n != tc.want {
				t.Errorf("DescribeVSwitches called %d times, want %d", n, tc.want)
			}
		})
	}
}
