package policy

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"
)

// expect is one hand-written verdict: from and to are "ns/pod" or an
// address, flow is "TCP/80", "UDP/53", "ICMP".
type expect struct {
	from, to, flow string
	allowed        bool
}

func parseFlow(tb testing.TB, s string) (Protocol, uint16) {
	tb.Helper()
	name, num, _ := strings.Cut(s, "/")
	proto, err := ParseTraceProtocol(name)
	if err != nil {
		tb.Fatal(err)
	}
	if num == "" {
		return proto, 0
	}
	n, err := strconv.ParseUint(num, 10, 16)
	if err != nil {
		tb.Fatal(err)
	}
	return proto, uint16(n)
}

// The table's extra addresses: outside the cluster, inside 10/8 but no
// pod's, and IPv6.
func tableExtra() []netip.Addr {
	return []netip.Addr{
		netip.MustParseAddr("8.8.8.8"), netip.MustParseAddr("10.0.9.9"), netip.MustParseAddr("10.1.2.3"),
		netip.MustParseAddr("10.2.3.4"), netip.MustParseAddr("2001:db8::1"),
	}
}

var tablePorts = []uint16{53, 80, 81, 443, 999, 1000, 2000, 2001, 8080, 9090}

// semanticCases are the networking.k8s.io/v1 semantics, one case each,
// with the verdicts the Kubernetes documentation gives. Each case is also
// compared with cyclonus on every flow of the fixed cluster. (Label value
// "y" is quoted: YAML 1.1 reads a bare y as true, kubectl too.)
var semanticCases = []struct {
	name     string
	policies string
	expect   []expect
}{
	{"no policy allows everything", `[]`, []expect{
		{"x/a", "y/b", "TCP/80", true}, {"8.8.8.8", "x/a", "UDP/53", true}, {"x/a", "8.8.8.8", "SCTP/1", true},
	}},
	{"default deny ingress isolates the namespace's pods, the node still probes", `
- metadata: {name: deny, namespace: x}
  spec: {podSelector: {}, policyTypes: [Ingress]}`, []expect{
		{"y/a", "x/a", "TCP/80", false}, {"x/b", "x/a", "TCP/80", false}, {"x/a", "y/a", "TCP/80", true},
		{"192.168.0.1", "x/a", "TCP/8080", true}, {"192.168.0.2", "x/a", "TCP/80", false},
		{"z/h", "x/a", "TCP/80", false}, {"y/a", "y/b", "TCP/80", true},
	}},
	{"ingress: [] denies like no ingress field", `
- metadata: {name: deny, namespace: x}
  spec: {podSelector: {}, ingress: []}`, []expect{
		{"y/a", "x/a", "TCP/80", false}, {"8.8.8.8", "x/a", "TCP/80", false},
	}},
	{"ingress: [{}] allows all", `
- metadata: {name: all, namespace: x}
  spec: {podSelector: {}, ingress: [{}]}`, []expect{
		{"y/a", "x/a", "TCP/80", true}, {"8.8.8.8", "x/a", "ICMP", true}, {"z/h", "x/b", "SCTP/9", true},
	}},
	{"podSelector peer: same namespace only", `
- metadata: {name: web, namespace: x}
  spec:
    podSelector: {matchLabels: {pod: a}}
    ingress: [{from: [{podSelector: {matchLabels: {app: web}}}]}]`, []expect{
		{"x/b", "x/a", "TCP/80", true}, {"y/b", "x/a", "TCP/80", false}, {"x/c", "x/a", "TCP/80", false},
		{"z/h", "x/a", "TCP/80", false}, {"y/c", "x/b", "TCP/80", true},
	}},
	{"empty podSelector peer: every pod of the policy's namespace", `
- metadata: {name: ns, namespace: x}
  spec: {podSelector: {}, ingress: [{from: [{podSelector: {}}]}]}`, []expect{
		{"x/c", "x/a", "TCP/80", true}, {"y/c", "x/a", "TCP/80", false}, {"10.0.9.9", "x/a", "TCP/80", false},
	}},
	{"empty namespaceSelector peer: every pod, no node, no outside", `
- metadata: {name: pods, namespace: x}
  spec: {podSelector: {}, ingress: [{from: [{namespaceSelector: {}}]}]}`, []expect{
		{"z/c", "x/a", "TCP/80", true}, {"fd00::3:3", "fd00::1:1", "TCP/80", true},
		{"8.8.8.8", "x/a", "TCP/80", false}, {"192.168.0.2", "x/a", "TCP/80", false}, {"z/h", "x/a", "TCP/80", false},
	}},
	{"namespaceSelector by labels and by the name label", `
- metadata: {name: nss, namespace: x}
  spec:
    podSelector: {}
    ingress:
    - from: [{namespaceSelector: {matchLabels: {ns: "y"}}}]
    - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: x}}}]`, []expect{
		{"y/c", "x/a", "TCP/80", true}, {"x/c", "x/a", "TCP/80", true}, {"z/c", "x/a", "TCP/80", false},
	}},
	{"both selectors in one peer AND", `
- metadata: {name: and, namespace: x}
  spec:
    podSelector: {}
    ingress: [{from: [{namespaceSelector: {matchLabels: {ns: "y"}}, podSelector: {matchLabels: {pod: b}}}]}]`, []expect{
		{"y/b", "x/a", "TCP/80", true}, {"y/a", "x/a", "TCP/80", false}, {"x/b", "x/a", "TCP/80", false}, {"z/b", "x/a", "TCP/80", false},
	}},
	{"two peers OR", `
- metadata: {name: or, namespace: x}
  spec:
    podSelector: {}
    ingress: [{from: [{namespaceSelector: {matchLabels: {ns: "y"}}}, {podSelector: {matchLabels: {pod: b}}}]}]`, []expect{
		{"y/a", "x/a", "TCP/80", true}, {"x/b", "x/a", "TCP/80", true}, {"z/b", "x/a", "TCP/80", false}, {"x/c", "x/a", "TCP/80", false},
	}},
	{"matchExpressions In NotIn Exists DoesNotExist", `
- metadata: {name: expr, namespace: x}
  spec:
    podSelector: {matchExpressions: [{key: app, operator: Exists}]}
    ingress:
    - from: [{podSelector: {matchExpressions: [{key: pod, operator: In, values: [b, c]}]}, namespaceSelector: {matchExpressions: [{key: ns, operator: NotIn, values: [z]}]}}]
    - from: [{podSelector: {matchExpressions: [{key: app, operator: DoesNotExist}]}, namespaceSelector: {}}]
      ports: [{port: 443}]`, []expect{
		{"y/b", "x/a", "TCP/80", true}, {"z/b", "x/a", "TCP/80", false}, {"y/a", "x/a", "TCP/80", false},
		{"z/c", "x/a", "TCP/443", true}, {"z/a", "x/a", "TCP/443", false}, {"y/a", "x/c", "TCP/80", true},
	}},
	{"ipBlock except", `
- metadata: {name: block, namespace: x}
  spec:
    podSelector: {matchLabels: {pod: a}}
    policyTypes: [Egress]
    egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}}]}]`, []expect{
		{"x/a", "10.2.3.4", "TCP/80", true}, {"x/a", "10.1.2.3", "TCP/80", false}, {"x/a", "8.8.8.8", "TCP/80", false},
		{"x/a", "y/c", "UDP/9", true},
	}},
	{"ipBlock except overlapped by another policy", `
- metadata: {name: block, namespace: x}
  spec:
    podSelector: {matchLabels: {pod: a}}
    policyTypes: [Egress]
    egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}}]}]
- metadata: {name: host, namespace: x}
  spec:
    podSelector: {matchLabels: {pod: a}}
    policyTypes: [Egress]
    egress: [{to: [{ipBlock: {cidr: 10.1.2.3/32}}], ports: [{port: 443}]}]`, []expect{
		{"x/a", "10.1.2.3", "TCP/443", true}, {"x/a", "10.1.2.3", "TCP/80", false}, {"x/a", "10.2.3.4", "TCP/80", true},
	}},
	{"except versus a ports-only rule (AWS agent #326)", `
- metadata: {name: dns, namespace: x}
  spec:
    podSelector: {}
    policyTypes: [Egress]
    egress:
    - to: [{ipBlock: {cidr: 0.0.0.0/0, except: [10.0.0.0/8]}}]
    - ports: [{port: 53, protocol: UDP}, {port: 53, protocol: TCP}]`, []expect{
		{"x/a", "y/a", "UDP/53", true}, {"x/a", "y/a", "TCP/53", true}, {"x/a", "y/a", "TCP/80", false},
		{"x/a", "8.8.8.8", "TCP/80", true}, {"x/a", "10.0.9.9", "UDP/53", true}, {"x/a", "fd00::2:1", "UDP/53", true},
	}},
	{"overlapping CIDRs with different ports: the longer carries the union", `
- metadata: {name: ports, namespace: x}
  spec:
    podSelector: {}
    ingress:
    - from: [{ipBlock: {cidr: 10.0.0.0/8}}]
      ports: [{port: 80}]
    - from: [{ipBlock: {cidr: 10.0.2.0/24}}]
      ports: [{port: 443}]`, []expect{
		{"y/a", "x/a", "TCP/80", true}, {"y/a", "x/a", "TCP/443", true}, {"x/b", "x/a", "TCP/443", false}, {"x/b", "x/a", "TCP/80", true},
	}},
	{"ipBlock matches pod and node addresses", `
- metadata: {name: block, namespace: x}
  spec:
    podSelector: {}
    ingress: [{from: [{ipBlock: {cidr: 10.0.2.0/24}}, {ipBlock: {cidr: 192.168.0.2/32}}]}]`, []expect{
		{"y/a", "x/a", "TCP/80", true}, {"z/a", "x/a", "TCP/80", false}, {"192.168.0.2", "x/a", "TCP/80", true},
		{"z/h", "x/a", "TCP/80", true},
	}},
	{"named port on ingress resolves on the selected pod", `
- metadata: {name: named, namespace: x}
  spec:
    podSelector: {matchLabels: {app: web}}
    ingress: [{ports: [{port: http}]}]`, []expect{
		{"y/c", "x/a", "TCP/80", true}, {"y/c", "x/a", "TCP/8080", false}, {"y/c", "x/b", "TCP/8080", true}, {"y/c", "x/b", "TCP/80", false},
	}},
	{"named port on egress with to omitted resolves per destination pod", `
- metadata: {name: named, namespace: x}
  spec:
    podSelector: {matchLabels: {pod: c}}
    policyTypes: [Egress]
    egress: [{ports: [{port: http}]}]`, []expect{
		{"x/c", "x/a", "TCP/80", true}, {"x/c", "y/b", "TCP/8080", true}, {"x/c", "x/a", "TCP/8080", false},
		{"x/c", "x/b", "TCP/80", false}, {"x/c", "8.8.8.8", "TCP/80", false}, {"x/c", "192.168.0.2", "TCP/80", false},
	}},
	{"named port on egress through an ipBlock reaches pods inside it", `
- metadata: {name: named, namespace: x}
  spec:
    podSelector: {matchLabels: {pod: c}}
    policyTypes: [Egress]
    egress: [{to: [{ipBlock: {cidr: 10.0.1.0/24, except: [10.0.1.2/32]}}], ports: [{port: http}, {port: 81}]}]`, []expect{
		{"x/c", "x/a", "TCP/80", true}, {"x/c", "x/b", "TCP/8080", false}, {"x/c", "y/a", "TCP/80", false},
		{"x/c", "x/a", "TCP/81", true}, {"x/c", "10.0.9.9", "TCP/80", false},
	}},
	{"named port with the container port's protocol only", `
- metadata: {name: dns, namespace: x}
  spec:
    podSelector: {}
    ingress: [{ports: [{port: dns, protocol: TCP}]}]`, []expect{
		{"y/c", "x/a", "TCP/53", false}, {"y/c", "x/a", "UDP/53", false}, {"y/c", "x/b", "TCP/53", true},
	}},
	{"endPort boundaries", `
- metadata: {name: range, namespace: x}
  spec:
    podSelector: {}
    ingress: [{ports: [{port: 1000, endPort: 2000}]}]`, []expect{
		{"y/a", "x/a", "TCP/999", false}, {"y/a", "x/a", "TCP/1000", true}, {"y/a", "x/a", "TCP/2000", true},
		{"y/a", "x/a", "TCP/2001", false}, {"y/a", "x/a", "UDP/1000", false},
	}},
	{"an SCTP allow is not a TCP allow", `
- metadata: {name: sctp, namespace: x}
  spec:
    podSelector: {}
    ingress: [{ports: [{port: 80, protocol: SCTP}]}]`, []expect{
		{"y/a", "x/a", "SCTP/80", true}, {"y/a", "x/a", "TCP/80", false}, {"y/a", "x/a", "UDP/80", false},
	}},
	{"a protocol without a port allows every port of it", `
- metadata: {name: udp, namespace: x}
  spec:
    podSelector: {}
    ingress: [{ports: [{protocol: UDP}]}]`, []expect{
		{"y/a", "x/a", "UDP/9090", true}, {"y/a", "x/a", "TCP/80", false}, {"y/a", "x/a", "ICMP", false},
	}},
	{"egress rules without policyTypes isolate ingress too", `
- metadata: {name: eg, namespace: x}
  spec:
    podSelector: {matchLabels: {pod: a}}
    egress: [{to: [{podSelector: {}}]}]`, []expect{
		{"y/a", "x/a", "TCP/80", false}, {"x/a", "x/b", "TCP/80", true}, {"x/a", "y/b", "TCP/80", false},
	}},
	{"ingress rules without policyTypes leave egress alone", `
- metadata: {name: in, namespace: x}
  spec:
    podSelector: {matchLabels: {pod: a}}
    ingress: [{from: [{podSelector: {}}]}]
    egress: []`, []expect{
		{"x/a", "8.8.8.8", "TCP/80", true}, {"y/a", "x/a", "TCP/80", false}, {"x/b", "x/a", "TCP/80", true},
	}},
	{"policyTypes [Egress] ignores ingress rules", `
- metadata: {name: eg, namespace: x}
  spec:
    podSelector: {}
    policyTypes: [Egress]
    ingress: [{from: [{podSelector: {}}]}]
    egress: [{}]`, []expect{
		{"y/a", "x/a", "TCP/80", true}, {"x/a", "8.8.8.8", "UDP/1", true},
	}},
	{"union of policies: deny-all plus allow-80", `
- metadata: {name: deny, namespace: x}
  spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
- metadata: {name: allow80, namespace: x}
  spec:
    podSelector: {matchLabels: {pod: a}}
    ingress: [{ports: [{port: 80}]}]`, []expect{
		{"y/a", "x/a", "TCP/80", true}, {"y/a", "x/a", "TCP/81", false}, {"x/a", "y/a", "TCP/80", false},
		{"y/a", "x/b", "TCP/80", false},
	}},
	{"both ends must allow", `
- metadata: {name: noegress, namespace: x}
  spec: {podSelector: {matchLabels: {pod: a}}, policyTypes: [Egress]}
- metadata: {name: allin, namespace: "y"}
  spec: {podSelector: {}, ingress: [{}]}
- metadata: {name: noin, namespace: z}
  spec: {podSelector: {}, policyTypes: [Ingress]}
- metadata: {name: allout, namespace: "y"}
  spec: {podSelector: {}, egress: [{}], policyTypes: [Egress]}`, []expect{
		{"x/a", "y/a", "TCP/80", false}, {"y/a", "z/a", "TCP/80", false}, {"y/a", "x/a", "TCP/80", true},
		{"x/b", "y/a", "TCP/80", true},
	}},
	{"a policy selects pods of its own namespace only; host-network pods never", `
- metadata: {name: deny, namespace: z}
  spec: {podSelector: {}, policyTypes: [Ingress, Egress]}`, []expect{
		{"x/a", "y/a", "TCP/80", true}, {"x/a", "z/a", "TCP/80", false}, {"x/a", "z/h", "TCP/80", true},
		{"z/h", "x/a", "TCP/80", true}, {"192.168.0.2", "z/a", "TCP/80", true}, {"192.168.0.1", "z/a", "TCP/80", false},
	}},
	{"IPv6 blocks match IPv6 only, 0.0.0.0/0 is IPv4 only", `
- metadata: {name: v6, namespace: x}
  spec:
    podSelector: {}
    policyTypes: [Egress]
    egress: [{to: [{ipBlock: {cidr: "fd00::2:0/112"}}, {ipBlock: {cidr: 0.0.0.0/0, except: [10.0.2.0/24]}}]}]`, []expect{
		{"fd00::1:1", "fd00::2:1", "TCP/80", true}, {"fd00::1:1", "fd00::3:1", "TCP/80", false},
		{"x/a", "z/a", "TCP/80", true}, {"x/a", "y/a", "TCP/80", false}, {"fd00::1:1", "2001:db8::1", "TCP/80", false},
	}},
	{"ports without peers allow those ports from anywhere, ICMP only with no ports", `
- metadata: {name: mixed, namespace: x}
  spec:
    podSelector: {}
    ingress:
    - ports: [{port: 443}]
    - from: [{namespaceSelector: {matchLabels: {ns: "y"}}}]`, []expect{
		{"8.8.8.8", "x/a", "TCP/443", true}, {"8.8.8.8", "x/a", "ICMP", false}, {"y/a", "x/a", "ICMP", true},
		{"2001:db8::1", "fd00::1:1", "TCP/443", true},
	}},
}

// TestSnapshot_Trace_Semantics checks each case's hand-written verdicts,
// then every flow of the fixed cluster against cyclonus.
func TestSnapshot_Trace_Semantics(t *testing.T) {
	total := 0
	for _, tc := range semanticCases {
		t.Run(tc.name, func(t *testing.T) {
			in := fixedCluster()
			in.Policies = mustPolicies(t, tc.policies)
			s := mustSnapshot(t, in)
			for _, e := range tc.expect {
				proto, port := parseFlow(t, e.flow)
				tr, err := s.Trace(ep(t, e.from), ep(t, e.to), proto, port)
				if err != nil {
					t.Fatal(err)
				}
				if tr.Allowed != e.allowed {
					t.Errorf("%s -> %s %s: allowed=%v, want %v\negress: %s\ningress: %s", e.from, e.to, e.flow, tr.Allowed, e.allowed, tr.Egress.Reason, tr.Ingress.Reason)
				}
			}
			ports := tablePorts
			if testing.Short() || raceEnabled {
				ports = []uint16{53, 80, 1000, 8080}
			}
			flows := allFlows(in, tableExtra(), []Protocol{ProtoTCP, ProtoUDP, ProtoSCTP, ProtoICMP}, ports)
			total += compareOracle(t, in, flows)
		})
	}
	t.Logf("%d cases, %d flows compared with cyclonus", len(semanticCases), total)
}
