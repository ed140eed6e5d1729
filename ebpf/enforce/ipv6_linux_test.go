package enforce

import (
	"net/netip"
	"testing"

	"github.com/veni-cni/veni/policy"
)

// IPv6 verdicts of the programs (veni_policy6.h) on crafted frames: the
// IPv4 tests' cases over IPv6, and what only IPv6 has (extension headers,
// neighbour discovery, packet too big).

var epIP6 = netip.MustParseAddr("fd00::1")

func echo6(src, dst string, id uint16) testPacket {
	return testPacket{src: a4(src), dst: a4(dst), proto: protoICMPv6, icmpType: 128, echoID: id}
}

func echoReply6(src, dst string, id uint16) testPacket {
	return testPacket{src: a4(src), dst: a4(dst), proto: protoICMPv6, icmpType: 129, echoID: id}
}

// icmp6Err is an ICMPv6 error of type typ (2: packet too big) from src to
// dst quoting q.
func icmp6Err(typ uint8, src, dst string, q testPacket) testPacket {
	return testPacket{src: a4(src), dst: a4(dst), proto: protoICMPv6, icmpType: typ, quoted: &q}
}

// nd is a neighbour discovery message (133-137) with hop limit hl.
func nd(typ uint8, src, dst string, hl uint8) testPacket {
	return testPacket{src: a4(src), dst: a4(dst), proto: protoICMPv6, icmpType: typ, hopLimit: hl}
}

// ruleset6 is a dual-stack endpoint's table: IPv6 entries beside IPv4
// ones, an except inside an ipBlock, and the node's IPv6 address.
func ruleset6() *policy.Ruleset {
	rs := &policy.Ruleset{
		Pod: policy.PodRef{Namespace: "t", Name: "e"},
		IPs: []netip.Addr{epIP, epIP6},
		Ingress: policy.Direction{Isolated: true, Policies: []string{"t/p"}, CIDRs: []policy.CIDREntry{
			entry("10.1.0.0/16", port(policy.ProtoTCP, 80, 80)),
			entry("fd00:1::/64", port(policy.ProtoTCP, 80, 80), port(policy.ProtoUDP, 53, 53), port(policy.ProtoSCTP, 9, 9)),
			entry("fd00:1::/112"),
			entry("fd00:1::7/128", port(policy.ProtoTCP, 8080, 8090)),
			entry("fd00:2::/48", anyPort()),
			entry("fd00:ff::1/128", policy.PortRule{Protocol: policy.ProtoAny, By: []policy.RuleRef{{Host: true}}}),
		}},
		Egress: policy.Direction{Isolated: true, Policies: []string{"t/p"}, CIDRs: []policy.CIDREntry{
			entry("0.0.0.0/0", port(policy.ProtoTCP, 443, 443)),
			entry("::/0", port(policy.ProtoTCP, 443, 443)),
			entry("fd00:3::/64", port(policy.ProtoUDP, 1000, 2000)),
			entry("fd00:3::/96"),
		}},
	}
	return rs
}

func TestPrograms_IPv6Verdicts(t *testing.T) {
	e := newTestEnforcer(t)
	mustSet(t, e.Enforcer, EndpointKey{Ifindex: loIfindex, IP: epIP}, ruleset6())
	const ep = "fd00::1"
	e.expect(t,
		verdict{"tcp to an allowed port", true, tcpSyn("fd00:1::1:5", ep, 1001, 80), true},
		verdict{"tcp to another port", true, tcpSyn("fd00:1::1:5", ep, 1002, 81), false},
		verdict{"udp to an allowed port", true, udp("fd00:1::1:5", ep, 1003, 53), true},
		verdict{"sctp to an allowed port", true, sctp("fd00:1::1:5", ep, 1004, 9), true},
		verdict{"tcp to sctp's port", true, tcpSyn("fd00:1::1:5", ep, 1005, 9), false},
		verdict{"udp to tcp's port", true, udp("fd00:1::1:5", ep, 1006, 80), false},
		verdict{"from the except", true, tcpSyn("fd00:1::5", ep, 1007, 80), false},
		verdict{"host inside the except, its range", true, tcpSyn("fd00:1::7", ep, 1008, 8085), true},
		verdict{"host inside the except, the block's port", true, tcpSyn("fd00:1::7", ep, 1009, 80), false},
		verdict{"any protocol prefix: echo", true, echo6("fd00:2::9", ep, 1), true},
		verdict{"any protocol prefix: udp", true, udp("fd00:2:0:1::9", ep, 1010, 9999), true},
		verdict{"echo from a port-only peer", true, echo6("fd00:1::1:5", ep, 2), false},
		verdict{"from an unlisted address", true, tcpSyn("fd00:9::1", ep, 1011, 80), false},
		verdict{"v4-mapped ipv4 peer is no ipv6 rule", true, tcpSyn("::ffff:10.1.0.5", ep, 1012, 80), false},
		verdict{"from the node's ipv6, any port", true, tcpSyn("fd00:ff::1", ep, 1013, 12345), true},
		verdict{"egress https anywhere", false, tcpSyn(ep, "2001:db8::1", 2001, 443), true},
		verdict{"egress http", false, tcpSyn(ep, "2001:db8::1", 2002, 80), false},
		verdict{"egress udp range", false, udp(ep, "fd00:3:0:0:1::1", 2003, 1500), true},
		verdict{"egress udp range, except", false, udp(ep, "fd00:3::1", 2004, 1500), false},
		verdict{"egress https into the except (::/0 covers it)", false, tcpSyn(ep, "fd00:3::1", 2005, 443), false},
		verdict{"ipv4 still decided by the ipv4 rules", true, tcpSyn("10.1.0.5", "10.0.0.1", 1014, 80), true},
	)
}

// TestPrograms_IPv6Flows: replies of allowed flows pass both ways; a
// reply-shaped packet without its flow does not; the node's own packets
// are allowed in.
func TestPrograms_IPv6Flows(t *testing.T) {
	e := newTestEnforcer(t)
	mustSet(t, e.Enforcer, EndpointKey{Ifindex: loIfindex, IP: epIP}, ruleset6())
	const ep = "fd00::1"
	e.expect(t,
		verdict{"ack before any syn", true, tcpAck("fd00:9::1", ep, 3000, 22), false},
		verdict{"egress syn, allowed", false, tcpSyn(ep, "2001:db8::1", 3001, 443), true},
		verdict{"its reply", true, tcpAck("2001:db8::1", ep, 443, 3001), true},
		verdict{"another peer's reply-shaped packet", true, tcpAck("2001:db8::2", ep, 443, 3001), false},
		verdict{"ingress syn, allowed", true, tcpSyn("fd00:1::1:5", ep, 3002, 80), true},
		verdict{"the endpoint's reply out (egress isolated)", false, tcpAck(ep, "fd00:1::1:5", 80, 3002), true},
		verdict{"a new syn from the endpoint to that peer", false, tcpSyn(ep, "fd00:1::1:5", 3003, 80), false},
		verdict{"udp out, allowed", false, udp(ep, "fd00:3:0:0:1::1", 3004, 1500), true},
		verdict{"its reply", true, udp("fd00:3:0:0:1::1", ep, 1500, 3004), true},
		verdict{"echo out, denied", false, echo6(ep, "2001:db8::1", 7), false},
		verdict{"echo in, allowed", true, echo6("fd00:2::9", ep, 8), true},
		verdict{"its reply out", false, echoReply6(ep, "fd00:2::9", 8), true},
		verdict{"an unrelated echo reply in", true, echoReply6("2001:db8::1", ep, 9), false},
	)
	if !inFromHost(t, e, tcpSyn("fd00:ff::2", ep, 3005, 8080)) {
		t.Error("the node's own ipv6 packet dropped")
	}
	if !out(t, e, tcpAck(ep, "fd00:ff::2", 8080, 3005)) {
		t.Error("reply to the node's ipv6 probe dropped")
	}
}

// TestPrograms_IPv6ICMPErrors: a packet too big (and other errors) about a
// tracked flow passes with it, either way; one about no flow is dropped
// where isolated.
func TestPrograms_IPv6ICMPErrors(t *testing.T) {
	e := newTestEnforcer(t)
	mustSet(t, e.Enforcer, EndpointKey{Ifindex: loIfindex, IP: epIP}, ruleset6())
	const ep = "fd00::1"
	syn := tcpSyn(ep, "2001:db8::1", 4001, 443)
	inSyn := tcpSyn("fd00:1::1:5", ep, 4002, 80)
	e.expect(t,
		verdict{"egress syn", false, syn, true},
		verdict{"ingress syn", true, inSyn, true},
		verdict{"packet too big from a router about the egress flow", true, icmp6Err(2, "2001:db8:ff::1", ep, syn), true},
		verdict{"time exceeded about it", true, icmp6Err(3, "2001:db8:ff::1", ep, syn), true},
		verdict{"packet too big from the endpoint about the ingress flow", false,
			icmp6Err(2, ep, "fd00:1::1:5", tcpAck("fd00:1::1:5", ep, 4002, 80)), true},
		verdict{"packet too big about no flow", true, icmp6Err(2, "2001:db8:ff::1", ep, tcpSyn(ep, "2001:db8::9", 4003, 443)), false},
		verdict{"unreachable about an untracked udp flow", true, icmp6Err(1, "2001:db8:ff::1", ep, udp(ep, "2001:db8::9", 4004, 53)), false},
		verdict{"packet too big quoting a fragment of the flow", true,
			icmp6Err(2, "2001:db8:ff::1", ep, testPacket{src: a4(ep), dst: a4("2001:db8::1"), proto: policy.ProtoTCP, sport: 4001, dport: 443, moreFrags: true, ipID: 5}), true},
	)
}

// TestPrograms_IPv6NeighbourDiscovery: neighbour discovery on the link
// passes both ways even with nothing allowed; ND-typed messages that could
// leave the link, or that a receiver would refuse, are decided by policy.
func TestPrograms_IPv6NeighbourDiscovery(t *testing.T) {
	e := newTestEnforcer(t)
	rs := ruleset(entries(), entries())
	rs.IPs = append(rs.IPs, epIP6)
	mustSet(t, e.Enforcer, loKey, rs)
	const ep = "fd00::1"
	e.expect(t,
		verdict{"NS from the host to the solicited-node group", true, nd(135, "fe80::1", "ff02::1:ff00:1", 255), true},
		verdict{"NS from the host, unicast probe", true, nd(135, "fe80::1", ep, 255), true},
		verdict{"NA from the pod to the host", false, nd(136, ep, "fe80::1", 255), true},
		verdict{"NS from the pod", false, nd(135, ep, "ff02::1:ff00:1", 255), true},
		verdict{"RS from the pod", false, nd(133, "fe80::2", "ff02::2", 255), true},
		verdict{"RA from the node", true, nd(134, "fe80::1", "ff02::1", 255), true},
		verdict{"NA in", true, nd(136, "fe80::1", "fe80::2", 255), true},
		verdict{"NS with hop limit 254 (forwarded)", true, nd(135, "fe80::1", ep, 254), false},
		verdict{"NA between global addresses (could be routed)", false, nd(136, ep, "2001:db8::1", 255), false},
		verdict{"echo on the link is still policy's", true, echo6("fe80::1", ep, 1), false},
		verdict{"tcp in, nothing allowed", true, tcpSyn("fd00:2::1", ep, 5001, 80), false},
	)
}

// TestPrograms_IPv6Extensions: ports are found behind extension headers;
// fragments follow their first; a chain too long to parse is malformed.
func TestPrograms_IPv6Extensions(t *testing.T) {
	e := newTestEnforcer(t)
	mustSet(t, e.Enforcer, EndpointKey{Ifindex: loIfindex, IP: epIP}, ruleset6())
	const ep = "fd00::1"
	withExt := func(p testPacket, ext ...uint8) testPacket { p.ext = ext; return p }
	frag := func(p testPacket, id uint16, off uint16, more bool) testPacket {
		p.ipID, p.fragOffset, p.moreFrags = id, off, more
		return p
	}
	long := []uint8{0, 60, 60, 60, 60, 60, 60}
	e.expect(t,
		verdict{"hop-by-hop, allowed port", true, withExt(tcpSyn("fd00:1::1:5", ep, 6001, 80), 0), true},
		verdict{"hop-by-hop, denied port", true, withExt(tcpSyn("fd00:1::1:5", ep, 6002, 81), 0), false},
		verdict{"hop-by-hop, routing, dest opts, AH", true, withExt(udp("fd00:1::1:5", ep, 6003, 53), 0, 43, 60, 51), true},
		verdict{"same, denied port", true, withExt(udp("fd00:1::1:5", ep, 6004, 54), 0, 43, 60, 51), false},
		verdict{"later fragment without its first", true, frag(udp("fd00:1::1:5", ep, 0, 0), 77, 100, false), false},
		verdict{"first fragment, allowed", true, frag(udp("fd00:1::1:5", ep, 6005, 53), 78, 0, true), true},
		verdict{"its later fragment", true, frag(udp("fd00:1::1:5", ep, 0, 0), 78, 100, false), true},
		verdict{"another datagram's later fragment", true, frag(udp("fd00:1::1:5", ep, 0, 0), 79, 100, false), false},
		verdict{"first fragment, denied", true, frag(udp("fd00:1::1:5", ep, 6006, 54), 80, 0, true), false},
		verdict{"its later fragment", true, frag(udp("fd00:1::1:5", ep, 0, 0), 80, 100, false), false},
		verdict{"a chain longer than parsed, isolated", true, withExt(tcpSyn("fd00:2::1", ep, 6007, 80), long...), false},
	)
	// Not isolated: everything passes, malformed included.
	e2 := newTestEnforcer(t)
	mustSet(t, e2.Enforcer, loKey, ruleset(entries(), nil))
	if !out(t, e2, withExt(tcpSyn(ep, "fd00:2::1", 6008, 80), long...)) {
		t.Error("malformed ipv6 dropped in a direction that is not isolated")
	}
	if out(t, e2, tcpSyn(ep, "fd00:2::1", 6009, 80)) != true || in(t, e2, tcpSyn("fd00:2::1", ep, 6010, 80)) {
		t.Error("egress not isolated should pass, ingress isolated with nothing allowed should drop")
	}
}
