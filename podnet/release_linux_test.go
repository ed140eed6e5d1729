package podnet

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/veni-cni/veni/internal/testutil"
	"github.com/veni-cni/veni/ipam"
	"github.com/veni-cni/veni/store"
)

// podRules returns the node's rules that select ip (prio 512 to, 2048
// from).
func podRules(tb testing.TB, nodeNS string, ip netip.Addr) []netlink.Rule {
	tb.Helper()
	var out []netlink.Rule
	err := inNS(nodeNS, func() error {
		rules, err := netlink.RuleList(netlink.FAMILY_V4)
		for _, r := range rules {
			if (r.Src != nil && r.Src.IP.Equal(ip.AsSlice())) || (r.Dst != nil && r.Dst.IP.Equal(ip.AsSlice())) {
				out = append(out, r)
			}
		}
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

func linkExists(tb testing.TB, nodeNS, name string) bool {
	tb.Helper()
	found := false
	_ = inNS(nodeNS, func() error {
		_, err := netlink.LinkByName(name)
		found = err == nil
		return nil
	})
	return found
}

// Ensure Release tears the pod down before it frees the address: in the
// window between the two no other owner can reserve the address (so no
// teardown can strip a newer pod), and afterwards the veth, the rules and
// the allocation are gone.
func TestRelease_TeardownBeforeFree(t *testing.T) {
	testutil.RequireRoot(t)
	db, nodeNS := mustStore(t), mustNetNS(t)
	p := mustAdd(t, db, nodeNS, "c1")
	// Only p's address may be handed out next: take every other free one.
	mustTakeAllFree(t, db)

	var inWindow error
	testHookTornDown = func(a store.Allocation) {
		if linkExists(t, nodeNS, p.host.Name) {
			inWindow = errors.New("freeing before the veth is gone")
			return
		}
		_, err := ipam.Reserve(db, ipam.Owner{ContainerID: "thief", IfName: "eth0"})
		if !errors.Is(err, ipam.ErrPoolEmpty) {
			inWindow = errors.New("the address could be reserved while its pod was torn down")
		}
	}
	t.Cleanup(func() { testHookTornDown = nil })
	var got *store.Allocation
	err := inNS(nodeNS, func() (err error) {
		got, err = Release(context.Background(), Node{Store: db}, p.att, ReleaseOptions{Wait: time.Second})
		return err
	})
	if err != nil || got == nil || got.IP != p.res.IP {
		t.Fatalf("Release = %+v, %v", got, err)
	}
	if inWindow != nil {
		t.Fatal(inWindow)
	}
	if rules := podRules(t, nodeNS, p.res.IP); len(rules) != 0 {
		t.Errorf("rules of %s left: %v", p.res.IP, rules)
	}
	if _, found := allocation(t, db, p.att.Key()); found {
		t.Error("allocation left")
	}
	// DEL again (containerd's second DEL, without netns) is a no-op.
	err = inNS(nodeNS, func() error {
		_, err := Release(context.Background(), Node{Store: db}, Attachment{ContainerID: "c1", IfName: "eth0"}, ReleaseOptions{Wait: time.Second})
		return err
	})
	if err != nil {
		t.Fatalf("second DEL: %v", err)
	}
}

// Ensure a DEL that comes late, after GC released the pod and a new pod
// got its address, leaves the new pod's veth, route and rules alone.
func TestRelease_LateDELKeepsNewOwner(t *testing.T) {
	testutil.RequireRoot(t)
	db, nodeNS := mustStore(t), mustNetNS(t)
	old := mustAdd(t, db, nodeNS, "old")
	mustTakeAllFree(t, db)
	mustDeleteNetNS(t, old.att.NetNS)
	err := inNS(nodeNS, func() error {
		_, err := GC(context.Background(), Node{Store: db}, OwnerGone(db.ClaimsDir(), 0, time.Now()), "OwnerGone")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	next := mustAdd(t, db, nodeNS, "new")
	if next.res.IP != old.res.IP {
		t.Fatalf("new pod got %s, want the freed %s", next.res.IP, old.res.IP)
	}
	err = inNS(nodeNS, func() error {
		_, err := Release(context.Background(), Node{Store: db}, old.att, ReleaseOptions{Wait: time.Second})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(podRules(t, nodeNS, next.res.IP)); n != 2 || !linkExists(t, nodeNS, next.host.Name) {
		t.Fatalf("late DEL of the old pod stripped the new one: %d rules, veth %v", n, linkExists(t, nodeNS, next.host.Name))
	}
	if a, found := allocation(t, db, next.att.Key()); !found || a.State != store.IPBound {
		t.Fatalf("new pod's allocation %+v %v", a, found)
	}
}

// Ensure GC skips an attachment another process works on, and DEL waits
// for it (the same attachment's ADD still running).
func TestRelease_Busy(t *testing.T) {
	testutil.RequireRoot(t)
	db, nodeNS := mustStore(t), mustNetNS(t)
	p := mustAdd(t, db, nodeNS, "c1")
	claim, err := store.TryClaim(store.OwnerClaim(db.ClaimsDir(), p.att.Key()), true)
	if err != nil {
		t.Fatal(err)
	}
	err = inNS(nodeNS, func() error {
		_, err := Release(context.Background(), Node{Store: db}, p.att, ReleaseOptions{Dead: func(store.Allocation, bool) bool { return true }})
		return err
	})
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("GC-style release while busy = %v, want ErrBusy", err)
	}
	time.AfterFunc(100*time.Millisecond, func() { claim.Release() })
	start := time.Now()
	var got *store.Allocation
	err = inNS(nodeNS, func() (err error) {
		got, err = Release(context.Background(), Node{Store: db}, p.att, ReleaseOptions{Wait: 5 * time.Second})
		return err
	})
	if err != nil || got == nil {
		t.Fatalf("DEL after the ADD finished = %+v, %v", got, err)
	}
	if d := time.Since(start); d < 90*time.Millisecond {
		t.Errorf("DEL did not wait for the running ADD (%s)", d)
	}
}

// Ensure GC in the ADD's window (reserved, not yet committed: the ADD is
// plumbing) leaves the reservation alone even with no grace period, because
// the ADD holds the attachment's claim; once the ADD died, GC collects it.
func TestGC_ADDInWindow(t *testing.T) {
	testutil.RequireRoot(t)
	db, nodeNS := mustStore(t), mustNetNS(t)
	key := store.NewOwnerKey("adding", "eth0")
	claim, err := ClaimForAdd(context.Background(), db, key, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	res, err := ipam.Reserve(db, ipam.Owner{ContainerID: "adding", IfName: "eth0", NetNS: mustNetNS(t)})
	if err != nil {
		t.Fatal(err)
	}
	gc := func() []store.Allocation {
		t.Helper()
		var out []store.Allocation
		err := inNS(nodeNS, func() (err error) {
			out, err = GC(context.Background(), Node{Store: db}, OwnerGone(db.ClaimsDir(), 0, time.Now()), "OwnerGone")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got := gc(); len(got) != 0 {
		t.Fatalf("GC released %v while its ADD runs", got)
	}
	if err := ipam.Commit(db, res.Key, ipam.HostSide{}, nil); err != nil {
		t.Fatalf("commit after GC: %v", err)
	}
	// The next ADD of another attachment crashes between its two
	// transactions: its claim dies with it, and GC takes the address back.
	crashed, err := ipam.Reserve(db, ipam.Owner{ContainerID: "crashed", IfName: "eth0"})
	if err != nil {
		t.Fatal(err)
	}
	claim.Release()
	got := gc()
	if len(got) != 1 || got[0].IP != crashed.IP {
		t.Fatalf("GC released %v, want the crashed ADD's %s", got, crashed.IP)
	}
}

// Ensure a bound allocation whose netns path became an empty file (what
// containerd 1.6 leaves when it unmounts a failed sandbox's netns) is
// collected: it used to stay bound forever.
func TestGC_EmptyNetnsFile(t *testing.T) {
	testutil.RequireRoot(t)
	db, nodeNS := mustStore(t), mustNetNS(t)
	p := mustAdd(t, db, nodeNS, "c1")
	mustDeleteNetNS(t, p.att.NetNS)
	if err := os.WriteFile(p.att.NetNS, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(p.att.NetNS) })
	var got []store.Allocation
	err := inNS(nodeNS, func() (err error) {
		got, err = GC(context.Background(), Node{Store: db}, OwnerGone(db.ClaimsDir(), time.Minute, time.Now()), "OwnerGone")
		return err
	})
	if err != nil || len(got) != 1 || got[0].IP != p.res.IP {
		t.Fatalf("GC = %v, %v; want %s released", got, err, p.res.IP)
	}
	if linkExists(t, nodeNS, p.host.Name) {
		t.Error("host veth left")
	}
}

// mustTakeAllFree reserves every free address for throwaway owners.
func mustTakeAllFree(tb testing.TB, db store.File) {
	tb.Helper()
	for i := 0; ; i++ {
		self := fmt.Sprintf("/proc/%d/ns/net", os.Getpid())
		id, err := IdentifyNetNS(self)
		if err != nil {
			tb.Fatal(err)
		}
		_, err = ipam.Reserve(db, ipam.Owner{ContainerID: "filler-" + string(rune('a'+i)), IfName: "eth0", NetNS: self, NetNSID: id})
		if errors.Is(err, ipam.ErrPoolEmpty) {
			return
		}
		if err != nil {
			tb.Fatal(err)
		}
		// Fillers must look alive to GC: bound, in this process's namespace.
		if err := ipam.Commit(db, store.NewOwnerKey("filler-"+string(rune('a'+i)), "eth0"), ipam.HostSide{}, nil); err != nil {
			tb.Fatal(err)
		}
	}
}

// mustDeleteNetNS unmounts and removes a namespace the test made, as a
// runtime does when a sandbox goes.
func mustDeleteNetNS(tb testing.TB, path string) {
	tb.Helper()
	if err := deleteNamedNS(path); err != nil {
		tb.Fatal(err)
	}
}
