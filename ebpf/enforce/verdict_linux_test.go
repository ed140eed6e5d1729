package enforce

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/veni-cni/veni/policy"
)

// Verdicts of the programs run with bpf_prog_test_run on crafted frames.
// A test run's packet comes from the loopback device, ifindex 1, which is
// therefore the endpoint these tests give tables to.
const loIfindex = 1

var (
	epIP   = netip.MustParseAddr("10.0.0.1")
	loKey  = EndpointKey{Ifindex: loIfindex, IP: epIP}
	nodeIP = netip.MustParseAddr("192.168.0.1")
)

func port(proto policy.Protocol, first, last uint16) policy.PortRule {
	return policy.PortRule{Protocol: proto, First: first, Last: last, By: []policy.RuleRef{{Policy: "t/p"}}}
}

func anyPort() policy.PortRule {
	return policy.PortRule{Protocol: policy.ProtoAny, By: []policy.RuleRef{{Policy: "t/p"}}}
}

func entry(prefix string, rules ...policy.PortRule) policy.CIDREntry {
	return policy.CIDREntry{Prefix: netip.MustParsePrefix(prefix), Rules: rules}
}

// testRuleset is a compiled ruleset written by hand, covering what the
// kernel must decide: ports by protocol, ranges, an except (an entry with
// no rules) shadowing a shorter prefix, a longer prefix inside the except
// that allows again, any-protocol entries and the node's address.
func testRuleset() *policy.Ruleset {
	return &policy.Ruleset{
		Pod: policy.PodRef{Namespace: "t", Name: "e"},
		IPs: []netip.Addr{epIP},
		Ingress: policy.Direction{Isolated: true, Policies: []string{"t/p"}, CIDRs: []policy.CIDREntry{
			entry("10.1.0.0/16", port(policy.ProtoTCP, 80, 80), port(policy.ProtoUDP, 53, 53), port(policy.ProtoSCTP, 9, 9)),
			entry("10.1.2.0/24"),
			entry("10.1.2.3/32", port(policy.ProtoTCP, 8080, 8090)),
			entry("192.168.0.1/32", policy.PortRule{Protocol: policy.ProtoAny, By: []policy.RuleRef{{Host: true}}}),
			entry("fd00::/64", port(policy.ProtoTCP, 80, 80)),
		}},
		Egress: policy.Direction{Isolated: true, Policies: []string{"t/p"}, CIDRs: []policy.CIDREntry{
			entry("0.0.0.0/0", port(policy.ProtoTCP, 443, 443)),
			entry("10.0.0.0/8"),
			entry("10.2.0.0/16", anyPort()),
			entry("10.3.0.0/16", port(policy.ProtoUDP, 1000, 2000)),
		}},
	}
}

// testEnforcer is an Enforcer on a fresh pin dir with the test build of
// its programs loaded beside (sharing its maps).
type testEnforcer struct {
	*Enforcer
	test policyTestObjects
}

func newTestEnforcer(tb testing.TB) *testEnforcer {
	tb.Helper()
	e := &testEnforcer{Enforcer: mustOpen(tb, Options{PinDir: mustPinDir(tb), Flows: 4096})}
	spec, err := loadPolicyTest()
	if err != nil {
		tb.Fatal(err)
	}
	if err := spec.LoadAndAssign(&e.test, &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: e.pinDir}}); err != nil {
		tb.Fatalf("load test build: %+v", err)
	}
	tb.Cleanup(func() { e.test.Close() })
	return e
}

// hostMark is VENI_POL_TEST_HOST_MARK: the test build's pol_to_pod treats
// a packet with this mark as the node's own.
const hostMark = 0x484f5354

// skbContext returns a struct __sk_buff for bpf_prog_test_run carrying
// mark (the fields before it must be zero).
func skbContext(mark uint32) []byte {
	ctx := make([]byte, 12)
	binary.NativeEndian.PutUint32(ctx[8:], mark)
	return ctx
}

// lookups returns the test build's count of map lookups so far.
func (e *testEnforcer) lookups(tb testing.TB) uint64 {
	tb.Helper()
	var perCPU []uint64
	if err := e.test.VeniPolProbe.Lookup(uint32(0), &perCPU); err != nil {
		tb.Fatal(err)
	}
	var n uint64
	for _, v := range perCPU {
		n += v
	}
	return n
}

// run runs prog on p and reports whether it passed (TCX_NEXT) or dropped
// (TC_ACT_SHOT); any other verdict fails the test.
func run(tb testing.TB, prog *ebpf.Program, p testPacket) bool {
	tb.Helper()
	return runMark(tb, prog, p, 0)
}

func runMark(tb testing.TB, prog *ebpf.Program, p testPacket, mark uint32) bool {
	tb.Helper()
	ret, err := prog.Run(&ebpf.RunOptions{Data: p.frame(), Context: skbContext(mark)})
	if err != nil {
		tb.Fatalf("test run %s: %v", p, err)
	}
	switch int32(ret) {
	case -1:
		return true
	case 2:
		return false
	}
	tb.Fatalf("test run %s: verdict %d, want TCX_NEXT or TC_ACT_SHOT", p, int32(ret))
	return false
}

// in and out run the ingress (to the pod) and egress (from the pod)
// programs: the test build's pol_to_pod (the real one would take every
// test packet for the node's own), the real pol_from_pod.
func in(tb testing.TB, e *testEnforcer, p testPacket) bool {
	tb.Helper()
	return run(tb, e.test.PolToPod, p)
}

// inFromHost runs pol_to_pod on a packet the node itself sends.
func inFromHost(tb testing.TB, e *testEnforcer, p testPacket) bool {
	tb.Helper()
	return runMark(tb, e.test.PolToPod, p, hostMark)
}

func out(tb testing.TB, e *testEnforcer, p testPacket) bool {
	tb.Helper()
	return run(tb, e.objs.PolFromPod, p)
}

func mustSet(tb testing.TB, e *Enforcer, ep EndpointKey, rs *policy.Ruleset) {
	tb.Helper()
	if err := e.SetEndpoint(ep, rs); err != nil {
		tb.Fatalf("set endpoint %s: %v", ep, err)
	}
}

var (
	a4 = netip.MustParseAddr
)

func tcpSyn(src, dst string, sport, dport uint16) testPacket {
	return testPacket{src: a4(src), dst: a4(dst), proto: policy.ProtoTCP, sport: sport, dport: dport, syn: true}
}

func tcpAck(src, dst string, sport, dport uint16) testPacket {
	return testPacket{src: a4(src), dst: a4(dst), proto: policy.ProtoTCP, sport: sport, dport: dport, ack: true}
}

func udp(src, dst string, sport, dport uint16) testPacket {
	return testPacket{src: a4(src), dst: a4(dst), proto: policy.ProtoUDP, sport: sport, dport: dport}
}

func sctp(src, dst string, sport, dport uint16) testPacket {
	return testPacket{src: a4(src), dst: a4(dst), proto: policy.ProtoSCTP, sport: sport, dport: dport}
}

func echo(src, dst string, id uint16) testPacket {
	return testPacket{src: a4(src), dst: a4(dst), proto: policy.ProtoICMP, icmpType: 8, echoID: id}
}

// TestPrograms_Verdicts decides new flows of every kind against
// testRuleset, each flow from its own port so that no connection entry
// decides for it.
func TestPrograms_Verdicts(t *testing.T) {
	e := newTestEnforcer(t)
	mustSet(t, e.Enforcer, loKey, testRuleset())
	const ep = "10.0.0.1"
	tests := []struct {
		name    string
		ingress bool
		p       testPacket
		pass    bool
	}{
		{"tcp to an allowed port", true, tcpSyn("10.1.5.5", ep, 1001, 80), true},
		{"tcp to another port", true, tcpSyn("10.1.5.5", ep, 1002, 81), false},
		{"udp to an allowed port", true, udp("10.1.5.5", ep, 1003, 53), true},
		{"udp to another port", true, udp("10.1.5.5", ep, 1004, 54), false},
		{"sctp to an allowed port", true, sctp("10.1.5.5", ep, 1005, 9), true},
		{"tcp to sctp's port", true, tcpSyn("10.1.5.5", ep, 1006, 9), false},
		{"udp to tcp's port", true, udp("10.1.5.5", ep, 1007, 80), false},
		{"from the except", true, tcpSyn("10.1.2.5", ep, 1008, 80), false},
		{"from a host inside the except, its own range", true, tcpSyn("10.1.2.3", ep, 1009, 8085), true},
		{"from a host inside the except, range end", true, tcpSyn("10.1.2.3", ep, 1010, 8090), true},
		{"from a host inside the except, past the range", true, tcpSyn("10.1.2.3", ep, 1011, 8091), false},
		{"from a host inside the except, the shorter prefix's port", true, tcpSyn("10.1.2.3", ep, 1012, 80), false},
		{"from an unlisted address", true, tcpSyn("172.16.0.1", ep, 1013, 80), false},
		{"icmp echo from the node (any protocol)", true, echo("192.168.0.1", ep, 7), true},
		{"tcp from the node, any port", true, tcpSyn("192.168.0.1", ep, 1014, 12345), true},
		{"icmp echo from a port-only peer", true, echo("10.1.5.5", ep, 8), false},
		{"ipv6 tcp to an allowed port", true, tcpSyn("fd00::5", "fd00::1", 1015, 80), true},
		{"ipv6 tcp to another port", true, tcpSyn("fd00::5", "fd00::1", 1016, 81), false},
		{"ipv6 udp to tcp's port", true, udp("fd00::5", "fd00::1", 1017, 80), false},
		{"ipv6 from an unlisted address", true, tcpSyn("fd00:1::5", "fd00::1", 1018, 80), false},
		{"ipv6 egress, no ipv6 rule", false, tcpSyn("fd00::1", "fd00::5", 2010, 443), false},
		{"arp", true, testPacket{arp: true}, true},
		{"egress https anywhere", false, tcpSyn(ep, "8.8.8.8", 2001, 443), true},
		{"egress http anywhere", false, tcpSyn(ep, "8.8.8.8", 2002, 80), false},
		{"egress https into the except", false, tcpSyn(ep, "10.9.0.1", 2003, 443), false},
		{"egress anything to an any-protocol prefix", false, udp(ep, "10.2.3.4", 2004, 9999), true},
		{"egress icmp to an any-protocol prefix", false, echo(ep, "10.2.3.4", 9), true},
		{"egress icmp elsewhere", false, echo(ep, "8.8.8.8", 10), false},
		{"egress udp range start", false, udp(ep, "10.3.0.1", 2005, 1000), true},
		{"egress udp range end", false, udp(ep, "10.3.0.1", 2006, 2000), true},
		{"egress udp below the range", false, udp(ep, "10.3.0.1", 2007, 999), false},
		{"egress udp above the range", false, udp(ep, "10.3.0.1", 2008, 2001), false},
		{"egress tcp in the udp range", false, tcpSyn(ep, "10.3.0.1", 2009, 1500), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got bool
			if tc.ingress {
				got = in(t, e, tc.p)
			} else {
				got = out(t, e, tc.p)
			}
			if got != tc.pass {
				t.Errorf("%s: pass=%v, want %v", tc.p, got, tc.pass)
			}
		})
	}
}

// TestPrograms_Unselected: an endpoint without a table passes everything,
// in both directions, and gets no connection entries.
func TestPrograms_Unselected(t *testing.T) {
	e := newTestEnforcer(t)
	for _, p := range []testPacket{
		tcpSyn("10.1.5.5", "10.0.0.1", 1, 81), udp("172.16.0.1", "10.0.0.1", 2, 9), udp("fd00::5", "fd00::1", 2, 9), echo("8.8.8.8", "10.0.0.1", 3),
	} {
		if !in(t, e, p) || !out(t, e, p) {
			t.Errorf("%s dropped for an endpoint no policy selects", p)
		}
	}
	// A ruleset isolating nothing removes the table.
	mustSet(t, e.Enforcer, loKey, testRuleset())
	if in(t, e, tcpSyn("10.1.5.5", "10.0.0.1", 4, 81)) {
		t.Fatal("isolated endpoint passed a denied flow")
	}
	mustSet(t, e.Enforcer, loKey, &policy.Ruleset{})
	if !in(t, e, tcpSyn("10.1.5.5", "10.0.0.1", 5, 81)) {
		t.Error("endpoint whose ruleset isolates nothing still drops")
	}
	eps, err := e.Endpoints()
	if err != nil {
		t.Fatal(err)
	}
	for _, ep := range eps {
		if ep.Selected {
			t.Errorf("endpoint %+v still has a table", ep)
		}
	}
}
