package ipam

import (
	"context"
	"errors"
	"net/http"
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

// trunkEnv is a simulated region (the unchanged SDK against the sim's
// OpenAPI) with one ecs.g7.large node: 3 ENIs, 6 trunk members.
type trunkEnv struct {
	cloud  *sim.Cloud
	client *eni.AlibabaClient
	node   Node
	cfg    config.Config
	db     store.File
}

func mustTrunkEnv(tb testing.TB) *trunkEnv {
	tb.Helper()
	scfg := sim.DefaultConfig()
	scfg.AttachDelay, scfg.DetachDelay = 10*time.Millisecond, 10*time.Millisecond
	scfg.Credentials = map[string]string{"ak": "sk"}
	// A vSwitch in another zone than the node's, for PodNetworkings
	// that list one.
	scfg.VSwitches = append(scfg.VSwitches, sim.VSwitchSpec{ID: "vsw-sim-z", ZoneID: "cn-hangzhou-z", CIDR: netip.MustParsePrefix("172.30.9.0/24")})
	var instID string
	scfg.IdentifyCaller = func(*http.Request) (string, bool) { return instID, instID != "" }
	c, err := sim.New(scfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	api := httptest.NewServer(c.APIHandler())
	tb.Cleanup(api.Close)
	inst, err := c.AddInstance(sim.InstanceSpec{ID: "i-trunk", Type: "ecs.g7.large"})
	if err != nil {
		tb.Fatal(err)
	}
	instID = inst.ID
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
	limits, err := client.InstanceLimits(context.Background(), inst.Type)
	if err != nil {
		tb.Fatal(err)
	}
	cfg := config.DefaultConfig()
	cfg.EnableENITrunking = true
	cfg.SecurityGroups = []string{sim.DefaultSecurityGroupID}
	cfg.VSwitches = map[string][]string{inst.ZoneID: {inst.VSwitchID}}
	cfg.PollInterval = config.Duration(5 * time.Millisecond)
	cfg.AllocWait = config.Duration(10 * time.Second)
	cfg.AttachTimeout = config.Duration(5 * time.Second)
	cfg.LeaseTTL = config.Duration(10 * time.Second)
	return &trunkEnv{
		cloud: c, client: client, cfg: cfg, db: mustStore(tb),
		node: Node{
			InstanceID: inst.ID, Limits: limits, ZoneID: inst.ZoneID, PrimaryENIID: inst.PrimaryENIID,
			VSwitchID: inst.VSwitchID, VSwitchCIDR: inst.VSwitchCIDR, SecurityGroupIDs: []string{inst.SecurityGroupID},
			HostPods: func(context.Context) ([]HostPod, error) { return nil, nil },
		},
	}
}

func podOwner(name string) Owner {
	return Owner{ContainerID: "c-" + name, IfName: "eth0", PodNamespace: "default", PodName: name}
}

func (env *trunkEnv) mustMember(tb testing.TB, name string, req MemberRequest) MemberReservation {
	tb.Helper()
	res, err := AllocateMember(context.Background(), env.db, env.client, env.node, env.cfg, podOwner(name), req)
	if err != nil {
		tb.Fatalf("allocate member for %s: %v", name, err)
	}
	return res
}

// Ensure the first member ADD on a trunk node makes the trunk (an ENI of
// type Trunk that also serves shared pods) and a member attached through
// it, recorded with its VLAN ID and reserved for the pod; the pool never
// hands out the member's address; Commit and Release work on it; a later
// pod with the same network takes the idle member with no cloud call.
func TestAllocateMember_Sim_TrunkThenMembers(t *testing.T) {
	env := mustTrunkEnv(t)
	a := env.mustMember(t, "a", MemberRequest{})
	if a.ENI.Kind != store.ENITrunk || a.Member.Kind != store.ENIMember || a.Member.TrunkID != a.ENI.ID {
		t.Fatalf("reservation: trunk %+v member %+v", a.ENI, a.Member)
	}
	if a.Member.VLANID < 1 || a.IP != a.Member.PrimaryIP || a.Member.Pod != "default/a" {
		t.Fatalf("member %+v ip %s", a.Member, a.IP)
	}
	cloudENIs, err := env.client.ENIs(context.Background(), eni.ENIFilter{IDs: []string{a.ENI.ID, a.Member.ID}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cloudENIs {
		switch c.ID {
		case a.ENI.ID:
			if c.Type != eni.TypeTrunk {
				t.Errorf("trunk is %s in the cloud", c.Type)
			}
		case a.Member.ID:
			if c.Type != eni.TypeMember || c.DeviceIndex != a.Member.VLANID {
				t.Errorf("member is %s with device index %d in the cloud, store says vlan %d", c.Type, c.DeviceIndex, a.Member.VLANID)
			}
		}
	}
	// Shared pods use the trunk's addresses, never the member's.
	for i := range 5 {
		r, err := Allocate(context.Background(), env.db, env.client, env.node, env.cfg, podOwner("shared-"+string(rune('0'+i))))
		if err != nil {
			t.Fatal(err)
		}
		if r.ENI.ID != a.ENI.ID || r.IP == a.IP {
			t.Fatalf("shared pod got %s on %s", r.IP, r.ENI.ID)
		}
	}
	if err := Commit(env.db, a.Key, HostSide{Veth: "veni-a", Ifindex: 7}, nil); err != nil {
		t.Fatal(err)
	}
	// Same attachment again: the same reservation.
	if again := env.mustMember(t, "a", MemberRequest{}); again.Member.ID != a.Member.ID || again.State != store.IPBound {
		t.Fatalf("second ADD of the same attachment: %+v", again)
	}
	b := env.mustMember(t, "b", MemberRequest{})
	if b.Member.ID == a.Member.ID || b.Member.VLANID == a.Member.VLANID || b.ENI.ID != a.ENI.ID {
		t.Fatalf("second pod: member %s vlan %d on %s", b.Member.ID, b.Member.VLANID, b.ENI.ID)
	}
	if err := Release(env.db, a.Key); err != nil {
		t.Fatal(err)
	}
	// The pool still does not take the freed member address.
	// The trunk came with 5 shared addresses, all taken above.
	if h, err := PoolHealth(env.db, time.Now()); err != nil || h.Free != 0 {
		t.Fatalf("pool free %d (%v), want 0: a member's address is no pool address", h.Free, err)
	}
	if _, err := Reserve(env.db, podOwner("shared-6")); !errors.Is(err, ErrPoolEmpty) {
		t.Fatalf("shared reserve with only a free member address: %v, want ErrPoolEmpty", err)
	}
	before := calls(env.cloud)
	c := env.mustMember(t, "c", MemberRequest{})
	if c.Member.ID != a.Member.ID || c.Member.Pod != "default/c" {
		t.Fatalf("warm member: got %s for %s, want idle %s", c.Member.ID, c.Member.Pod, a.Member.ID)
	}
	if n := calls(env.cloud) - before; n != 0 {
		t.Fatalf("warm member ADD made %d cloud calls", n)
	}
	// Another vSwitch: a new member.
	d := env.mustMember(t, "d", MemberRequest{VSwitchIDs: []string{"vsw-sim-b"}})
	if d.Member.VSwitchID != "vsw-sim-b" || d.Member.ID == a.Member.ID {
		t.Fatalf("member on vsw-sim-b: %+v", d.Member)
	}
}

// Ensure the member limit is a clear ErrMemberLimit, fast, and that a
// node without trunking says ErrNoTrunk.
func TestAllocateMember_Sim_Limits(t *testing.T) {
	env := mustTrunkEnv(t)
	for i := range env.node.Limits.MemberENIs {
		env.mustMember(t, "m"+string(rune('a'+i)), MemberRequest{})
	}
	start := time.Now()
	_, err := AllocateMember(context.Background(), env.db, env.client, env.node, env.cfg, podOwner("one-too-many"), MemberRequest{})
	if !errors.Is(err, ErrMemberLimit) || !strings.Contains(err.Error(), "allows 6") {
		t.Fatalf("seventh member: %v, want ErrMemberLimit naming the limit", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("the limit took %s to report", took)
	}
	off := env.cfg
	off.EnableENITrunking = false
	if _, err := AllocateMember(context.Background(), env.db, env.client, env.node, off, podOwner("x"), MemberRequest{}); !errors.Is(err, ErrNoTrunk) {
		t.Fatalf("trunking off: %v, want ErrNoTrunk", err)
	}
	noTrunk := env.node
	noTrunk.Limits.TrunkSupported, noTrunk.Limits.MemberENIs = false, 0
	if _, err := AllocateMember(context.Background(), env.db, env.client, noTrunk, env.cfg, podOwner("x"), MemberRequest{}); !errors.Is(err, ErrNoTrunk) || !strings.Contains(err.Error(), "no trunk member") {
		t.Fatalf("type without trunking: %v, want ErrNoTrunk", err)
	}
}

// Ensure Reconcile deletes members idle for idle_ip_reclaim_after
// (detached through the trunk first), keeps held ones and the trunk, and
// that the leak sweep detaches and deletes a member attached but never
// recorded (an ADD killed in between).
func TestReconcile_Sim_Members(t *testing.T) {
	env := mustTrunkEnv(t)
	a := env.mustMember(t, "a", MemberRequest{})
	b := env.mustMember(t, "b", MemberRequest{})
	if err := Release(env.db, a.Key); err != nil {
		t.Fatal(err)
	}
	env.cfg.IdleReclaimAfter = 0
	// A member created and attached by an ADD that died before recording it.
	leaked, err := env.client.CreateENI(context.Background(), eni.CreateENIOptions{
		VSwitchID: env.node.VSwitchID, SecurityGroupIDs: []string{sim.DefaultSecurityGroupID},
		Tags: map[string]string{TagCreator: TagCreatorValue, TagInstance: env.node.InstanceID},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := env.client.AttachMember(context.Background(), leaked.ID, env.node.InstanceID, a.ENI.ID); err != nil {
		t.Fatal(err)
	}
	waitCloud(t, env, leaked.ID, eni.StatusInUse)
	rep, err := Reconcile(context.Background(), env.db, env.client, env.node, env.cfg, time.Now())
	if err != nil || len(rep.Errors) > 0 {
		t.Fatalf("reconcile: %v %v", err, rep.Errors)
	}
	members, err := Members(env.db)
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != 1 || members[0].ID != b.Member.ID {
		t.Fatalf("members after reconcile: %+v, want only %s", members, b.Member.ID)
	}
	if got, _ := env.client.ENIs(context.Background(), eni.ENIFilter{IDs: []string{a.Member.ID}}); len(got) != 0 {
		t.Fatalf("idle member %s still in the cloud: %+v", a.Member.ID, got)
	}
	// A pod on the host with the unknown member's address (a store lost
	// and replaced): the member is left alone, and the sweep says why.
	inUse := env.node
	inUse.HostPods = func(context.Context) ([]HostPod, error) {
		return []HostPod{{HostVeth: "veni-x", IPs: []netip.Addr{leaked.PrimaryIP}}}, nil
	}
	if _, err := SweepLeakedENIs(context.Background(), env.db, env.client, inUse, env.cfg, time.Now().Add(time.Hour)); err == nil || !strings.Contains(err.Error(), "left alone") {
		t.Fatalf("sweep with the member's address on the host: %v, want it left alone", err)
	}
	if got, _ := env.client.ENIs(context.Background(), eni.ENIFilter{IDs: []string{leaked.ID}}); len(got) != 1 || got[0].Status != eni.StatusInUse {
		t.Fatalf("member in use by a host pod was touched: %+v", got)
	}
	// The leak sweep takes ENIs older than lease_ttl.
	if _, err := SweepLeakedENIs(context.Background(), env.db, env.client, env.node, env.cfg, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got, _ := env.client.ENIs(context.Background(), eni.ENIFilter{IDs: []string{leaked.ID}}); len(got) != 0 {
		t.Fatalf("leaked member %s still in the cloud: %+v", leaked.ID, got)
	}
	if got, _ := env.client.ENIs(context.Background(), eni.ENIFilter{IDs: []string{a.ENI.ID}}); len(got) != 1 {
		t.Fatal("the trunk went")
	}
}

func waitCloud(tb testing.TB, env *trunkEnv, id, status string) {
	tb.Helper()
	if _, err := waitENIStatus(context.Background(), env.client, env.cfg, id, status); err != nil {
		tb.Fatal(err)
	}
}

// calls counts the API calls the sim has served.
func calls(c *sim.Cloud) int {
	n := 0
	for _, s := range c.Snapshot().Calls {
		n += s.Calls
	}
	return n
}

// Ensure a trunk the store has but cannot use yet (still attaching) makes
// a member ADD wait and then say "try again later", not spin or fail
// otherwise, and that a node with every ENI slot taken by shared ENIs
// says why it has no trunk.
func TestAllocateMember_Sim_TrunkNotReady(t *testing.T) {
	env := mustTrunkEnv(t)
	mustUpdate(t, env.db, func(tx *store.WriteTx) error {
		return tx.PutENI(store.ENI{ID: "eni-trunk-attaching", State: store.ENIAttaching, Kind: store.ENITrunk, Owned: true})
	})
	env.cfg.AllocWait = config.Duration(time.Second)
	before := calls(env.cloud)
	start := time.Now()
	_, err := AllocateMember(context.Background(), env.db, env.client, env.node, env.cfg, podOwner("a"), MemberRequest{})
	if !errors.Is(err, ErrTryAgainLater) || !strings.Contains(err.Error(), "trunk is not ready") {
		t.Fatalf("member with an attaching trunk: %v, want ErrTryAgainLater", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("took %s", took)
	}
	if n := calls(env.cloud) - before; n != 0 {
		t.Errorf("%d cloud calls while the trunk attaches", n)
	}

	full := mustTrunkEnv(t)
	full.cfg.EnableENITrunking = false
	for i := range 2 { // ecs.g7.large: 2 secondary ENIs, both shared
		if err := Refill(context.Background(), full.db, full.client, full.node, full.cfg, 10); err != nil {
			t.Fatalf("refill %d: %v", i, err)
		}
	}
	full.cfg.EnableENITrunking = true
	_, err = AllocateMember(context.Background(), full.db, full.client, full.node, full.cfg, podOwner("b"), MemberRequest{})
	if !errors.Is(err, ErrNoTrunk) || !strings.Contains(err.Error(), "no ENI slot") {
		t.Fatalf("member on a node without a free ENI slot: %v, want ErrNoTrunk", err)
	}
}

// Ensure a member goes to a vSwitch of its PodNetworking in the node's
// zone (the first such one with addresses), and that a PodNetworking
// whose vSwitches are all in other zones is refused as a configuration
// error naming them.
func TestAllocateMember_Sim_VSwitchZone(t *testing.T) {
	env := mustTrunkEnv(t)
	m := env.mustMember(t, "a", MemberRequest{VSwitchIDs: []string{"vsw-sim-z", "vsw-sim-b"}})
	if m.Member.VSwitchID != "vsw-sim-b" || !m.Member.VSwitchCIDR.IsValid() {
		t.Fatalf("member on %s (%s), want vsw-sim-b, the one in the node's zone", m.Member.VSwitchID, m.Member.VSwitchCIDR)
	}
	if !m.Member.VSwitchCIDR.Contains(m.IP) {
		t.Fatalf("member address %s outside %s", m.IP, m.Member.VSwitchCIDR)
	}
	_, err := AllocateMember(context.Background(), env.db, env.client, env.node, env.cfg, podOwner("b"), MemberRequest{VSwitchIDs: []string{"vsw-sim-z"}})
	if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), "vsw-sim-z@cn-hangzhou-z") {
		t.Fatalf("member with only another zone's vswitch: %v, want config.ErrInvalid naming it", err)
	}
}
