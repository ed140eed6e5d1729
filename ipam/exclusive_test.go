package ipam

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/eni"
	"github.com/veni-cni/veni/store"
)

func exclusiveConfigForTest() config.Config {
	c := testConfig()
	c.ExclusiveENIType = config.ExclusiveENIOnly
	c.MinPoolSize, c.MaxPoolSize = 0, 0
	return c
}

func exclusiveENIs(tb testing.TB, db Store) []store.ENI {
	tb.Helper()
	var out []store.ENI
	if err := db.View(func(tx *store.ReadTx) error {
		enis, err := tx.ENIs()
		for _, e := range enis {
			if e.Kind == store.ENIExclusive {
				out = append(out, e)
			}
		}
		return err
	}); err != nil {
		tb.Fatal(err)
	}
	return out
}

// Ensure a cold exclusive ADD creates an ENI in the pod's groups, records
// it with its pod as owner and its primary address reserved, and a release
// gives it back as a warm ENI that the next pod with the same groups takes
// with no cloud call, while a pod of other groups gets a new one.
func TestAllocateExclusive_ColdWarmReuse(t *testing.T) {
	db := mustStore(t)
	cloud := newFakeCloud()
	cloud.addVSwitch("vsw-a", "10.0.0.0/24", 100)
	node, cfg := testNode(), exclusiveConfigForTest()
	ctx := context.Background()

	res, err := AllocateExclusive(ctx, db, cloud, node, cfg, owner("a"), ExclusiveRequest{Pod: "default/pod-a"})
	wantErr(t, err, nil)
	if res.ENI.Kind != store.ENIExclusive || res.ENI.Pod != "default/pod-a" || res.IP != res.ENI.PrimaryIP || res.ENI.State != store.ENIReady {
		t.Fatalf("reservation %+v", res)
	}
	if !slices.Equal(res.ENI.SecurityGroupIDs, []string{"sg-1"}) {
		t.Errorf("groups %v, want the node's [sg-1]", res.ENI.SecurityGroupIDs)
	}
	if c := cloud.count("CreateENI") + cloud.count("AttachENI"); c != 2 {
		t.Errorf("cold ADD made %d create/attach calls, want 2", c)
	}
	wantErr(t, Commit(db, res.Key, HostSide{}, nil), nil)
	var ps store.PoolState
	_ = db.View(func(tx *store.ReadTx) (err error) { ps, err = tx.PoolState(); return err })
	if ps.ENIMode != config.ENIModeExclusive {
		t.Errorf("store's ENI mode %q, want exclusive", ps.ENIMode)
	}

	wantErr(t, Release(db, res.Key), nil)
	if e := exclusiveENIs(t, db); len(e) != 1 || e[0].Pod != "" {
		t.Fatalf("after release: %+v, want one warm ENI", e)
	}
	calls := cloud.total()
	res2, err := AllocateExclusive(ctx, db, cloud, node, cfg, owner("b"), ExclusiveRequest{Pod: "default/pod-b"})
	wantErr(t, err, nil)
	if res2.ENI.ID != res.ENI.ID || cloud.total() != calls {
		t.Errorf("warm ADD got %s with %d cloud calls, want the warm %s with none", res2.ENI.ID, cloud.total()-calls, res.ENI.ID)
	}
	res3, err := AllocateExclusive(ctx, db, cloud, node, cfg, owner("c"), ExclusiveRequest{Pod: "default/pod-c", SecurityGroupIDs: []string{"sg-web"}})
	wantErr(t, err, nil)
	if res3.ENI.ID == res.ENI.ID || !slices.Equal(res3.ENI.SecurityGroupIDs, []string{"sg-web"}) {
		t.Errorf("pod of sg-web got %s in %v", res3.ENI.ID, res3.ENI.SecurityGroupIDs)
	}
}

// Ensure the node takes one exclusive pod per secondary ENI (ENIs − 1) and
// refuses the next with ErrPoolExhausted and a message that says why.
func TestAllocateExclusive_Exhausted(t *testing.T) {
	db := mustStore(t)
	cloud := newFakeCloud()
	cloud.addVSwitch("vsw-a", "10.0.0.0/24", 100)
	node, cfg := testNode(), exclusiveConfigForTest() // 3 ENIs: 2 pods
	ctx := context.Background()
	if got := MaxPods(node, cfg); got != 2 {
		t.Errorf("MaxPods = %d, want 2", got)
	}
	for _, cid := range []string{"a", "b"} {
		_, err := AllocateExclusive(ctx, db, cloud, node, cfg, owner(cid), ExclusiveRequest{Pod: "default/pod-" + cid})
		wantErr(t, err, nil)
	}
	start := time.Now()
	_, err := AllocateExclusive(ctx, db, cloud, node, cfg, owner("c"), ExclusiveRequest{Pod: "default/pod-c"})
	wantErr(t, err, ErrPoolExhausted)
	if !strings.Contains(err.Error(), "2 of 2 secondary enis") || time.Since(start) > time.Second {
		t.Errorf("refusal %q after %s", err, time.Since(start))
	}
}

// Ensure the shared pool never hands out a dedicated ENI's address, and a
// node keeps its ENI mode: a store in exclusive mode refuses a shared
// reservation and the other way round, with ErrModeMismatch.
func TestExclusive_SharedPoolAndMode(t *testing.T) {
	db := mustStore(t)
	cloud := newFakeCloud()
	cloud.addVSwitch("vsw-a", "10.0.0.0/24", 100)
	node, cfg := testNode(), exclusiveConfigForTest()
	ctx := context.Background()
	res, err := AllocateExclusive(ctx, db, cloud, node, cfg, owner("a"), ExclusiveRequest{Pod: "default/pod-a"})
	wantErr(t, err, nil)
	wantErr(t, Release(db, res.Key), nil) // a warm ENI with a free address

	_, err = Reserve(db, owner("s"))
	wantErr(t, err, ErrPoolEmpty)
	shared := testConfig()
	_, err = reserve(db, owner("s"), &shared)
	wantErr(t, err, ErrModeMismatch)
	if !strings.Contains(err.Error(), "exclusive-mode-eni-type") {
		t.Errorf("mismatch does not name the label: %v", err)
	}
	if free, _ := countPoolOf(t, db); free != 0 {
		t.Errorf("the shared pool counts %d free addresses on an exclusive ENI", free)
	}

	db2 := mustStore(t)
	mustENI(t, db2, cloud, "eni-s", true, 2, time.Now())
	_, err = AllocateExclusive(ctx, db2, cloud, node, cfg, owner("x"), ExclusiveRequest{Pod: "default/x"})
	wantErr(t, err, ErrModeMismatch)
}

func countPoolOf(tb testing.TB, db Store) (int, int) {
	tb.Helper()
	p, err := snapshot(db)
	if err != nil {
		tb.Fatal(err)
	}
	return countPool(p)
}

// Ensure Reconcile on an exclusive node keeps min_pool_size warm ENIs,
// deletes warm ENIs above max_pool_size (those in other groups first) and
// ENIs a crashed create left attaching, and never touches a pod's ENI.
func TestReconcile_ExclusivePool(t *testing.T) {
	db := mustStore(t)
	cloud := newFakeCloud()
	cloud.addVSwitch("vsw-a", "10.0.0.0/24", 100)
	node := testNode()
	node.Limits.ENIs = 5
	cfg := exclusiveConfigForTest()
	cfg.MinPoolSize, cfg.MaxPoolSize = 2, 2
	ctx := context.Background()

	rep, err := Reconcile(ctx, db, cloud, node, cfg, time.Now())
	wantErr(t, err, nil)
	if rep.Idle != 2 || len(exclusiveENIs(t, db)) != 2 {
		t.Fatalf("after the first pass: %+v, %d exclusive ENIs; want 2 warm", rep, len(exclusiveENIs(t, db)))
	}
	// A pod takes one; one of other groups comes back warm.
	held, err := AllocateExclusive(ctx, db, cloud, node, cfg, owner("a"), ExclusiveRequest{Pod: "default/pod-a"})
	wantErr(t, err, nil)
	other, err := AllocateExclusive(ctx, db, cloud, node, cfg, owner("b"), ExclusiveRequest{Pod: "default/pod-b", SecurityGroupIDs: []string{"sg-web"}})
	wantErr(t, err, nil)
	wantErr(t, Release(db, other.Key), nil)
	cfg.MinPoolSize, cfg.MaxPoolSize = 1, 1
	rep, err = Reconcile(ctx, db, cloud, node, cfg, time.Now())
	wantErr(t, err, nil)
	if len(rep.Errors) > 0 {
		t.Fatalf("errors: %v", rep.Errors)
	}
	if !slices.Contains(rep.DeletedENIs, other.ENI.ID) {
		t.Errorf("deleted %v, want the sg-web ENI %s among them", rep.DeletedENIs, other.ENI.ID)
	}
	var warm, mine int
	for _, e := range exclusiveENIs(t, db) {
		switch {
		case e.ID == held.ENI.ID:
			mine++
			if e.Pod != "default/pod-a" {
				t.Errorf("the pod's ENI lost its owner: %+v", e)
			}
		case e.Pod == "":
			warm++
			if !slices.Equal(e.SecurityGroupIDs, []string{"sg-1"}) {
				t.Errorf("kept warm ENI %s of %v, want the node's groups", e.ID, e.SecurityGroupIDs)
			}
		}
	}
	if warm != 1 || mine != 1 {
		t.Errorf("%d warm and %d held, want 1 and 1", warm, mine)
	}
	if _, ok := cloud.enis[held.ENI.ID]; !ok {
		t.Errorf("the pod's ENI was deleted in the cloud")
	}
}

// Ensure a retired exclusive ENI (its link lost) is never given to another
// pod and the daemon deletes it once its pod is released.
func TestRetireExclusive(t *testing.T) {
	db := mustStore(t)
	cloud := newFakeCloud()
	cloud.addVSwitch("vsw-a", "10.0.0.0/24", 100)
	node, cfg := testNode(), exclusiveConfigForTest()
	ctx := context.Background()
	res, err := AllocateExclusive(ctx, db, cloud, node, cfg, owner("a"), ExclusiveRequest{Pod: "default/pod-a"})
	wantErr(t, err, nil)
	wantErr(t, RetireExclusive(db, res.ENI.ID, "link gone"), nil)
	wantErr(t, Release(db, res.Key), nil)
	res2, err := AllocateExclusive(ctx, db, cloud, node, cfg, owner("b"), ExclusiveRequest{Pod: "default/pod-b"})
	wantErr(t, err, nil)
	if res2.ENI.ID == res.ENI.ID {
		t.Fatalf("a retired ENI was given to another pod")
	}
	rep, err := Reconcile(ctx, db, cloud, node, cfg, time.Now())
	wantErr(t, err, nil)
	if !slices.Contains(rep.DeletedENIs, res.ENI.ID) {
		t.Errorf("deleted %v, want the retired %s", rep.DeletedENIs, res.ENI.ID)
	}
	if errors.Join(rep.Errors...) != nil {
		t.Errorf("errors: %v", rep.Errors)
	}
}

// Ensure IP stick holds for exclusive ENIs: a pod released with StickFor
// keeps its ENI (and so its address) for its next incarnation, which gets
// it back, while another pod may not take it meanwhile.
func TestAllocateExclusive_Stick(t *testing.T) {
	db := mustStore(t)
	cloud := newFakeCloud()
	cloud.addVSwitch("vsw-a", "10.0.0.0/24", 100)
	node, cfg := testNode(), exclusiveConfigForTest()
	ctx := context.Background()
	o := owner("a")
	o.StickFor = time.Minute
	res, err := AllocateExclusive(ctx, db, cloud, node, cfg, o, ExclusiveRequest{Pod: "default/pod-a"})
	wantErr(t, err, nil)
	wantErr(t, Release(db, res.Key), nil)
	other, err := AllocateExclusive(ctx, db, cloud, node, cfg, owner("b"), ExclusiveRequest{Pod: "default/pod-b"})
	wantErr(t, err, nil)
	if other.ENI.ID == res.ENI.ID {
		t.Fatalf("another pod took the ENI kept for default/pod-a")
	}
	again, err := AllocateExclusive(ctx, db, cloud, node, cfg, owner("a2"), ExclusiveRequest{Pod: "default/pod-a"})
	wantErr(t, err, nil)
	if again.ENI.ID != res.ENI.ID || again.IP != res.IP {
		t.Errorf("the pod came back to %s (%s), want its %s (%s)", again.ENI.ID, again.IP, res.ENI.ID, res.IP)
	}
}

// Ensure the shared pool leaves a dedicated ENI alone (a trunk member here;
// an exclusive ENI alike): its addresses are never reserved for another
// pod, counted as idle, reclaimed, nor is it deleted as empty.
func TestReconcile_SharedSkipsDedicated(t *testing.T) {
	db, cloud := mustStore(t), newFakeCloud()
	cloud.addVSwitch("vsw-a", "10.0.0.0/24", 200)
	node, cfg := testNode(), testConfig()
	node.Limits.ENIs = 5
	cfg.MinPoolSize, cfg.MaxPoolSize = 0, 0
	cfg.IdleReclaimAfter = 0
	long := time.Now().Add(-time.Hour)
	mustENI(t, db, cloud, "eni-s", true, 2, long)
	dedicated := mustENI(t, db, cloud, "eni-m", true, 3, long)
	cloud.mu.Lock()
	cloud.enis["eni-m"].Type, cloud.enis["eni-m"].TrunkID, cloud.enis["eni-m"].DeviceIndex = eni.TypeMember, "eni-s", 5
	cloud.enis["eni-s"].Type = eni.TypeTrunk
	cloud.mu.Unlock()
	mustUpdate(t, db, func(tx *store.WriteTx) error {
		e, err := tx.ENI("eni-m")
		if err != nil {
			return err
		}
		// A member a pod holds (the daemon reclaims only idle ones), on
		// eni-s as the node's trunk, and so in the cloud too.
		e.Kind, e.TrunkID, e.VLANID, e.Pod = store.ENIMember, "eni-s", 5, "default/db"
		s, err := tx.ENI("eni-s")
		if err != nil {
			return err
		}
		s.Kind = store.ENITrunk
		if err := tx.PutENI(s); err != nil {
			return err
		}
		return tx.PutENI(e)
	})
	var keys []store.OwnerKey
	for i := 0; ; i++ {
		r, err := Reserve(db, owner(string(rune('a'+i))))
		if errors.Is(err, ErrPoolEmpty) {
			break
		}
		wantErr(t, err, nil)
		if r.ENI.ID == "eni-m" || i > 10 {
			t.Fatalf("the shared pool handed out %s of %s", r.IP, r.ENI.ID)
		}
		keys = append(keys, r.Key)
	}
	if len(keys) != 2 {
		t.Fatalf("reserved %d addresses, want eni-s's 2", len(keys))
	}
	for _, k := range keys {
		wantErr(t, Release(db, k), nil)
	}
	rep, err := Reconcile(bg, db, cloud, node, cfg, time.Now())
	wantErr(t, err, nil)
	if slices.Contains(rep.DeletedENIs, "eni-m") || len(cloud.ipsOf("eni-m")) != len(dedicated) {
		t.Errorf("the dedicated ENI was deleted or lost addresses: deleted %v, cloud ips %v", rep.DeletedENIs, cloud.ipsOf("eni-m"))
	}
	for _, a := range rep.ReleasedIPs {
		if slices.Contains(dedicated, a) {
			t.Errorf("reclaimed %s of the dedicated ENI", a)
		}
	}
}
