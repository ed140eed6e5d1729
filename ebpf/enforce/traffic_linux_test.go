package enforce

import (
	"errors"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/veni-cni/veni/ebpf/fastpath"
	"github.com/veni-cni/veni/internal/testutil"
	"github.com/veni-cni/veni/policy"
)

const (
	okTimeout   = 3 * time.Second
	denyTimeout = 400 * time.Millisecond
)

// TestTraffic_PolicyOnVeths sends real packets between pods through the
// host stack, with the policy programs on the pods' host veths (tc and
// TCX): isolation both ways, replies, the node's own traffic, a policy
// change cutting an established connection and keeping another, fail
// closed, drop events and removal.
func TestTraffic_PolicyOnVeths(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.SkipOnOldKernel(t, "6.6", "TCX")
	for _, hook := range []string{fastpath.PodHookTC, fastpath.PodHookTCX} {
		t.Run(hook, func(t *testing.T) { testTraffic(t, hook, false) })
	}
}

// TestTraffic_FastPath is the same with the fast path on: pod-to-pod
// packets skip the destination's host veth (bpf_redirect_peer), so it is
// the fast path's own check of the destination's ingress policy that must
// drop what the policy denies.
func TestTraffic_FastPath(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.SkipOnOldKernel(t, "6.8", "the fast path (tcx and bpf_fib_lookup with a table id)")
	if err := fastpath.Supported(); err != nil {
		t.Fatalf("kernel >= 6.8 but: %v", err)
	}
	for _, hook := range []string{fastpath.PodHookTC, fastpath.PodHookTCX} {
		t.Run(hook, func(t *testing.T) { testTraffic(t, hook, true) })
	}
}

func fastpathCounters(tb testing.TB, d *fastpath.Datapath) fastpath.Counters {
	tb.Helper()
	if d == nil {
		return fastpath.Counters{}
	}
	c, err := d.Counters()
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func testTraffic(t *testing.T, hook string, fast bool) {
	n := mustTrafficNode(t)
	a := n.mustPod(t, "vpa", netip.MustParseAddr("10.77.1.1"))
	b := n.mustPod(t, "vpb", netip.MustParseAddr("10.77.1.2"))
	c := n.mustPod(t, "vpc", netip.MustParseAddr("10.77.1.3"))
	dir := mustPinDir(t)
	e := mustOpen(t, Options{PinDir: dir, PodHook: hook})
	var d *fastpath.Datapath
	if fast {
		var err error
		d, err = fastpath.Open(fastpath.Options{PinDir: dir, PodHook: hook, HostStack: &fastpath.HostStack{
			NodeAddrs: []netip.Addr{trafficNodeIP},
		}})
		if err != nil {
			t.Fatalf("fast path open: %v", err)
		}
		t.Cleanup(func() { d.Close() })
	}
	mustInNetNS(t, n.ns, func() error {
		var errs []error
		for _, p := range []*trafficPod{a, b, c} {
			errs = append(errs, e.AttachEndpoint(p.key()))
			if d != nil {
				errs = append(errs, d.AttachPod(n.fastpathEndpoint(p)))
			}
		}
		return errors.Join(errs...)
	})
	drops, err := e.Drops()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { drops.Close() })

	bHTTP, bAlt, bDNS := netip.AddrPortFrom(b.ip, 8080), netip.AddrPortFrom(b.ip, 8081), netip.AddrPortFrom(b.ip, 53)
	aHTTP := netip.AddrPortFrom(a.ip, 8080)
	mustServeTCPEcho(t, b.ns, bHTTP)
	mustServeTCPEcho(t, b.ns, bAlt)
	mustServeUDPEcho(t, b.ns, bDNS)
	mustServeTCPEcho(t, a.ns, aHTTP)

	pass := func(what string, from *trafficPod, nsName string, network string, dst netip.AddrPort) {
		t.Helper()
		ns := n.ns
		if from != nil {
			ns = from.ns
		}
		if err := exchange(ns, network, dst, okTimeout); err != nil {
			t.Errorf("%s (%s): %v", what, nsName, err)
		}
	}
	deny := func(what string, from *trafficPod, network string, dst netip.AddrPort) {
		t.Helper()
		if err := exchange(from.ns, network, dst, denyTimeout); err == nil {
			t.Errorf("%s: got through", what)
		}
	}

	pass("no policy: a to b", a, "a", "tcp4", bHTTP)
	pass("no policy: c to b's other port", c, "c", "tcp4", bAlt)

	// b admits a on tcp 8080 and udp 53, and may open nothing itself.
	allowA := func(extra ...policy.PortRule) *policy.Ruleset {
		rs := ruleset(entries(entry(a.ip.String()+"/32", append([]policy.PortRule{port(policy.ProtoTCP, 8080, 8080), port(policy.ProtoUDP, 53, 53)}, extra...)...)), entries())
		rs.IPs = []netip.Addr{b.ip}
		return rs
	}
	mustSet(t, e, b.key(), allowA())
	before := fastpathCounters(t, d)
	pass("a to b's allowed tcp port, replies through b's isolated egress", a, "a", "tcp4", bHTTP)
	pass("a to b's allowed udp port", a, "a", "udp4", bDNS)
	if d != nil {
		if got := fastpathCounters(t, d).FromPod.RedirectPeer - before.FromPod.RedirectPeer; got < 2 {
			t.Errorf("allowed pod-to-pod packets did not take the fast path: RedirectPeer +%d", got)
		}
	}
	before = fastpathCounters(t, d)
	deny("a to b's other port", a, "tcp4", bAlt)
	deny("c to b's allowed port", c, "tcp4", bHTTP)
	deny("b opening to a", b, "tcp4", aHTTP)
	pass("the node to b's other port", nil, "node", "tcp4", bAlt)
	if d != nil {
		if got := fastpathCounters(t, d).FromPod.DropPolicy - before.FromPod.DropPolicy; got < 2 {
			t.Errorf("the fast path's ingress check dropped %d packets, want the denied SYNs", got)
		}
	}
	wantDrop := Drop{Ifindex: b.host.Attrs().Index, Direction: Ingress, Reason: ReasonPolicy, Protocol: policy.ProtoTCP, Dst: bHTTP}
	if !findDrop(t, drops, func(dr Drop) bool {
		return dr.Ifindex == wantDrop.Ifindex && dr.Direction == Ingress && dr.Reason == ReasonPolicy &&
			dr.Protocol == policy.ProtoTCP && dr.Src.Addr() == c.ip && dr.Dst == bHTTP
	}) {
		t.Errorf("no drop event like %+v from %s", wantDrop, c.ip)
	}

	// A policy change: an established connection it still allows goes on,
	// one it no longer allows is cut on its next packet.
	kept, err := dial(a.ns, "tcp4", bHTTP, okTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()
	must(t, "kept connection before the change", roundTrip(kept, okTimeout))
	mustSet(t, e, b.key(), allowA(port(policy.ProtoUDP, 54, 54)))
	must(t, "kept connection after a change that still allows it", roundTrip(kept, okTimeout))
	cutOff := ruleset(entries(entry(c.ip.String()+"/32", port(policy.ProtoTCP, 8080, 8080))), entries())
	mustSet(t, e, b.key(), cutOff)
	if err := roundTrip(kept, denyTimeout); err == nil {
		t.Error("connection the new policy denies still works")
	}
	pass("c, now allowed", c, "c", "tcp4", bHTTP)
	if !findDrop(t, drops, func(dr Drop) bool {
		return dr.Ifindex == b.host.Attrs().Index && dr.Reason == ReasonChanged && dr.Src.Addr() == a.ip
	}) {
		t.Error("no policy-changed drop event for the cut connection")
	}
	st, err := e.EndpointStats(b.host.Attrs().Index)
	if err != nil {
		t.Fatal(err)
	}
	if st.AllowedIngress < 3 || st.DeniedIngress < 3 || st.DeniedEgress < 1 {
		t.Errorf("b's stats %+v: want allowed and denied flows counted both ways", st)
	}

	// a fails closed: it can open nothing, only the node reaches it.
	must(t, "fail closed", e.FailClosed(a.key()))
	mustSet(t, e, b.key(), allowA())
	deny("a, failing closed, to b", a, "tcp4", bHTTP)
	deny("c to a, failing closed", c, "tcp4", aHTTP)
	pass("the node to a, failing closed", nil, "node", "tcp4", aHTTP)

	// Removing b: everything passes, its hooks and records are gone.
	mustInNetNS(t, n.ns, func() error { return e.RemoveEndpoint(b.key()) })
	pass("c to b's other port once b is removed", c, "c", "tcp4", bAlt)
	eps, err := e.Endpoints()
	if err != nil {
		t.Fatal(err)
	}
	for _, ep := range eps {
		if ep.Ifindex == b.host.Attrs().Index {
			t.Errorf("b still listed after RemoveEndpoint: %+v", ep)
		}
	}
	from, to := linkNames(b.host.Attrs().Index)
	for _, name := range []string{from, to} {
		if _, err := os.Stat(e.linkPath(name)); err == nil {
			t.Errorf("link pin %s survived RemoveEndpoint", name)
		}
	}
	mustInNetNS(t, n.ns, func() error {
		l, err := n.h.LinkByIndex(b.host.Attrs().Index)
		if err != nil {
			return err
		}
		for _, parent := range []uint32{0xfffffff2, 0xfffffff3} {
			fs, err := n.h.FilterList(l, parent)
			if err != nil {
				continue
			}
			for _, f := range fs {
				if f.Attrs().Priority == tcFilterPrio {
					t.Errorf("policy filter %+v survived RemoveEndpoint", f.Attrs())
				}
			}
		}
		return nil
	})
}

// findDrop reads drop events until one matches (true) or none comes for
// a while (false).
func findDrop(tb testing.TB, r *DropReader, match func(Drop) bool) bool {
	tb.Helper()
	for {
		r.SetDeadline(time.Now().Add(time.Second))
		d, err := r.Read()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return false
		}
		if err != nil {
			tb.Fatalf("read drops: %v", err)
		}
		if match(d) {
			return true
		}
	}
}
