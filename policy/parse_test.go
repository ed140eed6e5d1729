package policy

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// TestNew_InvalidPolicy checks New refuses what the API server refuses,
// naming the policy and the place, and wrapping ErrInvalidPolicy.
func TestNew_InvalidPolicy(t *testing.T) {
	for _, tc := range []struct{ name, spec, want string }{
		{"unknown policy type", `{podSelector: {}, policyTypes: [Both]}`, `policyTypes: "Both"`},
		{"three policy types", `{podSelector: {}, policyTypes: [Ingress, Egress, Ingress]}`, "more than 2"},
		{"bad podSelector", `{podSelector: {matchExpressions: [{key: a, operator: Has}]}}`, "podSelector"},
		{"empty peer", `{podSelector: {}, ingress: [{from: [{}]}]}`, "ingress[0]: peer[0]: no podSelector, namespaceSelector or ipBlock"},
		{"ipBlock and a selector", `{podSelector: {}, egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8}, podSelector: {}}]}]}`, "egress[0]: peer[0]: ipBlock together with a selector"},
		{"bad cidr", `{podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/33}}]}]}`, `cidr "10.0.0.0/33"`},
		{"except equal to the cidr", `{podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.0.0.0/8]}}]}]}`, "not a strict subset"},
		{"except of the other family", `{podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8, except: ["fd00::/64"]}}]}]}`, "not a strict subset"},
		{"bad namespaceSelector", `{podSelector: {}, ingress: [{from: [{namespaceSelector: {matchExpressions: [{key: a, operator: In}]}}]}]}`, "namespaceSelector"},
		{"port 0", `{podSelector: {}, ingress: [{ports: [{port: 0}]}]}`, "port 0: out of 1-65535"},
		{"port 65536", `{podSelector: {}, ingress: [{ports: [{port: 65536}]}]}`, "out of 1-65535"},
		{"endPort below port", `{podSelector: {}, ingress: [{ports: [{port: 100, endPort: 99}]}]}`, "endPort 99: not in 100-65535"},
		{"endPort without port", `{podSelector: {}, ingress: [{ports: [{endPort: 99}]}]}`, "endPort without port"},
		{"bad port name", `{podSelector: {}, ingress: [{ports: [{port: Http}]}]}`, `port name "Http"`},
		{"port name of digits", `{podSelector: {}, ingress: [{ports: [{port: "80a-"}]}]}`, "not an IANA service name"},
		{"lowercase protocol", `{podSelector: {}, ingress: [{ports: [{protocol: tcp}]}]}`, `protocol "tcp"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := fixedCluster()
			in.Policies = mustPolicies(t, "- metadata: {name: bad, namespace: x}\n  spec: "+tc.spec)
			_, err := New(in)
			if !errors.Is(err, ErrInvalidPolicy) {
				t.Fatalf("err %v, want ErrInvalidPolicy", err)
			}
			if !strings.Contains(err.Error(), "policy x/bad: ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q lacks %q", err, tc.want)
			}
		})
	}
}

// TestNew_Errors checks invalid objects and that every error is reported.
func TestNew_Errors(t *testing.T) {
	in := fixedCluster()
	in.Pods = append(in.Pods, in.Pods[0])
	in.Pods = append(in.Pods, Pod{Namespace: "x", Name: "badport", Ports: []ContainerPort{{"http", 0, ProtoTCP}}})
	in.Nodes = append(in.Nodes, Node{Name: "n1"})
	in.Policies = mustPolicies(t, `
- metadata: {name: one, namespace: x}
  spec: {podSelector: {}, policyTypes: [Sideways]}
- metadata: {name: two, namespace: x}
  spec: {podSelector: {}, ingress: [{ports: [{port: 0}]}]}`)
	_, err := New(in)
	for _, want := range []string{"pod x/a given twice", "pod x/badport: container port \"http\": number 0", "node n1 given twice", "policy x/one", "policy x/two"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
	if !errors.Is(err, ErrInvalidObject) || !errors.Is(err, ErrInvalidPolicy) {
		t.Errorf("error %v does not wrap both sentinels", err)
	}
}

// TestNew_Defaults checks what New fills in: the namespace name label,
// namespaces known only by a pod or a policy, "default" for an empty
// namespace, IPv4-mapped addresses unmapped, and warnings.
func TestNew_Defaults(t *testing.T) {
	s := mustSnapshot(t, Input{
		Pods: []Pod{
			{Name: "p", Labels: map[string]string{"app": "a"}, IPs: []netip.Addr{netip.MustParseAddr("::ffff:10.0.0.1")}},
			{Namespace: "q", Name: "p", IPs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}},
		},
		Policies: mustPolicies(t, `
- metadata: {name: from-q}
  spec:
    podSelector: {}
    ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: q}}}]}]`),
	})
	p, ok := s.Pod(PodRef{"default", "p"})
	if !ok || p.IPs[0] != netip.MustParseAddr("10.0.0.1") {
		t.Fatalf("default/p: %+v %v", p, ok)
	}
	if got := s.PolicyNames(); len(got) != 1 || got[0] != "default/from-q" {
		t.Errorf("policies %v", got)
	}
	if w := s.Warnings(); len(w) != 1 || !strings.Contains(w[0], "10.0.0.1 held by pods default/p and q/p") {
		t.Errorf("warnings %v", w)
	}
	rs := mustCompile(t, s, "default", "p")
	if len(rs.Ingress.Identities) != 2 || rs.Ingress.Identities[0].Identity != "q||" {
		t.Errorf("q/p is in a namespace known only by the pod, labelled with its name: %+v", rs.Ingress)
	}
}

// TestParse_Endpoints covers what operators type.
func TestParse_Endpoints(t *testing.T) {
	for in, want := range map[string]string{"10.0.0.1": "10.0.0.1", "::ffff:10.0.0.1": "10.0.0.1", "fd00::1": "fd00::1", "x/a": "x/a", "a": "default/a"} {
		e, err := ParseEndpoint(in)
		if err != nil || e.String() != want {
			t.Errorf("ParseEndpoint(%q) = %v, %v; want %s", in, e, err, want)
		}
	}
	for _, bad := range []string{"", "a/b/c", "/a", "a/", "10.0.0.0/8"} {
		if _, err := ParseEndpoint(bad); err == nil {
			t.Errorf("ParseEndpoint(%q): no error", bad)
		}
	}
	for in, want := range map[string]Protocol{"tcp": ProtoTCP, "UDP": ProtoUDP, "sctp": ProtoSCTP, "icmp": ProtoICMP, "47": 47} {
		if p, err := ParseTraceProtocol(in); err != nil || p != want {
			t.Errorf("ParseTraceProtocol(%q) = %v, %v", in, p, err)
		}
	}
	for _, p := range []Protocol{ProtoAny, ProtoTCP, ProtoUDP, ProtoSCTP, ProtoICMP, 47} {
		b, _ := p.MarshalText()
		var q Protocol
		if err := q.UnmarshalText(b); err != nil || q != p {
			t.Errorf("protocol %v round-trips as %v, %v", p, q, err)
		}
	}
}

// TestSnapshot_Verdict_Pods checks Verdict by pod names: the address of a
// family both ends have is used, and errors for unknown pods.
func TestSnapshot_Verdict_Pods(t *testing.T) {
	in := fixedCluster()
	in.Pods[0].IPs = in.Pods[0].IPs[1:] // x/a: IPv6 only
	in.Policies = mustPolicies(t, `
- metadata: {name: v6, namespace: "y"}
  spec:
    podSelector: {}
    ingress: [{from: [{ipBlock: {cidr: "fd00::/16"}}]}]`)
	s := mustSnapshot(t, in)
	tr, err := s.Trace(PodEndpoint("x", "a"), PodEndpoint("y", "a"), ProtoTCP, 80)
	if err != nil || !tr.Allowed || !tr.From.IP.Is6() || !tr.To.IP.Is6() {
		t.Errorf("x/a (IPv6 only) to y/a: %+v, %v", tr, err)
	}
	if ok, err := s.Verdict(PodEndpoint("x", "b"), PodEndpoint("y", "a"), ProtoTCP, 80); err != nil || ok {
		t.Errorf("x/b to y/a over IPv4: %v, %v; want denied", ok, err)
	}
	if _, err := s.Verdict(PodEndpoint("x", "nope"), PodEndpoint("y", "a"), ProtoTCP, 80); !errors.Is(err, ErrUnknownPod) {
		t.Errorf("unknown pod: %v", err)
	}
	if _, err := s.Verdict(PodEndpoint("x", "a"), IPEndpoint(netip.MustParseAddr("8.8.8.8")), ProtoTCP, 80); !errors.Is(err, ErrNoAddress) {
		t.Errorf("IPv6-only pod to an IPv4 address: %v", err)
	}
}
