package main

import (
	"net/netip"
	"testing"

	"github.com/veni-cni/veni/ebpf/fastpath"
	"github.com/veni-cni/veni/policy"
)

// longest returns the rules of the longest prefix of entries holding ip.
func longest(entries []policy.CIDREntry, ip netip.Addr) []policy.PortRule {
	best := -1
	var rules []policy.PortRule
	for _, e := range entries {
		if e.Prefix.Contains(ip) && e.Prefix.Bits() > best {
			best, rules = e.Prefix.Bits(), e.Rules
		}
	}
	return rules
}

// TestPolicyWorld: the policy section's world has the requested policies
// and rules, all selecting every pod, and still lets the pods reach each
// other on any port (the benchmark's traffic) while isolating them.
func TestPolicyWorld(t *testing.T) {
	a, b := netip.MustParseAddr("172.30.1.2"), netip.MustParseAddr("172.30.2.3")
	nodes := []benchNode{{pods: []fastpath.Endpoint{{IP: a}}}, {pods: []fastpath.Endpoint{{IP: b}}}}
	in := policyWorld(nodes, 100, 10)
	if len(in.Policies) != 100 {
		t.Fatalf("%d policies, want 100", len(in.Policies))
	}
	rules := 0
	for _, np := range in.Policies {
		rules += len(np.Spec.Ingress) + len(np.Spec.Egress)
	}
	if rules != 1000 {
		t.Errorf("%d rules, want 1000", rules)
	}
	snap, err := policy.New(in)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := snap.Compile(policy.PodRef{Namespace: "bench", Name: "pod-" + a.String()})
	if err != nil {
		t.Fatal(err)
	}
	if !rs.Ingress.Isolated || !rs.Egress.Isolated || len(rs.Ingress.Policies) != 100 || len(rs.Egress.Policies) != 100 {
		t.Fatalf("pod not selected by every policy both ways: ingress %d, egress %d", len(rs.Ingress.Policies), len(rs.Egress.Policies))
	}
	if n := len(rs.Ingress.CIDRs) + len(rs.Egress.CIDRs); n < 500 {
		t.Errorf("only %d prefixes: the table is too small to stand for 1,000 rules", n)
	}
	for _, d := range []policy.Direction{rs.Ingress, rs.Egress} {
		anyPort := false
		for _, r := range longest(d.CIDRs, b) {
			anyPort = anyPort || r.Protocol == policy.ProtoAny
		}
		if !anyPort {
			t.Errorf("the other pod is not allowed on every port: %+v", longest(d.CIDRs, b))
		}
		if r := longest(d.CIDRs, netip.MustParseAddr("8.8.8.8")); len(r) != 0 {
			t.Errorf("8.8.8.8 allowed: %+v", r)
		}
	}
}
