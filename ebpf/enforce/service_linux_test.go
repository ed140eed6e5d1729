package enforce

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/veni-cni/veni/policy"
)

// svcDeferMark is VENI_MARK_SVC_DEFER.
const svcDeferMark = 0x00100000

var testServiceCIDR = netip.MustParsePrefix("100.100.0.0/16")

// runOut runs prog on p with mark and returns whether it passed and the
// mark the program left.
func runOut(tb testing.TB, prog *ebpf.Program, p testPacket, mark uint32) (bool, uint32) {
	tb.Helper()
	ctxOut := make([]byte, 256) // room for a whole struct __sk_buff
	ret, err := prog.Run(&ebpf.RunOptions{Data: p.frame(), Context: skbContext(mark), ContextOut: ctxOut})
	if err != nil {
		tb.Fatalf("test run %s: %v", p, err)
	}
	out := binary.NativeEndian.Uint32(ctxOut[8:])
	switch int32(ret) {
	case -1:
		return true, out
	case 2:
		return false, out
	}
	tb.Fatalf("test run %s: verdict %d, want TCX_NEXT or TC_ACT_SHOT", p, int32(ret))
	return false, out
}

// svcFamily is one address family of the Service tests: the endpoint,
// a ClusterIP range and address in it, the DNS pod the policy allows and
// another pod it does not.
type svcFamily struct {
	name                 string
	cidr                 netip.Prefix
	ep, clusterIP        string
	dns, other, external string
}

var svcFamilies = []svcFamily{
	{"ipv4", testServiceCIDR, "10.0.0.1", "100.100.0.10", "10.5.0.10", "10.5.0.11", "8.8.8.8"},
	{"ipv6", netip.MustParsePrefix("fd00:100::/108"), "fd00::1", "fd00:100::a", "fd00:5::10", "fd00:5::11", "2001:db8::8"},
}

// dnsOnly isolates the endpoint (10.0.0.1 and fd00::1) both ways: egress
// only to the DNS pod (10.5.0.10, fd00:5::10) on port 53 (UDP and TCP),
// ingress only from itself (the tests' hairpin: a test packet's
// destination veth is the source's).
func dnsOnly() *policy.Ruleset {
	dns := []policy.PortRule{port(policy.ProtoUDP, 53, 53), port(policy.ProtoTCP, 53, 53)}
	return &policy.Ruleset{
		Pod: policy.PodRef{Namespace: "t", Name: "client"},
		IPs: []netip.Addr{epIP, epIP6},
		Ingress: policy.Direction{Isolated: true, Policies: []string{"t/p"}, CIDRs: []policy.CIDREntry{
			entry("10.0.0.1/32", anyPort()),
			entry("fd00::1/128", anyPort()),
		}},
		Egress: policy.Direction{Isolated: true, Policies: []string{"t/p"}, CIDRs: []policy.CIDREntry{
			entry("10.5.0.10/32", dns...),
			entry("fd00:5::10/128", dns...),
		}},
	}
}

// dualKey is the test endpoint with both addresses.
var dualKey = EndpointKey{Ifindex: loIfindex, IP: epIP, IP6: epIP6}

// TestPrograms_ServiceDeferred: a flow to a Service CIDR leaves
// pol_from_pod marked, undecided; pol_to_pod (local backend) and
// pol_to_eni (remote backend) decide it against the backend the host
// DNATed it to, and replies from the ClusterIP pass the client's ingress.
// The same over IPv6, with an IPv6 Service CIDR (a dual-stack cluster's).
func TestPrograms_ServiceDeferred(t *testing.T) {
	for _, f := range svcFamilies {
		t.Run(f.name, func(t *testing.T) { serviceDeferred(t, f) })
	}
}

func serviceDeferred(t *testing.T, f svcFamily) {
	e := newTestEnforcer(t)
	mustSet(t, e.Enforcer, dualKey, dnsOnly())
	ep, clusterIP, dns, other := f.ep, f.clusterIP, f.dns, f.other

	// Without Service CIDRs the ClusterIP is judged as sent: denied.
	if out(t, e, udp(ep, clusterIP, 3000, 53)) {
		t.Fatal("flow to a ClusterIP passed with no Service CIDR known")
	}
	if err := e.SetServiceCIDRs([]netip.Prefix{f.cidr}); err != nil {
		t.Fatal(err)
	}
	if got, err := e.ServiceCIDRs(); err != nil || len(got) != 1 || got[0] != f.cidr {
		t.Fatalf("ServiceCIDRs() = %v, %v; want [%s]", got, err, f.cidr)
	}

	for _, tc := range []struct {
		name   string
		prog   *ebpf.Program
		pre    testPacket // from the pod, to the ClusterIP
		post   testPacket // after DNAT
		pass   bool
		marked bool // the post-DNAT packet carries the mark
	}{
		{"local dns backend, udp", e.test.PolToPod, udp(ep, clusterIP, 3001, 53), udp(ep, dns, 3001, 53), true, true},
		{"local other backend, udp", e.test.PolToPod, udp(ep, clusterIP, 3002, 53), udp(ep, other, 3002, 53), false, true},
		{"remote dns backend, udp", e.test.PolToEni, udp(ep, clusterIP, 3003, 53), udp(ep, dns, 3003, 53), true, true},
		{"remote other backend, udp", e.test.PolToEni, udp(ep, clusterIP, 3004, 53), udp(ep, other, 3004, 53), false, true},
		{"remote dns backend, tcp", e.test.PolToEni, tcpSyn(ep, clusterIP, 3005, 53), tcpSyn(ep, dns, 3005, 53), true, true},
		{"remote dns backend, wrong port", e.test.PolToEni, tcpSyn(ep, clusterIP, 3006, 80), tcpSyn(ep, dns, 3006, 80), false, true},
		// A packet pol_from_pod did not mark is not decided at the ENI.
		{"remote, unmarked", e.test.PolToEni, udp(ep, f.external, 3007, 53), udp(ep, other, 3007, 53), true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pass, mark := runOut(t, e.objs.PolFromPod, tc.pre, 0)
			if tc.marked {
				if !pass || mark&svcDeferMark == 0 {
					t.Fatalf("from the pod: pass=%v mark=%#x, want a pass with the deferral mark", pass, mark)
				}
			} else {
				mark = 0
			}
			pass, left := runOut(t, tc.prog, tc.post, mark)
			if pass != tc.pass {
				t.Fatalf("after DNAT: pass=%v, want %v", pass, tc.pass)
			}
			if left&svcDeferMark != 0 {
				t.Errorf("after DNAT: mark %#x still carries the deferral bit", left)
			}
			if !tc.pass || !tc.marked {
				return
			}
			// The reply, un-NATed by the host, comes from the ClusterIP.
			reply := testPacket{src: tc.pre.dst, dst: tc.pre.src, proto: tc.pre.proto, sport: tc.pre.dport, dport: tc.pre.sport, ack: tc.pre.proto == policy.ProtoTCP}
			if !in(t, e, reply) {
				t.Errorf("reply %s dropped by the client's ingress", reply)
			}
			// The flow's next packet is marked again and passes.
			next := tc.pre
			next.syn, next.ack = false, tc.pre.proto == policy.ProtoTCP
			pass, mark = runOut(t, e.objs.PolFromPod, next, 0)
			if !pass || mark&svcDeferMark == 0 {
				t.Fatalf("next packet from the pod: pass=%v mark=%#x", pass, mark)
			}
			post := tc.post
			post.syn, post.ack = next.syn, next.ack
			if pass, _ := runOut(t, tc.prog, post, mark); !pass {
				t.Error("next packet after DNAT dropped")
			}
		})
	}

	// A direct dial to the disallowed pod is still dropped where it leaves.
	if out(t, e, udp(ep, other, 3010, 53)) {
		t.Error("direct flow to a pod the policy does not allow passed")
	}
	c, err := e.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if c.Deferred == 0 {
		t.Errorf("counters %+v: no deferred flow counted", c)
	}
}

// TestPrograms_ServiceDeferred6_Forgotten: once the endpoint's IPv6 is no
// longer recorded (its table installed without it, then removed), a
// deferred IPv6 packet finds no source endpoint and is no longer decided
// by the old endpoint's policy; its IPv4 twin record is untouched.
func TestPrograms_ServiceDeferred6_Forgotten(t *testing.T) {
	e := newTestEnforcer(t)
	f := svcFamilies[1]
	if err := e.SetServiceCIDRs([]netip.Prefix{testServiceCIDR, f.cidr}); err != nil {
		t.Fatal(err)
	}
	mustSet(t, e.Enforcer, dualKey, dnsOnly())
	eps, err := e.Endpoints()
	if err != nil || len(eps) != 1 || eps[0].IP6 != epIP6 {
		t.Fatalf("Endpoints() = %+v, %v; want one with ipv6 %s", eps, err, epIP6)
	}
	_, mark := runOut(t, e.objs.PolFromPod, udp(f.ep, f.clusterIP, 3100, 53), 0)
	if pass, _ := runOut(t, e.test.PolToEni, udp(f.ep, f.other, 3100, 53), mark); pass {
		t.Fatal("deferred ipv6 flow to a pod the policy does not allow passed")
	}
	// The same table without the IPv6: its record goes.
	mustSet(t, e.Enforcer, loKey, dnsOnly())
	if pass, _ := runOut(t, e.test.PolToEni, udp(f.ep, f.other, 3101, 53), svcDeferMark); !pass {
		t.Error("deferred ipv6 packet still decided by an endpoint that no longer has the address")
	}
	if pass, _ := runOut(t, e.test.PolToEni, udp("10.0.0.1", "10.5.0.11", 3102, 53), svcDeferMark); pass {
		t.Error("deferred ipv4 packet of the endpoint passed: its ipv4 record went with the ipv6")
	}
	if err := e.RemoveEndpoint(loKey); err != nil {
		t.Fatal(err)
	}
	var n int
	var k policyPolIn6
	var v uint32
	for it := e.objs.VeniPolIps6.Iterate(); it.Next(&k, &v); {
		n++
	}
	if n != 0 {
		t.Errorf("%d ipv6 records left after RemoveEndpoint", n)
	}
}

// TestPrograms_ServiceDeferred_ENICost: pol_to_eni does no map lookup for
// a packet without the deferral mark.
func TestPrograms_ServiceDeferred_ENICost(t *testing.T) {
	e := newTestEnforcer(t)
	mustSet(t, e.Enforcer, loKey, dnsOnly())
	before := e.lookups(t)
	if pass, _ := runOut(t, e.test.PolToEni, udp("10.0.0.1", "10.5.0.11", 4000, 53), 0); !pass {
		t.Fatal("unmarked packet dropped at the ENI")
	}
	if n := e.lookups(t) - before; n != 0 {
		t.Errorf("unmarked packet at the ENI cost %d lookups, want 0", n)
	}
}

// TestEnforcer_ServiceCIDRs: setting the same CIDRs again changes
// nothing; a new set replaces the old, in either family.
func TestEnforcer_ServiceCIDRs(t *testing.T) {
	e := newTestEnforcer(t)
	a, b := netip.MustParsePrefix("10.96.0.0/12"), netip.MustParsePrefix("100.100.0.0/16")
	c, d := netip.MustParsePrefix("fd00::/108"), netip.MustParsePrefix("fd00:1::/112")
	for _, set := range [][]netip.Prefix{{a}, {a}, {b, c}, {b, c}, {d}, {}} {
		if err := e.SetServiceCIDRs(set); err != nil {
			t.Fatal(err)
		}
		got, err := e.ServiceCIDRs()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, set) {
			t.Errorf("after %v: %v", set, got)
		}
	}
}

// TestAttachENI_HookAndTeardown: pol_to_eni goes on the ENI's egress only
// (the fast path owns its ingress), attaching again changes nothing,
// DetachENI and Teardown take it off.
func TestAttachENI_HookAndTeardown(t *testing.T) {
	n := mustTrafficNode(t)
	dir := mustPinDir(t)
	e := mustOpen(t, Options{PinDir: dir})
	eni := n.eni.Attrs().Index
	attach := func() {
		t.Helper()
		for i := 0; i < 2; i++ {
			mustInNetNS(t, n.ns, func() error { return e.AttachENI(eni) })
		}
		in, out := vethFilters(t, n.h, n.eni)
		if len(in) != 0 || len(out) != 1 || out[0] != tcFilterPrefix+"to_eni" {
			t.Fatalf("eni filters: ingress %v egress %v; want none and [%sto_eni]", in, out, tcFilterPrefix)
		}
	}
	gone := func(what string) {
		t.Helper()
		if in, out := vethFilters(t, n.h, n.eni); len(in)+len(out) != 0 {
			t.Fatalf("after %s: eni filters: ingress %v egress %v", what, in, out)
		}
	}
	attach()
	mustInNetNS(t, n.ns, func() error { return e.DetachENI(eni) })
	gone("DetachENI")
	attach()
	mustInNetNS(t, n.ns, func() error { return Teardown(dir) })
	gone("Teardown")
}
