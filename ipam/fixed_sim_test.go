package ipam

import (
	"context"
	"errors"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/eni"
	"github.com/veni-cni/veni/eni/sim"
	"github.com/veni-cni/veni/store"
)

// fixedWorld is a simulated region (the unchanged SDK against the sim's
// OpenAPI) with three ecs.g7.large nodes, each with its own store: a and
// b in zone cn-hangzhou-h, far in cn-hangzhou-k. The nodes share nothing
// but the cloud, as real ones.
type fixedWorld struct {
	cloud  *sim.Cloud
	client *eni.AlibabaClient
	nodes  map[string]*fixedNode
}

type fixedNode struct {
	node Node
	cfg  config.Config
	db   store.File
}

func mustFixedWorld(tb testing.TB, exclusive bool) *fixedWorld {
	tb.Helper()
	scfg := sim.DefaultConfig()
	scfg.AttachDelay, scfg.DetachDelay = 10*time.Millisecond, 10*time.Millisecond
	scfg.Credentials = map[string]string{"ak": "sk"}
	scfg.VSwitches = append(scfg.VSwitches, sim.VSwitchSpec{ID: "vsw-sim-far", ZoneID: "cn-hangzhou-k", CIDR: netip.MustParsePrefix("172.30.9.0/24")})
	c, err := sim.New(scfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	api := httptest.NewServer(c.APIHandler())
	tb.Cleanup(api.Close)
	fast := make(map[string]eni.RateLimit)
	for action := range eni.DefaultRateLimits() {
		fast[action] = eni.RateLimit{PerSecond: 1000, Burst: 100}
	}
	client, err := eni.NewAlibabaClient(eni.AlibabaOptions{
		RegionID: "cn-hangzhou", Endpoint: strings.TrimPrefix(api.URL, "http://"), Scheme: "http",
		Credentials: eni.Credentials{AccessKeyID: "ak", AccessKeySecret: "sk"},
		Retry:       eni.RetryPolicy{MaxAttempts: 3, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond},
		RateLimits:  fast, CallTimeout: 5 * time.Second,
	})
	if err != nil {
		tb.Fatal(err)
	}
	w := &fixedWorld{cloud: c, client: client, nodes: map[string]*fixedNode{}}
	for name, vsw := range map[string]string{"a": "vsw-sim-a", "b": "vsw-sim-a", "far": "vsw-sim-far"} {
		inst, err := c.AddInstance(sim.InstanceSpec{ID: "i-" + name, Type: "ecs.g7.large", VSwitchID: vsw})
		if err != nil {
			tb.Fatal(err)
		}
		limits, err := client.InstanceLimits(context.Background(), inst.Type)
		if err != nil {
			tb.Fatal(err)
		}
		cfg := config.DefaultConfig()
		cfg.SecurityGroups = []string{sim.DefaultSecurityGroupID}
		cfg.VSwitches = map[string][]string{inst.ZoneID: {inst.VSwitchID}}
		cfg.PollInterval = config.Duration(5 * time.Millisecond)
		cfg.AllocWait = config.Duration(10 * time.Second)
		cfg.AttachTimeout = config.Duration(5 * time.Second)
		cfg.LeaseTTL = config.Duration(10 * time.Second)
		cfg.FixedENIHold = 0
		if exclusive {
			cfg.ExclusiveENIType = config.ExclusiveENIOnly
			cfg.MinPoolSize, cfg.MaxPoolSize = 0, 0
		} else {
			cfg.EnableENITrunking = true
		}
		w.nodes[name] = &fixedNode{cfg: cfg, db: mustStore(tb), node: Node{
			InstanceID: inst.ID, Limits: limits, ZoneID: inst.ZoneID, PrimaryENIID: inst.PrimaryENIID,
			VSwitchID: inst.VSwitchID, VSwitchCIDR: inst.VSwitchCIDR, SecurityGroupIDs: []string{inst.SecurityGroupID},
			HostPods: func(context.Context) ([]HostPod, error) { return nil, nil },
		}}
	}
	return w
}

var ttlHour = &store.Fixed{Networking: "db", ReleaseAfter: time.Hour}

// add is a fixed pod's ADD on node n (a member, or an exclusive ENI).
func (w *fixedWorld) add(n *fixedNode, owner Owner, fixed *store.Fixed) (Reservation, store.ENI, error) {
	ctx := context.Background()
	if n.cfg.ExclusiveENI() {
		res, err := AllocateExclusive(ctx, n.db, w.client, n.node, n.cfg, owner, ExclusiveRequest{Pod: owner.podKey(), Fixed: fixed})
		return res, res.ENI, err
	}
	m, err := AllocateMember(ctx, n.db, w.client, n.node, n.cfg, owner, MemberRequest{Fixed: fixed})
	return m.Reservation, m.Member, err
}

func (w *fixedWorld) mustAdd(tb testing.TB, n *fixedNode, owner Owner, fixed *store.Fixed) (Reservation, store.ENI) {
	tb.Helper()
	res, e, err := w.add(n, owner, fixed)
	if err != nil {
		tb.Fatalf("fixed ADD of %s on %s: %v", owner.podKey(), n.node.InstanceID, err)
	}
	if err := Commit(n.db, res.Key, HostSide{Veth: "veni-x", Ifindex: 9}, nil); err != nil {
		tb.Fatal(err)
	}
	return res, e
}

func (w *fixedWorld) cloudENI(tb testing.TB, id string) (eni.ENI, bool) {
	tb.Helper()
	got, err := w.client.ENIs(context.Background(), eni.ENIFilter{IDs: []string{id}})
	if err != nil {
		tb.Fatal(err)
	}
	if len(got) == 0 {
		return eni.ENI{}, false
	}
	return got[0], true
}

func mustReconcile(tb testing.TB, w *fixedWorld, n *fixedNode, now time.Time) Report {
	tb.Helper()
	rep, err := Reconcile(context.Background(), n.db, w.client, n.node, n.cfg, now)
	if err != nil || len(rep.Errors) > 0 {
		tb.Fatalf("reconcile on %s: %v %v", n.node.InstanceID, err, rep.Errors)
	}
	return rep
}

func fixedRecords(tb testing.TB, db Store) []store.FixedENI {
	tb.Helper()
	var out []store.FixedENI
	if err := db.View(func(tx *store.ReadTx) (err error) { out, err = tx.FixedENIs(); return err }); err != nil {
		tb.Fatal(err)
	}
	return out
}

func storeENI(tb testing.TB, db Store, id string) (store.ENI, bool) {
	tb.Helper()
	var e store.ENI
	err := db.View(func(tx *store.ReadTx) (err error) { e, err = tx.ENI(id); return err })
	if errors.Is(err, store.ErrNotFound) {
		return e, false
	}
	if err != nil {
		tb.Fatal(err)
	}
	return e, true
}

// Ensure a fixed pod keeps its ENI, and so its address, across deletion
// and recreation, on its node and on another of the zone, for a member
// pod and for an exclusive pod:
//   - created tagged for the pod and fixed;
//   - DEL keeps it attached for its pod; the pod back on the same node
//     takes it with no cloud call, no other pod ever does;
//   - while its old node holds it, an ADD elsewhere fails at once with
//     ErrFixedElsewhere naming the instance;
//   - the daemon's pass parks it: tagged with its release time and parker,
//     detached, recorded parked;
//   - the pod's ADD on node b attaches it (a member through b's trunk)
//     with the same address, and the move costs few cloud calls;
//   - an ADD in another zone is refused with ErrFixedZone by the cloud,
//     and the ENI stays where it was;
//   - the old node's record is only forgotten at the release time: the
//     ENI is another node's now.
func TestFixed_Sim_MoveKeepsIP(t *testing.T) {
	for _, kind := range []string{"member", "exclusive"} {
		t.Run(kind, func(t *testing.T) {
			w := mustFixedWorld(t, kind == "exclusive")
			a, b, far := w.nodes["a"], w.nodes["b"], w.nodes["far"]
			res, e := w.mustAdd(t, a, podOwner("db-0"), ttlHour)
			c, _ := w.cloudENI(t, e.ID)
			if c.Tags[TagFixed] != TagFixedValue || c.Tags[TagPod] != "default/db-0" || e.Fixed == nil || e.Fixed.ReleaseAfter != time.Hour {
				t.Fatalf("fixed eni %s: tags %v, record %+v", e.ID, c.Tags, e.Fixed)
			}
			ip := res.IP

			// DEL: kept here for the pod; another pod does not get it.
			if err := Release(a.db, res.Key); err != nil {
				t.Fatal(err)
			}
			if kept, _ := storeENI(t, a.db, e.ID); !kept.Kept() || kept.Pod != "default/db-0" {
				t.Fatalf("after DEL: %+v", kept)
			}
			other, oe := w.mustAdd(t, a, podOwner("other"), nil)
			if oe.ID == e.ID || other.IP == ip {
				t.Fatalf("another pod got the kept fixed eni %s (%s)", oe.ID, other.IP)
			}
			before := calls(w.cloud)
			back := podOwner("db-0")
			back.ContainerID = "c-db-0-again"
			res2, e2 := w.mustAdd(t, a, back, ttlHour)
			if e2.ID != e.ID || res2.IP != ip || calls(w.cloud) != before {
				t.Fatalf("same-node recreate got %s (%s) with %d calls, want %s (%s) with none", e2.ID, res2.IP, calls(w.cloud)-before, e.ID, ip)
			}
			if err := Release(a.db, res2.Key); err != nil {
				t.Fatal(err)
			}

			// Still on a: b's ADD says so, at once.
			start := time.Now()
			_, _, err := w.add(b, podOwner("db-0"), ttlHour)
			var fe *FixedError
			if !errors.Is(err, ErrFixedElsewhere) || !errors.As(err, &fe) || fe.Instance != "i-a" || fe.ENI != e.ID {
				t.Fatalf("ADD on b while a holds it: %v, want ErrFixedElsewhere naming i-a and %s", err, e.ID)
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("ErrFixedElsewhere took %s", took)
			}
			if recs := fixedRecords(t, b.db); len(recs) != 0 {
				t.Fatalf("b keeps records of a refused ADD: %+v", recs)
			}

			// a's daemon parks it.
			now := time.Now()
			mustReconcile(t, w, a, now)
			if _, ok := storeENI(t, a.db, e.ID); ok {
				t.Fatalf("parked eni %s still in a's store", e.ID)
			}
			recs := fixedRecords(t, a.db)
			if len(recs) != 1 || recs[0].State != store.FixedParked || recs[0].ID != e.ID || recs[0].ReleaseAt.Before(now.Add(59*time.Minute)) {
				t.Fatalf("a's fixed records: %+v", recs)
			}
			c, _ = w.cloudENI(t, e.ID)
			if c.Status != eni.StatusAvailable || c.Tags[TagFixedParkedBy] != "i-a" || c.Tags[TagFixedReleaseAt] != releaseTag(recs[0].ReleaseAt) {
				t.Fatalf("parked in the cloud: %s tags %v", c.Status, c.Tags)
			}

			// The pod recreated on b: the same address.
			before = calls(w.cloud)
			res3, e3 := w.mustAdd(t, b, podOwner("db-0"), ttlHour)
			t.Logf("%s move: %d cloud calls (%v)", kind, calls(w.cloud)-before, w.cloud.Snapshot().Calls)
			if e3.ID != e.ID || res3.IP != ip || e3.InstanceID != "i-b" || e3.Fixed == nil {
				t.Fatalf("on b: %s (%s) on %s, want %s (%s)", e3.ID, res3.IP, e3.InstanceID, e.ID, ip)
			}
			c, _ = w.cloudENI(t, e.ID)
			if c.InstanceID != "i-b" || c.Status != eni.StatusInUse || (kind == "member") != (c.Type == eni.TypeMember) {
				t.Fatalf("in the cloud: %s %s on %s", c.Type, c.Status, c.InstanceID)
			}
			if kind == "member" && (e3.VLANID != c.DeviceIndex || e3.TrunkID != res3.ENI.ID || res3.ENI.InstanceID != "i-b") {
				t.Fatalf("member on b: vlan %d (cloud %d) trunk %s", e3.VLANID, c.DeviceIndex, e3.TrunkID)
			}

			// Parked by b, then asked for in the other zone.
			if err := Release(b.db, res3.Key); err != nil {
				t.Fatal(err)
			}
			mustReconcile(t, w, b, time.Now())
			_, _, err = w.add(far, podOwner("db-0"), ttlHour)
			if !errors.Is(err, ErrFixedZone) || !errors.Is(err, eni.ErrZoneMismatch) || !errors.As(err, &fe) || fe.Zone != "cn-hangzhou-h" || fe.NodeZone != "cn-hangzhou-k" {
				t.Fatalf("ADD in the other zone: %v, want ErrFixedZone naming both zones", err)
			}
			if c, _ := w.cloudENI(t, e.ID); c.Status != eni.StatusAvailable || c.Tags[TagFixedParkedBy] != "i-b" {
				t.Fatalf("after the refused attach: %s parked by %s", c.Status, c.Tags[TagFixedParkedBy])
			}
			if recs := fixedRecords(t, far.db); len(recs) != 0 {
				t.Fatalf("far keeps records of a refused ADD: %+v", recs)
			}

			// a's release time: b parked it last, so a only forgets it.
			rep := mustReconcile(t, w, a, now.Add(2*time.Hour))
			if len(rep.DeletedENIs) != 0 || len(fixedRecords(t, a.db)) != 0 {
				t.Fatalf("a at its release time: deleted %v, records %+v", rep.DeletedENIs, fixedRecords(t, a.db))
			}
			if _, ok := w.cloudENI(t, e.ID); !ok {
				t.Fatal("a deleted the eni b parked")
			}
			// b's release time: b deletes it.
			rep = mustReconcile(t, w, b, time.Now().Add(2*time.Hour))
			if _, ok := w.cloudENI(t, e.ID); ok || len(rep.DeletedENIs) != 1 {
				t.Fatalf("b at its release time: deleted %v, eni still there: %v", rep.DeletedENIs, ok)
			}
		})
	}
}

// Ensure the TTL: a parked ENI past its release time is deleted by its
// parker, and until then an ADD elsewhere takes it; past it, an ADD
// elsewhere does not (the pod gets a new address), and a delete racing
// an ADD that attaches the ENI is harmless: the cloud refuses the delete
// of an attached ENI and the parker only forgets its record.
func TestFixed_Sim_TTL(t *testing.T) {
	w := mustFixedWorld(t, false)
	a, b := w.nodes["a"], w.nodes["b"]
	short := &store.Fixed{ReleaseAfter: time.Second}
	res, e := w.mustAdd(t, a, podOwner("db-0"), short)
	if err := Release(a.db, res.Key); err != nil {
		t.Fatal(err)
	}
	mustReconcile(t, w, a, time.Now())
	time.Sleep(1100 * time.Millisecond) // the tag has a second's precision

	// Past the release time, not yet deleted: b does not take it. (Its
	// new ENI's own time is an hour, so that the race below cannot find
	// it expired on a slow machine.)
	res2, e2 := w.mustAdd(t, b, podOwner("db-0"), ttlHour)
	if e2.ID == e.ID || res2.IP == res.IP {
		t.Fatalf("an expired fixed eni was taken: %s (%s)", e2.ID, res2.IP)
	}
	rep := mustReconcile(t, w, a, time.Now())
	if _, ok := w.cloudENI(t, e.ID); ok || len(rep.DeletedENIs) != 1 || len(fixedRecords(t, a.db)) != 0 {
		t.Fatalf("expired eni %s: deleted %v, records %+v", e.ID, rep.DeletedENIs, fixedRecords(t, a.db))
	}

	// The race: the parker describes the ENI Available, and b attaches
	// it before the delete.
	if err := Release(b.db, res2.Key); err != nil {
		t.Fatal(err)
	}
	mustReconcile(t, w, b, time.Now())
	racing := &attachBeforeDelete{AlibabaClient: w.client, attach: func(id string) error {
		_, _, err := w.add(a, podOwner("db-0"), ttlHour)
		return err
	}}
	if _, err := expireParked(context.Background(), b.db, racing, b.node, fixedRecords(t, b.db)[0]); err != nil {
		t.Fatalf("expire racing an attach: %v", err)
	}
	c, ok := w.cloudENI(t, e2.ID)
	if !ok || c.InstanceID != "i-a" || c.Status != eni.StatusInUse || len(fixedRecords(t, b.db)) != 0 {
		t.Fatalf("after the race: %v %s on %s, b's records %+v", ok, c.Status, c.InstanceID, fixedRecords(t, b.db))
	}
}

// attachBeforeDelete runs attach right before it lets DeleteENI through.
type attachBeforeDelete struct {
	*eni.AlibabaClient
	attach func(id string) error
}

func (r *attachBeforeDelete) DeleteENI(ctx context.Context, id string) error {
	if err := r.attach(id); err != nil {
		return err
	}
	return r.AlibabaClient.DeleteENI(ctx, id)
}

// Ensure an attach cut short (a crash after AttachNetworkInterface, before
// the record) leaves a record "attaching" that the next lease holder
// settles: the daemon parks the ENI again and records it parked; a pod's
// ADD on the node where it is attached adopts it instead.
func TestFixed_Sim_AttachCutShort(t *testing.T) {
	for _, kind := range []string{"member", "exclusive"} {
		t.Run(kind, func(t *testing.T) {
			w := mustFixedWorld(t, kind == "exclusive")
			a, b := w.nodes["a"], w.nodes["b"]
			res, e := w.mustAdd(t, a, podOwner("db-0"), ttlHour)
			if err := Release(a.db, res.Key); err != nil {
				t.Fatal(err)
			}
			mustReconcile(t, w, a, time.Now())
			// b's ADD dies right after the attach.
			trunk := ""
			if kind == "member" {
				w.mustAdd(t, b, podOwner("shared-trunk-maker"), nil) // b's trunk
				tr, _, err := trunkOf(b.db)
				if err != nil {
					t.Fatal(err)
				}
				trunk = tr.ID
			}
			c, _ := w.cloudENI(t, e.ID)
			if err := beginAttach(b.db, c, "default/db-0", ttlHour); err != nil {
				t.Fatal(err)
			}
			var err error
			if trunk != "" {
				err = w.client.AttachMember(context.Background(), e.ID, "i-b", trunk)
			} else {
				err = w.client.AttachENI(context.Background(), e.ID, "i-b")
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := waitENIStatus(context.Background(), w.client, b.cfg, e.ID, eni.StatusInUse); err != nil {
				t.Fatal(err)
			}
			// The pod's ADD on b retried: adopted, same address.
			res2, e2 := w.mustAdd(t, b, podOwner("db-0"), ttlHour)
			if e2.ID != e.ID || res2.IP != res.IP || len(fixedRecords(t, b.db)) != 0 {
				t.Fatalf("adopt: %s (%s), records %+v", e2.ID, res2.IP, fixedRecords(t, b.db))
			}
			if err := Release(b.db, res2.Key); err != nil {
				t.Fatal(err)
			}
			mustReconcile(t, w, b, time.Now())

			// Again, and this time the pod went elsewhere: the daemon parks it.
			if err := beginAttach(b.db, c, "default/db-0", ttlHour); err != nil {
				t.Fatal(err)
			}
			if trunk != "" {
				err = w.client.AttachMember(context.Background(), e.ID, "i-b", trunk)
			} else {
				err = w.client.AttachENI(context.Background(), e.ID, "i-b")
			}
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			mustReconcile(t, w, b, now)
			c, _ = w.cloudENI(t, e.ID)
			recs := fixedRecords(t, b.db)
			if c.Status != eni.StatusAvailable || c.Tags[TagFixedParkedBy] != "i-b" || len(recs) != 1 || recs[0].State != store.FixedParked {
				t.Fatalf("after the daemon: %s parked by %q, records %+v", c.Status, c.Tags[TagFixedParkedBy], recs)
			}
			if _, ok := storeENI(t, b.db, e.ID); ok {
				t.Fatal("b's store holds the eni")
			}
		})
	}
}

// Ensure releaseStrategy Never: the parked ENI has no release time and no
// node deletes it; veni ipam fixed release (ReleaseFixed) does, and
// refuses one a pod holds.
func TestFixed_Sim_NeverAndRelease(t *testing.T) {
	w := mustFixedWorld(t, false)
	a := w.nodes["a"]
	never := &store.Fixed{Never: true}
	res, e := w.mustAdd(t, a, podOwner("db-0"), never)
	if _, err := ReleaseFixed(context.Background(), a.db, w.client, a.node, a.cfg, "default/db-0"); err == nil || !strings.Contains(err.Error(), "holds it") {
		t.Fatalf("release of a held fixed eni: %v", err)
	}
	if err := Release(a.db, res.Key); err != nil {
		t.Fatal(err)
	}
	mustReconcile(t, w, a, time.Now())
	c, _ := w.cloudENI(t, e.ID)
	if c.Status != eni.StatusAvailable || c.Tags[TagFixedReleaseAt] != FixedReleaseNever || len(fixedRecords(t, a.db)) != 0 {
		t.Fatalf("parked never: %s %v, records %+v", c.Status, c.Tags, fixedRecords(t, a.db))
	}
	mustReconcile(t, w, a, time.Now().Add(1000*time.Hour))
	if _, ok := w.cloudENI(t, e.ID); !ok {
		t.Fatal("a Never eni was deleted")
	}
	list, err := ListFixed(context.Background(), a.db, w.client, "")
	if err != nil || len(list) != 1 || list[0].ID != e.ID {
		t.Fatalf("list: %+v, %v", list, err)
	}
	deleted, err := ReleaseFixed(context.Background(), a.db, w.client, a.node, a.cfg, "default/db-0")
	if err != nil || len(deleted) != 1 || deleted[0] != e.ID {
		t.Fatalf("release: %v, %v", deleted, err)
	}
	if _, ok := w.cloudENI(t, e.ID); ok {
		t.Fatal("released eni still there")
	}
	// Kept on the node (not parked yet): detached and deleted.
	a.cfg.FixedENIHold = config.Duration(time.Hour)
	res, e = w.mustAdd(t, a, podOwner("db-1"), never)
	if err := Release(a.db, res.Key); err != nil {
		t.Fatal(err)
	}
	deleted, err = ReleaseFixed(context.Background(), a.db, w.client, a.node, a.cfg, "default/db-1")
	if err != nil || len(deleted) != 1 {
		t.Fatalf("release of a kept eni: %v, %v", deleted, err)
	}
	if _, ok := w.cloudENI(t, e.ID); ok {
		t.Fatal("released kept eni still there")
	}
	if _, ok := storeENI(t, a.db, e.ID); ok {
		t.Fatal("released kept eni still in the store")
	}
}

// Ensure a pod name too long for a tag value gets a distinct one that
// fits.
func TestPodTag(t *testing.T) {
	short := "ns/db-0"
	if PodTag(short) != short {
		t.Errorf("short name changed: %s", PodTag(short))
	}
	long1, long2 := "ns/"+strings.Repeat("a", 200)+"1", "ns/"+strings.Repeat("a", 200)+"2"
	t1, t2 := PodTag(long1), PodTag(long2)
	if len(t1) > 128 || t1 == t2 || !strings.HasPrefix(t1, "ns/aaa") {
		t.Errorf("long names: %q %q", t1, t2)
	}
}

// Ensure a park cut short (a crash after the tag and the detach, before
// the record) and finished late leaves another node's park alone: the ENI
// went to node b meanwhile and b parked it with its own release time;
// a's daemon forgets the ENI and neither tags it again nor records it.
func TestFixed_Sim_StalePark(t *testing.T) {
	w := mustFixedWorld(t, false)
	a, b := w.nodes["a"], w.nodes["b"]
	res, e := w.mustAdd(t, a, podOwner("db-0"), ttlHour)
	if err := Release(a.db, res.Key); err != nil {
		t.Fatal(err)
	}
	mustUpdate(t, a.db, func(tx *store.WriteTx) error {
		cur, err := tx.ENI(e.ID)
		if err != nil {
			return err
		}
		cur.Fixed.Detaching = true
		return tx.PutENI(cur)
	})
	if _, err := detachFixed(context.Background(), w.client, a.node, a.cfg, e.ID, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	// a "crashed" here. b takes the ENI, its pod goes, b parks it.
	res2, _ := w.mustAdd(t, b, podOwner("db-0"), ttlHour)
	if err := Release(b.db, res2.Key); err != nil {
		t.Fatal(err)
	}
	mustReconcile(t, w, b, time.Now())
	parkedByB, _ := w.cloudENI(t, e.ID)
	mustReconcile(t, w, a, time.Now())
	c, _ := w.cloudENI(t, e.ID)
	if c.Tags[TagFixedParkedBy] != "i-b" || c.Tags[TagFixedReleaseAt] != parkedByB.Tags[TagFixedReleaseAt] {
		t.Fatalf("a's late park changed b's tags: %v, were %v", c.Tags, parkedByB.Tags)
	}
	if _, ok := storeENI(t, a.db, e.ID); ok || len(fixedRecords(t, a.db)) != 0 {
		t.Fatalf("a still knows the eni: records %+v", fixedRecords(t, a.db))
	}
	// And the pod, back on a, gets its address.
	res3, e3 := w.mustAdd(t, a, podOwner("db-0"), ttlHour)
	if e3.ID != e.ID || res3.IP != res.IP {
		t.Fatalf("back on a: %s (%s), want %s (%s)", e3.ID, res3.IP, e.ID, res.IP)
	}
}

// Ensure a fixed pod on an exclusive node whose slots hold warm ENIs takes
// a warm one that fits as its fixed ENI (tagged for it in the cloud, one
// call) rather than being refused for want of a slot.
func TestFixed_Sim_WarmBecomesFixed(t *testing.T) {
	w := mustFixedWorld(t, true)
	a := w.nodes["a"]
	a.cfg.MaxENI = 1
	res, e := w.mustAdd(t, a, podOwner("x"), nil)
	if err := Release(a.db, res.Key); err != nil {
		t.Fatal(err)
	}
	before := w.cloud.Snapshot().Calls
	res2, e2 := w.mustAdd(t, a, podOwner("db-0"), ttlHour)
	if e2.ID != e.ID || e2.Fixed == nil || e2.Pod != "default/db-0" || res2.IP != res.IP {
		t.Fatalf("fixed pod got %s (%+v) for %s", e2.ID, e2.Fixed, e2.Pod)
	}
	c, _ := w.cloudENI(t, e.ID)
	if c.Tags[TagFixed] != TagFixedValue || c.Tags[TagPod] != "default/db-0" {
		t.Fatalf("tags %v", c.Tags)
	}
	after := w.cloud.Snapshot().Calls
	for action, want := range map[string]int{"TagResources": 1, "CreateNetworkInterface": 0, "AttachNetworkInterface": 0} {
		if n := after[action].Calls - before[action].Calls; n != want {
			t.Errorf("%s: %d calls, want %d", action, n, want)
		}
	}
	// And it is fixed: kept for the pod, not warm for another.
	if err := Release(a.db, res2.Key); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.add(a, podOwner("y"), nil); !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("another pod while the fixed eni is kept: %v, want ErrPoolExhausted", err)
	}
}
