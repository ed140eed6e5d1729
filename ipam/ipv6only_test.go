package ipam

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/eni"
	"github.com/veni-cni/veni/store"
)

// v6Setup is dualSetup with ip_stack ipv6: pods get an IPv6 only.
func v6Setup(tb testing.TB, v6 int) (store.File, *fakeCloud, Node, config.Config) {
	tb.Helper()
	db, cloud, node, cfg := dualSetup(tb, v6)
	cfg.IPStack = config.IPStackV6
	return db, cloud, node, cfg
}

// Ensure an ADD on an empty IPv6-only pool creates an ENI with IPv6
// addresses and no secondary IPv4, gives the pod one IPv6 of it (the
// allocation's IP, IP6 zero), binds it, and a release frees it; the
// store records the stack and passes its check.
func TestAllocate_IPv6Only_OneIPv6(t *testing.T) {
	db, cloud, node, cfg := v6Setup(t, 6)
	var got []Reservation
	for _, cid := range []string{"c1", "c2", "c3"} {
		r, err := Allocate(bg, db, cloud, node, cfg, owner(cid))
		wantErr(t, err, nil)
		if !r.IP.Is6() || !testCIDR6.Contains(r.IP) || r.IP6.IsValid() {
			t.Fatalf("%s: reservation %s / %s, want one IPv6 of %s as IP", cid, r.IP, r.IP6, testCIDR6)
		}
		if r.ENI.IPv6CIDR != testCIDR6 || !r.ENI.Gateway6.IsValid() {
			t.Fatalf("eni %s ipv6 %s gateway %s", r.ENI.ID, r.ENI.IPv6CIDR, r.ENI.Gateway6)
		}
		if !slices.Contains(cloud.ipv6sOf(r.ENI.ID), r.IP) {
			t.Fatalf("%s: %s is not assigned to %s in the cloud", cid, r.IP, r.ENI.ID)
		}
		if ips := cloud.ipsOf(r.ENI.ID); len(ips) > 1 {
			t.Fatalf("eni %s has secondary IPv4 %v on an IPv6-only node", r.ENI.ID, ips)
		}
		wantErr(t, Commit(db, r.Key, HostSide{Veth: "veni" + cid, Ifindex: 9}, nil), nil)
		got = append(got, r)
	}
	mustStates(t, db, got[0], store.IPBound)
	if _, used := poolCounts(t, db); used != 3 {
		t.Fatalf("used %d, want 3 pods", used)
	}
	_ = db.View(func(tx *store.ReadTx) error {
		ps, _ := tx.PoolState()
		if ps.Stack != config.IPStackV6 {
			t.Errorf("store stack %q, want ipv6", ps.Stack)
		}
		a, err := tx.Allocation(got[0].Key)
		if v4, v6 := a.Families(); err != nil || v4.IsValid() || v6 != got[0].IP {
			t.Errorf("allocation %+v (%v): families %s / %s", a, err, v4, v6)
		}
		return nil
	})
	wantErr(t, Release(db, got[0].Key), nil)
	mustStates(t, db, got[0], store.IPFree)
	// Without cfg the store's stack decides: an IPv6 again.
	r, err := Reserve(db, owner("c4"))
	wantErr(t, err, nil)
	if !r.IP.Is6() || r.IP6.IsValid() {
		t.Fatalf("reserve without cfg on an ipv6 store gave %s / %s", r.IP, r.IP6)
	}
	mustCheckDual(t, db)
}

// Ensure the warm pool of an IPv6-only node is counted and grown in IPv6
// addresses: a top-up assigns IPv6 (AssignIpv6Addresses) on the ENI, never
// secondary IPv4, and stops at the instance type's IPv6 per ENI.
func TestReconcile_IPv6Only_WarmPoolInIPv6(t *testing.T) {
	db, cloud, node, cfg := v6Setup(t, 4)
	cfg.MaxENI = 1
	cfg.MinPoolSize, cfg.MaxPoolSize = 3, 3
	r, err := Allocate(bg, db, cloud, node, cfg, owner("c1"))
	wantErr(t, err, nil)
	wantErr(t, Commit(db, r.Key, HostSide{Veth: "venic1", Ifindex: 9}, nil), nil)
	_, err = Reconcile(bg, db, cloud, node, cfg, time.Now())
	wantErr(t, err, nil)
	idle, used := poolCounts(t, db)
	if idle != 3 || used != 1 {
		t.Fatalf("idle %d used %d, want 3 idle IPv6 beside the pod", idle, used)
	}
	if n := len(cloud.ipv6sOf(r.ENI.ID)); n != 4 {
		t.Fatalf("eni has %d IPv6 in the cloud, want 4", n)
	}
	if got := MaxPods(node, cfg); got != 4 {
		t.Fatalf("MaxPods = %d, want 4 (one ENI of 4 IPv6)", got)
	}
	// The ENI is full and max_eni is 1: the fifth pod finds no room.
	for _, cid := range []string{"c2", "c3", "c4"} {
		_, err := Allocate(bg, db, cloud, node, cfg, owner(cid))
		wantErr(t, err, nil)
	}
	cfg.AllocWait = config.Duration(time.Second)
	_, err = Allocate(bg, db, cloud, node, cfg, owner("c5"))
	if !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("fifth pod: %v, want ErrPoolExhausted", err)
	}
	mustCheckDual(t, db)
}

// Ensure an instance type without IPv6 is said to give no pod, and that a
// node's stack cannot switch between ipv6 and another stack.
func TestIPv6Only_NoIPv6AndStackForLife(t *testing.T) {
	_, _, node, cfg := v6Setup(t, 0)
	if w := StackWarning(node, cfg); !strings.Contains(w, "ip_stack ipv6") || !strings.Contains(w, "no IPv6") {
		t.Fatalf("StackWarning = %q", w)
	}
	db, cloud, node, cfg := v6Setup(t, 6)
	_, err := Allocate(bg, db, cloud, node, cfg, owner("c1"))
	wantErr(t, err, nil)
	for _, stack := range []string{config.IPStackV4, config.IPStackDual} {
		other := cfg
		other.IPStack = stack
		_, err := Allocate(bg, db, cloud, node, other, owner("c2"))
		if !errors.Is(err, ErrStackMismatch) || !strings.Contains(err.Error(), `"ipv6"`) {
			t.Fatalf("%s ADD on an ipv6 store: %v, want ErrStackMismatch naming ipv6", stack, err)
		}
	}
}

// Ensure an IPv6-only node does not create ENIs on a vSwitch without IPv6,
// and says why.
func TestAllocate_IPv6Only_VSwitchWithoutIPv6(t *testing.T) {
	db, cloud := mustStore(t), newFakeCloud()
	cloud.addVSwitch("vsw-a", "10.0.0.0/24", 200)
	node := testNode()
	node.Limits.IPv6PerENI = 6
	cfg := testConfig()
	cfg.IPStack = config.IPStackV6
	_, err := Allocate(bg, db, cloud, node, cfg, owner("c1"))
	if !errors.Is(err, eni.ErrIPv6Unsupported) || !strings.Contains(err.Error(), "ip_stack ipv6 needs vswitches with IPv6") {
		t.Fatalf("got %v", err)
	}
}
