package enforce

import (
	"errors"
	"maps"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/veni-cni/veni/policy"
)

// ruleset isolates the directions given a non-nil list of entries (an
// empty list isolates with nothing allowed).
func ruleset(ingress, egress []policy.CIDREntry) *policy.Ruleset {
	rs := &policy.Ruleset{Pod: policy.PodRef{Namespace: "t", Name: "e"}, IPs: []netip.Addr{epIP}}
	if ingress != nil {
		rs.Ingress = policy.Direction{Isolated: true, Policies: []string{"t/p"}, CIDRs: ingress}
	}
	if egress != nil {
		rs.Egress = policy.Direction{Isolated: true, Policies: []string{"t/p"}, CIDRs: egress}
	}
	return rs
}

func entries(e ...policy.CIDREntry) []policy.CIDREntry { return append([]policy.CIDREntry{}, e...) }

func echoReply(src, dst string, id uint16) testPacket {
	return testPacket{src: a4(src), dst: a4(dst), proto: policy.ProtoICMP, icmpType: 0, echoID: id}
}

// icmpErr is an ICMP destination unreachable (port) from src to dst
// quoting q.
func icmpErr(src, dst string, q testPacket) testPacket {
	return testPacket{src: a4(src), dst: a4(dst), proto: policy.ProtoICMP, icmpType: 3, icmpCode: 3, quoted: &q}
}

func mustEndpoint(tb testing.TB, e *Enforcer, ifindex int) Endpoint {
	tb.Helper()
	eps, err := e.Endpoints()
	if err != nil {
		tb.Fatal(err)
	}
	for _, ep := range eps {
		if ep.Ifindex == ifindex {
			return ep
		}
	}
	tb.Fatalf("no endpoint of ifindex %d in %+v", ifindex, eps)
	return Endpoint{}
}

func mustCountersOf(tb testing.TB, e *Enforcer) Counters {
	tb.Helper()
	c, err := e.Counters()
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

type verdict struct {
	what    string
	ingress bool
	p       testPacket
	pass    bool
}

func (e *testEnforcer) expect(tb testing.TB, vs ...verdict) {
	tb.Helper()
	for _, v := range vs {
		var got bool
		if v.ingress {
			got = in(tb, e, v.p)
		} else {
			got = out(tb, e, v.p)
		}
		if got != v.pass {
			tb.Errorf("%s (%s): pass=%v, want %v", v.what, v.p, got, v.pass)
		}
	}
}

// TestPrograms_UnselectedOneLookup: a packet of an endpoint no policy
// selects costs exactly one map lookup, in both programs, even while other
// endpoints have tables; a selected endpoint's packet costs more.
func TestPrograms_UnselectedOneLookup(t *testing.T) {
	e := newTestEnforcer(t)
	pkts := []testPacket{tcpSyn("10.1.5.5", "10.0.0.1", 1, 81), udp("10.0.0.1", "8.8.8.8", 2, 53), echo("8.8.8.8", "10.0.0.1", 3), udp("fd00:1::5", "fd00::1", 2, 53), echo6("fd00:1::5", "fd00::1", 4)}
	check := func(what string) {
		t.Helper()
		for _, p := range pkts {
			for _, prog := range []*ebpf.Program{e.test.PolToPod, e.test.PolFromPod} {
				before := e.lookups(t)
				if !run(t, prog, p) {
					t.Errorf("%s: %s dropped", what, p)
				}
				if n := e.lookups(t) - before; n != 1 {
					t.Errorf("%s: %s cost %d map lookups, want 1", what, p, n)
				}
			}
		}
	}
	check("no tables at all")
	other := EndpointKey{Ifindex: 4242, IP: netip.MustParseAddr("10.0.0.2")}
	mustSet(t, e.Enforcer, other, testRuleset())
	check("another endpoint selected")

	mustSet(t, e.Enforcer, loKey, testRuleset())
	before := e.lookups(t)
	in(t, e, tcpSyn("10.1.5.5", "10.0.0.1", 9, 80))
	if n := e.lookups(t) - before; n < 3 {
		t.Errorf("a new flow of a selected endpoint cost %d lookups: the probe does not count", n)
	}
}

// TestPrograms_RepliesPass: the replies of a flow the endpoint opened pass
// its isolated ingress (TCP, UDP, ICMP echo), packets of flows it never
// opened do not, and a SYN from the peer on the same tuple is a new flow.
func TestPrograms_RepliesPass(t *testing.T) {
	e := newTestEnforcer(t)
	mustSet(t, e.Enforcer, loKey, ruleset(entries(), entries(entry("10.2.0.0/16", anyPort()))))
	const ep, peer = "10.0.0.1", "10.2.3.4"
	e.expect(t,
		verdict{"tcp syn out", false, tcpSyn(ep, peer, 3001, 443), true},
		verdict{"its syn-ack", true, testPacket{src: a4(peer), dst: a4(ep), proto: policy.ProtoTCP, sport: 443, dport: 3001, syn: true, ack: true}, true},
		verdict{"its ack", true, tcpAck(peer, ep, 443, 3001), true},
		verdict{"ack of no flow", true, tcpAck(peer, ep, 443, 3002), false},
		verdict{"peer syn on the tuple", true, tcpSyn(peer, ep, 443, 3001), false},
		verdict{"udp out", false, udp(ep, peer, 4000, 53), true},
		verdict{"udp reply", true, udp(peer, ep, 53, 4000), true},
		verdict{"udp from another port", true, udp(peer, ep, 54, 4000), false},
		verdict{"echo out", false, echo(ep, peer, 77), true},
		verdict{"echo reply", true, echoReply(peer, ep, 77), true},
		verdict{"echo reply of another id", true, echoReply(peer, ep, 78), false},
		verdict{"echo request in", true, echo(peer, ep, 77), false},
		verdict{"egress outside the allowed prefix", false, tcpSyn(ep, "10.3.0.1", 3003, 443), false},
	)
}

// TestPrograms_PolicyChangeRedecides: a policy change takes a new
// generation; an established flow still allowed is renewed on its next
// packet, one no longer allowed is dropped from its next packet on (its
// opener's side; the other side too where isolated), and allowed again
// when a later change allows it. A ruleset of the same content changes
// nothing, generation included.
func TestPrograms_PolicyChangeRedecides(t *testing.T) {
	e := newTestEnforcer(t)
	const ep, peer = "10.0.0.1", "10.1.5.5"
	allow80 := ruleset(entries(entry("10.1.0.0/16", port(policy.ProtoTCP, 80, 80))), nil)
	mustSet(t, e.Enforcer, loKey, allow80)
	g1 := mustEndpoint(t, e.Enforcer, loIfindex).Generation
	e.expect(t,
		verdict{"syn in", true, tcpSyn(peer, ep, 5000, 80), true},
		verdict{"reply", false, tcpAck(ep, peer, 80, 5000), true},
		verdict{"ack in", true, tcpAck(peer, ep, 5000, 80), true},
	)

	mustSet(t, e.Enforcer, loKey, ruleset(entries(entry("10.1.0.0/16", port(policy.ProtoTCP, 80, 80))), nil))
	if g := mustEndpoint(t, e.Enforcer, loIfindex).Generation; g != g1 {
		t.Errorf("same ruleset again: generation %d -> %d", g1, g)
	}

	renewed := mustCountersOf(t, e.Enforcer).Renewed
	mustSet(t, e.Enforcer, loKey, ruleset(entries(entry("10.1.0.0/16", port(policy.ProtoTCP, 80, 80), port(policy.ProtoUDP, 53, 53))), nil))
	g2 := mustEndpoint(t, e.Enforcer, loIfindex).Generation
	if g2 <= g1 {
		t.Fatalf("changed ruleset: generation %d -> %d, want it to grow", g1, g2)
	}
	e.expect(t, verdict{"ack after a change that still allows it", true, tcpAck(peer, ep, 5000, 80), true})
	if r := mustCountersOf(t, e.Enforcer).Renewed; r != renewed+1 {
		t.Errorf("renewed %d -> %d, want one more", renewed, r)
	}

	drops, err := e.Drops()
	if err != nil {
		t.Fatal(err)
	}
	defer drops.Close()
	mustSet(t, e.Enforcer, loKey, ruleset(entries(entry("10.1.0.0/16", port(policy.ProtoTCP, 81, 81))), nil))
	g3 := mustEndpoint(t, e.Enforcer, loIfindex).Generation
	e.expect(t,
		verdict{"ack after a change that denies it", true, tcpAck(peer, ep, 5000, 80), false},
		verdict{"the pod's side (egress not isolated)", false, tcpAck(ep, peer, 80, 5000), true},
		verdict{"ack again: the pod's packet did not reopen it", true, tcpAck(peer, ep, 5000, 80), false},
	)
	d := mustDrop(t, drops)
	want := Drop{Ifindex: loIfindex, Direction: Ingress, Reason: ReasonChanged, Protocol: policy.ProtoTCP,
		Src: netip.MustParseAddrPort("10.1.5.5:5000"), Dst: netip.MustParseAddrPort("10.0.0.1:80"), Generation: g3}
	if d.Time.IsZero() || time.Since(d.Time) > time.Minute || time.Since(d.Time) < -time.Minute {
		t.Errorf("drop time %v, want about now", d.Time)
	}
	d.Time = time.Time{}
	if d != want {
		t.Errorf("drop event %+v, want %+v", d, want)
	}

	// Isolating egress too: the pod's side of the cut flow drops as well.
	mustSet(t, e.Enforcer, loKey, ruleset(entries(entry("10.1.0.0/16", port(policy.ProtoTCP, 81, 81))), entries()))
	e.expect(t, verdict{"the pod's side, egress isolated", false, tcpAck(ep, peer, 80, 5000), false})

	mustSet(t, e.Enforcer, loKey, allow80)
	e.expect(t,
		verdict{"ack once allowed again", true, tcpAck(peer, ep, 5000, 80), true},
		verdict{"reply once allowed again", false, tcpAck(ep, peer, 80, 5000), true},
	)
}

func mustDrop(tb testing.TB, r *DropReader) Drop {
	tb.Helper()
	r.SetDeadline(time.Now().Add(5 * time.Second))
	d, err := r.Read()
	if err != nil {
		tb.Fatalf("read drop event: %v", err)
	}
	return d
}

// TestDrops_Events: every drop reaches the ring buffer with its endpoint,
// direction, reason, 5-tuple and generation; passed packets write
// nothing; per-endpoint stats and node counters count them.
func TestDrops_Events(t *testing.T) {
	e := newTestEnforcer(t)
	drops, err := e.Drops()
	if err != nil {
		t.Fatal(err)
	}
	defer drops.Close()
	mustSet(t, e.Enforcer, loKey, testRuleset())
	gen := mustEndpoint(t, e.Enforcer, loIfindex).Generation
	before := mustCountersOf(t, e.Enforcer)

	e.expect(t,
		verdict{"allowed in", true, tcpSyn("10.1.5.5", "10.0.0.1", 1001, 80), true},
		verdict{"allowed out", false, tcpSyn("10.0.0.1", "8.8.8.8", 2001, 443), true},
		verdict{"denied in", true, udp("172.16.0.1", "10.0.0.1", 1013, 80), false},
		verdict{"denied out", false, tcpSyn("10.0.0.1", "8.8.8.8", 2002, 80), false},
		verdict{"ipv6 in", true, udp("fd00:9::9", "fd00::1", 1014, 80), false},
		verdict{"unknown icmp error", true, icmpErr("10.9.9.9", "10.0.0.1", udp("10.0.0.1", "10.2.3.4", 1, 2)), false},
		verdict{"later fragment", true, testPacket{src: a4("10.1.5.5"), dst: a4("10.0.0.1"), proto: policy.ProtoUDP, ipID: 9, fragOffset: 100}, false},
	)
	mk := func(dir Direction, reason Reason, proto policy.Protocol, src, dst string) Drop {
		return Drop{Ifindex: loIfindex, Direction: dir, Reason: reason, Protocol: proto,
			Src: netip.MustParseAddrPort(src), Dst: netip.MustParseAddrPort(dst), Generation: gen}
	}
	want := []Drop{
		mk(Ingress, ReasonPolicy, policy.ProtoUDP, "172.16.0.1:1013", "10.0.0.1:80"),
		mk(Egress, ReasonPolicy, policy.ProtoTCP, "10.0.0.1:2002", "8.8.8.8:80"),
		mk(Ingress, ReasonPolicy, policy.ProtoUDP, "[fd00:9::9]:1014", "[fd00::1]:80"),
		mk(Ingress, ReasonRelated, policy.ProtoUDP, "10.0.0.1:1", "10.2.3.4:2"),
		mk(Ingress, ReasonFragment, policy.ProtoUDP, "10.1.5.5:0", "10.0.0.1:0"),
	}
	for i, w := range want {
		d := mustDrop(t, drops)
		d.Time = time.Time{}
		if d != w {
			t.Errorf("drop %d: %+v, want %+v", i, d, w)
		}
	}
	drops.SetDeadline(time.Now().Add(100 * time.Millisecond))
	if d, err := drops.Read(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("an event more than the drops: %+v, %v", d, err)
	}

	st, err := e.EndpointStats(loIfindex)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Stats{AllowedIngress: 1, AllowedEgress: 1, DeniedIngress: 4, DeniedEgress: 1}); st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}
	all, err := e.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if all[loIfindex] != st {
		t.Errorf("Stats()[%d] = %+v, EndpointStats %+v", loIfindex, all[loIfindex], st)
	}
	after := mustCountersOf(t, e.Enforcer)
	if n := after.AllowedNew - before.AllowedNew; n != 2 {
		t.Errorf("allowed new flows: +%d, want 2", n)
	}
	for r, n := range map[Reason]uint64{ReasonPolicy: 3, ReasonIPv6: 0, ReasonRelated: 1, ReasonFragment: 1} {
		if d := after.Dropped[r] - before.Dropped[r]; d != n {
			t.Errorf("dropped %s: +%d, want %d", r, d, n)
		}
	}
	if after.EventsLost != 0 {
		t.Errorf("events lost: %d", after.EventsLost)
	}
}

// TestPrograms_ICMPErrors: an ICMP error about a tracked flow passes as
// part of it, in either direction; one about a flow the endpoint does not
// have is dropped where isolated.
func TestPrograms_ICMPErrors(t *testing.T) {
	e := newTestEnforcer(t)
	mustSet(t, e.Enforcer, loKey, ruleset(
		entries(entry("10.1.0.0/16", port(policy.ProtoUDP, 53, 53))),
		entries(entry("10.2.0.0/16", port(policy.ProtoUDP, 53, 53)))))
	const ep = "10.0.0.1"
	e.expect(t,
		verdict{"udp out", false, udp(ep, "10.2.3.4", 6000, 53), true},
		verdict{"port unreachable from the peer", true, icmpErr("10.2.3.4", ep, udp(ep, "10.2.3.4", 6000, 53)), true},
		verdict{"unreachable from a router", true, icmpErr("10.9.9.9", ep, udp(ep, "10.2.3.4", 6000, 53)), true},
		verdict{"unreachable about another flow", true, icmpErr("10.2.3.4", ep, udp(ep, "10.2.3.4", 6001, 53)), false},
		verdict{"udp in", true, udp("10.1.5.5", ep, 7000, 53), true},
		verdict{"the pod's port unreachable about it", false, icmpErr(ep, "10.1.5.5", udp("10.1.5.5", ep, 7000, 53)), true},
		verdict{"the pod's port unreachable about nothing", false, icmpErr(ep, "10.1.5.5", udp("10.1.5.5", ep, 7001, 53)), false},
	)
}

// TestPrograms_Fragments: a datagram's later fragments pass when its first
// was allowed, and drop otherwise.
func TestPrograms_Fragments(t *testing.T) {
	e := newTestEnforcer(t)
	mustSet(t, e.Enforcer, loKey, ruleset(entries(entry("10.1.0.0/16", port(policy.ProtoUDP, 53, 53))), nil))
	const ep = "10.0.0.1"
	first := func(id, dport uint16) testPacket {
		p := udp("10.1.5.5", ep, 7000, dport)
		p.ipID, p.moreFrags = id, true
		return p
	}
	later := func(id uint16) testPacket {
		return testPacket{src: a4("10.1.5.5"), dst: a4(ep), proto: policy.ProtoUDP, ipID: id, fragOffset: 185}
	}
	e.expect(t,
		verdict{"first fragment, allowed port", true, first(11, 53), true},
		verdict{"its later fragment", true, later(11), true},
		verdict{"first fragment, denied port", true, first(12, 54), false},
		verdict{"its later fragment", true, later(12), false},
		verdict{"a later fragment of nothing", true, later(13), false},
	)
}

// TestFailClosed: an endpoint failing closed drops everything both ways
// but what the node itself opens into it, and its replies.
func TestFailClosed(t *testing.T) {
	e := newTestEnforcer(t)
	if err := e.FailClosed(loKey); err != nil {
		t.Fatal(err)
	}
	got := mustEndpoint(t, e.Enforcer, loIfindex)
	if !got.Selected || !got.FailClosed || !got.IngressIsolated || !got.EgressIsolated || got.IP != epIP {
		t.Errorf("endpoint %+v, want selected, failing closed, isolated both ways, ip %s", got, epIP)
	}
	const ep = "10.0.0.1"
	e.expect(t,
		verdict{"tcp from a pod", true, tcpSyn("10.1.5.5", ep, 1, 80), false},
		verdict{"udp from anywhere", true, udp("8.8.8.8", ep, 2, 53), false},
		verdict{"tcp out", false, tcpSyn(ep, "10.1.5.5", 3, 80), false},
		verdict{"dns out", false, udp(ep, "10.96.0.10", 4, 53), false},
		verdict{"echo out", false, echo(ep, "10.1.5.5", 5), false},
	)
	if !inFromHost(t, e, tcpSyn("192.168.0.1", ep, 40000, 8080)) {
		t.Error("the node's probe was dropped")
	}
	e.expect(t,
		verdict{"the pod's answer to the node", false, tcpAck(ep, "192.168.0.1", 8080, 40000), true},
		verdict{"the node's next packet", true, tcpAck("192.168.0.1", ep, 40000, 8080), true},
	)
	// The daemon corrects it: a ruleset that isolates nothing removes it.
	mustSet(t, e.Enforcer, loKey, &policy.Ruleset{})
	e.expect(t, verdict{"tcp from a pod once corrected", true, tcpSyn("10.1.5.5", ep, 6, 80), true})
}

// TestSetEndpoint_AtomicSwap: a policy change installs a new inner table
// and leaves the old one untouched (a packet holding it decides by the old
// policy entirely), and while tables are swapped as fast as possible,
// no packet ever sees a mix of two policies.
//
// The two policies give their port sets the same ids in a different
// order: a table holding A's prefixes and B's port sets would allow UDP 53
// from 10.1.0.0/16, which neither allows.
func TestSetEndpoint_AtomicSwap(t *testing.T) {
	e := newTestEnforcer(t)
	a := ruleset(entries(
		entry("10.1.0.0/16", port(policy.ProtoTCP, 80, 80)),
		entry("10.3.0.0/16", port(policy.ProtoUDP, 53, 53))), nil)
	b := ruleset(entries(
		entry("10.3.0.0/16", port(policy.ProtoUDP, 53, 53)),
		entry("10.1.0.0/16", port(policy.ProtoTCP, 81, 81))), nil)
	mustSet(t, e.Enforcer, loKey, a)
	old := mustEndpoint(t, e.Enforcer, loIfindex)
	oldEntries := generationContents(t, e.Enforcer, old.Generation)
	if len(oldEntries) != old.Entries {
		t.Fatalf("generation %d has %d entries in the trie, its endpoint says %d", old.Generation, len(oldEntries), old.Entries)
	}

	mustSet(t, e.Enforcer, loKey, b)
	cur := mustEndpoint(t, e.Enforcer, loIfindex)
	if cur.Generation == old.Generation {
		t.Fatalf("policy change wrote into the installed generation %d", old.Generation)
	}
	if n := len(generationContents(t, e.Enforcer, cur.Generation)); n != cur.Entries {
		t.Errorf("new generation %d has %d entries, its endpoint says %d", cur.Generation, n, cur.Entries)
	}
	if left := generationContents(t, e.Enforcer, old.Generation); len(left) != 0 {
		t.Errorf("the replaced generation %d kept %d entries", old.Generation, len(left))
	}
	if all := tableContents(t, e.objs.VeniPolRules); len(all) != cur.Entries {
		t.Errorf("the trie holds %d entries, the one endpoint's table %d", len(all), cur.Entries)
	}

	// Swap while packets run.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var swapErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			rs := a
			if i%2 == 1 {
				rs = b
			}
			if err := e.SetEndpoint(loKey, rs); err != nil {
				swapErr = err
				return
			}
		}
	}()
	deadline := time.Now().Add(2 * time.Second)
	var n int
	for ; time.Now().Before(deadline); n++ {
		if in(t, e, udp("10.1.5.5", "10.0.0.1", uint16(n), 53)) {
			t.Errorf("packet %d: udp 53 from 10.1.0.0/16 passed, which neither policy allows", n)
			break
		}
	}
	close(stop)
	wg.Wait()
	if swapErr != nil {
		t.Fatal(swapErr)
	}
	t.Logf("%d packets during the swaps", n)
}

func tableContents(tb testing.TB, m *ebpf.Map) map[tableKey]tableValue {
	tb.Helper()
	out := make(map[tableKey]tableValue)
	var (
		k tableKey
		v tableValue
	)
	it := m.Iterate()
	for it.Next(&k, &v) {
		out[k] = v
	}
	if err := it.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

// generationContents is generation gen's part of the node's trie.
func generationContents(tb testing.TB, e *Enforcer, gen uint32) map[tableKey]tableValue {
	tb.Helper()
	out := tableContents(tb, e.objs.VeniPolRules)
	for k := range out {
		if genOf(k) != gen {
			delete(out, k)
		}
	}
	return out
}

// TestTrie_GenerationsApart: endpoints share the node's trie; changing or
// removing one endpoint's table deletes its old generation and nothing of
// the others', whatever their generations' order in the trie.
func TestTrie_GenerationsApart(t *testing.T) {
	e := newTestEnforcer(t)
	keys := []EndpointKey{
		{Ifindex: 1001, IP: netip.MustParseAddr("10.0.0.11")},
		{Ifindex: 1002, IP: netip.MustParseAddr("10.0.0.12")},
		{Ifindex: 1003, IP: netip.MustParseAddr("10.0.0.13")},
	}
	rs := []*policy.Ruleset{
		testRuleset(),
		ruleset(entries(entry("10.1.0.0/16", port(policy.ProtoTCP, 80, 80))), nil),
		ruleset(nil, entries(entry("0.0.0.0/0", port(policy.ProtoUDP, 53, 53)), entry("10.9.0.0/16"))),
	}
	for i, k := range keys {
		mustSet(t, e.Enforcer, k, rs[i])
	}
	snapshot := func(k EndpointKey) (Endpoint, map[tableKey]tableValue) {
		ep := mustEndpoint(t, e.Enforcer, k.Ifindex)
		c := generationContents(t, e.Enforcer, ep.Generation)
		if len(c) != ep.Entries {
			t.Fatalf("%s: %d entries in the trie, %d recorded", k, len(c), ep.Entries)
		}
		return ep, c
	}
	_, first := snapshot(keys[0])
	_, last := snapshot(keys[2])
	mid, _ := snapshot(keys[1])

	// The middle endpoint changes (its new generation is the trie's
	// last), then goes.
	mustSet(t, e.Enforcer, keys[1], rs[2])
	if left := generationContents(t, e.Enforcer, mid.Generation); len(left) != 0 {
		t.Errorf("replaced generation %d kept %d entries", mid.Generation, len(left))
	}
	if err := e.RemoveEndpoint(keys[1]); err != nil {
		t.Fatal(err)
	}
	for i, want := range map[int]map[tableKey]tableValue{0: first, 2: last} {
		if _, got := snapshot(keys[i]); !maps.Equal(got, want) {
			t.Errorf("%s: its table changed with another endpoint's", keys[i])
		}
	}
	if all := tableContents(t, e.objs.VeniPolRules); len(all) != len(first)+len(last) {
		t.Errorf("trie holds %d entries, the two endpoints' tables %d", len(all), len(first)+len(last))
	}
	// Selected by nothing: its table goes.
	mustSet(t, e.Enforcer, keys[0], &policy.Ruleset{Pod: policy.PodRef{Namespace: "t", Name: "e"}})
	if all := tableContents(t, e.objs.VeniPolRules); len(all) != len(last) {
		t.Errorf("trie holds %d entries after the first endpoint's table went, want %d", len(all), len(last))
	}
}

// TestSetEndpointTable_AsSetEndpoint: a ruleset installed from its kernel
// form (an ADD reading the store) is the table SetEndpoint installs (the
// daemon's later pass changes nothing), and decides packets the same way.
func TestSetEndpointTable_AsSetEndpoint(t *testing.T) {
	e := newTestEnforcer(t)
	rs := ruleset(entries(entry("10.1.0.0/16", port(policy.ProtoTCP, 80, 80))), nil)
	b, err := EncodeTable(rs)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.SetEndpointTable(loKey, b); err != nil {
		t.Fatal(err)
	}
	first := mustEndpoint(t, e.Enforcer, loIfindex)
	mustSet(t, e.Enforcer, loKey, rs)
	if again := mustEndpoint(t, e.Enforcer, loIfindex); again.Generation != first.Generation || again.Digest != first.Digest {
		t.Errorf("SetEndpoint after SetEndpointTable of the same ruleset: %+v, was %+v", again, first)
	}
	e.expect(t,
		verdict{"allowed port", true, tcpSyn("10.1.2.3", "10.0.0.1", 4000, 80), true},
		verdict{"other port", true, tcpSyn("10.1.2.3", "10.0.0.1", 4001, 81), false})
	if err := e.SetEndpointTable(loKey, b[:len(b)-2]); !errors.Is(err, ErrInvalidTable) {
		t.Errorf("damaged table: %v, want ErrInvalidTable", err)
	}
	if ep := mustEndpoint(t, e.Enforcer, loIfindex); ep.Generation != first.Generation {
		t.Errorf("a refused table changed the endpoint: %+v", ep)
	}
}
