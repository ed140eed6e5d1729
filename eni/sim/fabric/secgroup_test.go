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
			{ID: "sg-node", Members: []netip.Addr{netip.MustParseAddr("172.30.1.10"), netip.MustParseAddr("172.30.1.11")}},
			{ID: "sg-ent", Enterprise: true, Members: []netip.Addr{netip.MustParseAddr("172.30.1.20")}, Rules: []sim.SecurityRule{
				{Priority: 5, Protocol: "tcp", PortFrom: 80, PortTo: 80, PeerCIDR: netip.MustParsePrefix("0.0.0.0/0")},
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
		"table ip veni_sg\ndelete table ip veni_sg\ntable ip veni_sg {",
		"elements = { 172.30.1.10, 172.30.1.11 }",
		"ct state established,related accept",
		`iifname vmap { "ve-eni-a" : jump e0_out, "ve-eni-b" : jump e1_out }`,
		`oifname vmap { "ve-eni-a" : jump e0_in, "ve-eni-b" : jump e1_in }`,
		// eni-a: normal group, no rules: members in, others dropped.
		"chain e0_in {\n\t\tcomment \"eni-a ingress\"\n\t\tip saddr @g0 accept comment \"same group sg-node\"\n\t\tdrop\n\t}",
		// eni-b: priority 1 first; on priority 5 the drop before the accept;
		// no same-group accept (enterprise); the other VPC's group matches nothing.
		"chain e1_in {\n\t\tcomment \"eni-b ingress\"\n\t\tip saddr 10.0.0.0/8 ip protocol icmp accept\n\t\tip saddr @g0 tcp dport 1-65535 drop\n\t\ttcp dport 80 accept\n\t\tdrop\n\t}",
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
