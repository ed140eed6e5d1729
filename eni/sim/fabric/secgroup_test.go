package fabric

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/veni-cni/veni/eni/sim"
)

func TestRenderSecurityPolicy(t *testing.T) {
	p := sim.SecurityPolicy{
		Groups: []sim.SecurityGroup{
			{ID: "sg-node", Members: []netip.Addr{netip.MustParseAddr("172.30.1.10"), netip.MustParseAddr("fd00:1::10"), netip.MustParseAddr("172.30.1.11")}},
			{ID: "sg-ent", Enterprise: true, Members: []netip.Addr{netip.MustParseAddr("172.30.1.20")}, Rules: []sim.SecurityRule{
				{Priority: 5, Protocol: "tcp", PortFrom: 80, PortTo: 80, PeerCIDR: netip.MustParsePrefix("0.0.0.0/0")},
				{Priority: 6, Protocol: "tcp", PortFrom: 443, PortTo: 443, PeerCIDR: netip.MustParsePrefix("::/0")},
				{Priority: 2, Protocol: "icmpv6", PortFrom: -1, PortTo: -1, PeerCIDR: netip.MustParsePrefix("fd00:1::/64")},
				{Priority: 5, Drop: true, Protocol: "tcp", PortFrom: 1, PortTo: 65535, PeerGroup: "sg-node"},
				{Priority: 1, Protocol: "icmp", PortFrom: -1, PortTo: -1, PeerCIDR: netip.MustParsePrefix("10.0.0.0/8")},
				{Egress: true, Drop: true, Priority: 1, Protocol: "udp", PortFrom: 53, PortTo: 54, PeerCIDR: netip.MustParsePrefix("172.30.0.0/16")},
				{Priority: 1, Protocol: "all", PortFrom: -1, PortTo: -1, PeerGroup: "sg-other-vpc"},
			}},
			{ID: "sg-empty"},
		},
		ENIs: []sim.ENISecurity{
			{ENIID: "eni-a", Groups: []string{"sg-node"}},
			{ENIID: "eni-b", Groups: []string{"sg-ent"}},
		},
	}
	got := renderSecurityPolicy(p, func(id string) string { return "ve-" + id })
	for _, want := range []string{
		"table inet veni_sg\ndelete table inet veni_sg\ntable inet veni_sg {",
		"set g0 {\n\t\ttype ipv4_addr\n\t\tcomment \"sg-node\"\n\t\telements = { 172.30.1.10, 172.30.1.11 }",
		"set g0_6 {\n\t\ttype ipv6_addr\n\t\tcomment \"sg-node\"\n\t\telements = { fd00:1::10 }",
		"ct state established,related accept",
		"jump from_eni\n\t\tjump to_eni",
		`chain from_eni {` + "\n\t\t" + `iifname vmap { "ve-eni-a" : goto e0_out, "ve-eni-b" : goto e1_out }` + "\n\t}",
		`chain to_eni {` + "\n\t\t" + `oifname vmap { "ve-eni-a" : goto e0_in, "ve-eni-b" : goto e1_in }` + "\n\t}",
		// eni-a: normal group, no rules: members in (both families), others dropped.
		"chain e0_in {\n\t\tcomment \"eni-a ingress\"\n\t\tip saddr @g0 accept comment \"same group sg-node\"\n" +
			"\t\tip6 saddr @g0_6 accept comment \"same group sg-node\"\n\t\tdrop\n\t}",
		// eni-b: priority 1 first; on priority 5 the drop before the accept;
		// no same-group accept (enterprise); the other VPC's group matches
		// nothing. A CIDR rule covers its family alone (/0 too), a group
		// peer both; ICMPv6 is IPv6's.
		"chain e1_in {\n\t\tcomment \"eni-b ingress\"\n\t\tip saddr 10.0.0.0/8 meta l4proto icmp accept\n" +
			"\t\tip6 saddr fd00:1::/64 meta l4proto icmpv6 accept\n" +
			"\t\tip saddr @g0 tcp dport 1-65535 drop\n\t\tip6 saddr @g0_6 tcp dport 1-65535 drop\n" +
			"\t\tmeta nfproto ipv4 tcp dport 80 accept\n\t\tmeta nfproto ipv6 tcp dport 443 accept\n\t\tdrop\n\t}",
		// An enterprise ENI's egress is closed by default.
		"chain e1_out {\n\t\tcomment \"eni-b egress\"\n\t\tip daddr 172.30.0.0/16 udp dport 53-54 drop\n\t\tdrop\n\t}",
		// A normal one's is open.
		"chain e0_out {\n\t\tcomment \"eni-a egress\"\n\t}",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("rendered policy lacks\n%s\n--- got:\n%s", want, got)
		}
	}
	if strings.Contains(got, "sg-other-vpc") {
		t.Errorf("a rule naming a group outside the policy was rendered:\n%s", got)
	}
}

func TestRenderSecurityPolicy_Empty(t *testing.T) {
	got := renderSecurityPolicy(sim.SecurityPolicy{}, LinkName)
	if strings.Contains(got, "vmap") || !strings.Contains(got, "policy accept") {
		t.Errorf("empty policy must accept everything:\n%s", got)
	}
}

// Ensure a trunk member is dispatched to its own chains, by its mark on
// the trunk's link for what it sends and by its addresses for what it
// receives, before the trunk's own link dispatch; and that its addresses
// are in its groups' sets.
func TestRenderSecurityPolicy_Members(t *testing.T) {
	a := netip.MustParseAddr
	p := sim.SecurityPolicy{
		Groups: []sim.SecurityGroup{
			{ID: "sg-node", Members: []netip.Addr{a("172.30.1.10"), a("172.30.1.11")}},
			{ID: "sg-pod", Enterprise: true, Members: []netip.Addr{a("172.30.3.5"), a("172.30.3.6")}, Rules: []sim.SecurityRule{
				{Priority: 1, Protocol: "tcp", PortFrom: 8080, PortTo: 8080, PeerCIDR: netip.MustParsePrefix("0.0.0.0/0")},
			}},
		},
		ENIs: []sim.ENISecurity{
			{ENIID: "eni-trunk", Groups: []string{"sg-node"}},
			{ENIID: "eni-m5", Groups: []string{"sg-pod"}, Trunk: "eni-trunk", VLAN: 5, Addrs: []netip.Addr{a("172.30.3.5"), a("fd00::5")}},
			{ENIID: "eni-m6", Groups: []string{"sg-pod"}, Trunk: "eni-trunk", VLAN: 6, Addrs: []netip.Addr{a("172.30.3.6")}},
		},
	}
	got := renderSecurityPolicy(p, func(id string) string { return "ve-" + id })
	for _, want := range []string{
		"chain from_eni {\n" +
			"\t\tiifname . meta mark vmap { \"ve-eni-trunk\" . 0x7e000005 : goto e1_out, \"ve-eni-trunk\" . 0x7e000006 : goto e2_out }\n" +
			"\t\tiifname vmap { \"ve-eni-trunk\" : goto e0_out }\n\t}",
		"chain to_eni {\n" +
			"\t\tip daddr vmap { 172.30.3.5 : goto e1_in, 172.30.3.6 : goto e2_in }\n" +
			"\t\tip6 daddr vmap { fd00::5 : goto e1_in }\n" +
			"\t\toifname vmap { \"ve-eni-trunk\" : goto e0_in }\n\t}",
		"elements = { 172.30.3.5, 172.30.3.6 }",
		"chain e1_in {\n\t\tcomment \"eni-m5 ingress\"\n\t\tmeta nfproto ipv4 tcp dport 8080 accept\n\t\tdrop\n\t}",
		"chain e1_out {\n\t\tcomment \"eni-m5 egress\"\n\t\tdrop\n\t}",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("rendered policy lacks\n%s\n--- got:\n%s", want, got)
		}
	}
	for _, bad := range []string{"ve-eni-m5", "ve-eni-m6"} {
		if strings.Contains(got, bad) {
			t.Errorf("rendered policy has %q (a member has no link):\n%s", bad, got)
		}
	}
}

func TestMemberMark(t *testing.T) {
	for vlan, want := range map[int]uint32{1: 0x7e000001, 4094: 0x7e000ffe} {
		if got := memberMark(vlan); got != want {
			t.Errorf("memberMark(%d) = %#x, want %#x", vlan, got, want)
		}
	}
}

// Ensure a group's delegated /80s are members too: its IPv6 set becomes an
// interval set holding each /80 next to the single addresses, so "same
// group" and group-peer rules cover every address of them.
func TestRenderSecurityPolicy_MemberPrefixes(t *testing.T) {
	p := sim.SecurityPolicy{
		Groups: []sim.SecurityGroup{{
			ID:             "sg-node",
			Members:        []netip.Addr{netip.MustParseAddr("172.30.1.10"), netip.MustParseAddr("fd00:1::10")},
			MemberPrefixes: []netip.Prefix{netip.MustParsePrefix("fd00:1:0:0:fffe::/80")},
		}},
		ENIs: []sim.ENISecurity{{ENIID: "eni-a", Groups: []string{"sg-node"}}},
	}
	got := renderSecurityPolicy(p, func(id string) string { return "ve-" + id })
	for _, want := range []string{
		"set g0 {\n\t\ttype ipv4_addr\n\t\tcomment \"sg-node\"\n\t\telements = { 172.30.1.10 }",
		"set g0_6 {\n\t\ttype ipv6_addr\n\t\tcomment \"sg-node\"\n\t\tflags interval\n\t\tauto-merge\n\t\telements = { fd00:1::10, fd00:1:0:0:fffe::/80 }",
	} {
		if !strings.Contains(got, want) {
			t.Fatalf("policy lacks\n%s\nin\n%s", want, got)
		}
	}
}
