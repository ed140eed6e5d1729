package policy

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// dualStackCluster is fixedCluster with an IPv6 address on each node.
func dualStackCluster() Input {
	in := fixedCluster()
	in.Nodes[0].IPs = append(in.Nodes[0].IPs, netip.MustParseAddr("fd00:ff::1"))
	in.Nodes[1].IPs = append(in.Nodes[1].IPs, netip.MustParseAddr("fd00:ff::2"))
	return in
}

// TestSnapshot_Compile_IPv6Tables pins IPv6 tables: ipBlocks with excepts
// flattened as IPv4's (each prefix carries the union of the rules covering
// it), pod peers at their IPv6 addresses too, the node's IPv6 allowed in.
func TestSnapshot_Compile_IPv6Tables(t *testing.T) {
	none := string(rune('0' - 1))
	for _, tc := range []struct {
		name, policies string
		egress         bool
		want           []string
	}{
		{"an IPv6 except carries the other rules (AWS agent #326)", `
- metadata: {name: p, namespace: x}
  spec:
    podSelector: {matchLabels: {pod: c}}
    policyTypes: [Egress]
    egress:
    - to: [{ipBlock: {cidr: "::/0", except: ["fd00::/16"]}}]
    - ports: [{port: 53, protocol: UDP}]`, true, []string{
			"0.0.0.0/0: UDP/53[x/p/1/" + none + "]",
			"::/0: any[x/p/0/0] UDP/53[x/p/1/" + none + "]",
			"fd00::/16: UDP/53[x/p/1/" + none + "]",
		}},
		{"overlapping IPv6 blocks of two policies, except inside except", `
- metadata: {name: p, namespace: x}
  spec:
    podSelector: {matchLabels: {pod: c}}
    ingress:
    - from: [{ipBlock: {cidr: "2001:db8::/32", except: ["2001:db8:1::/48"]}}]
      ports: [{port: 80}]
- metadata: {name: q, namespace: x}
  spec:
    podSelector: {matchLabels: {pod: c}}
    ingress:
    - from: [{ipBlock: {cidr: "2001:db8:1::/48", except: ["2001:db8:1:2::/64"]}}]
      ports: [{port: 443}]`, false, []string{
			"192.168.0.1/32: any[node]",
			"2001:db8::/32: TCP/80[x/p/0/0]",
			"2001:db8:1::/48: TCP/443[x/q/0/0]",
			"2001:db8:1:2::/64: ",
			"fd00:ff::1/128: any[node]",
		}},
		{"a pod peer at both its addresses", `
- metadata: {name: p, namespace: x}
  spec:
    podSelector: {matchLabels: {pod: c}}
    ingress:
    - from: [{podSelector: {matchLabels: {pod: a}}, namespaceSelector: {matchLabels: {ns: "y"}}}]
      ports: [{port: 8080}]`, false, []string{
			"10.0.2.1/32: TCP/8080[x/p/0/0]",
			"192.168.0.1/32: any[node]",
			"fd00::2:1/128: TCP/8080[x/p/0/0]",
			"fd00:ff::1/128: any[node]",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := dualStackCluster()
			in.Policies = mustPolicies(t, tc.policies)
			rs := mustCompile(t, mustSnapshot(t, in), "x", "c")
			d := &rs.Ingress
			if tc.egress {
				d = &rs.Egress
			}
			got := cidrsOf(d.CIDRs)
			for i := range got {
				got[i] = strings.TrimSuffix(got[i], " ")
			}
			want := make([]string, len(tc.want))
			for i := range tc.want {
				want[i] = strings.TrimSuffix(tc.want[i], " ")
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got\n%q\nwant\n%q", got, want)
			}
		})
	}
}

// TestSnapshot_Trace_FamilyParity: a policy that names no address (pod and
// namespace selectors, ports, named ports, the node) decides every pod pair
// over IPv6 as over IPv4; so does FailClosed. Each semantic case whose
// policies have no ipBlock is one world.
func TestSnapshot_Trace_FamilyParity(t *testing.T) {
	protos := []Protocol{ProtoTCP, ProtoUDP, ProtoSCTP, ProtoICMP}
	compared := 0
	for _, tc := range semanticCases {
		if strings.Contains(tc.policies, "ipBlock") {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			in := dualStackCluster()
			in.Policies = mustPolicies(t, tc.policies)
			s := mustSnapshot(t, in)
			var pods []Pod
			for _, p := range in.Pods {
				if !p.HostNetwork {
					pods = append(pods, p)
				}
			}
			for _, from := range pods {
				for _, to := range pods {
					for _, proto := range protos {
						for _, port := range []uint16{53, 80, 8080, 9090} {
							v4, err := s.Trace(Endpoint{IP: from.IPs[0]}, Endpoint{IP: to.IPs[0]}, proto, port)
							if err != nil {
								t.Fatal(err)
							}
							v6, err := s.Trace(Endpoint{IP: from.IPs[1]}, Endpoint{IP: to.IPs[1]}, proto, port)
							if err != nil {
								t.Fatal(err)
							}
							if v4.Allowed != v6.Allowed {
								t.Errorf("%s -> %s %s/%d: IPv4 %v (%s | %s), IPv6 %v (%s | %s)", from.Ref(), to.Ref(), proto, port,
									v4.Allowed, v4.Egress.Reason, v4.Ingress.Reason, v6.Allowed, v6.Egress.Reason, v6.Ingress.Reason)
							}
							compared++
						}
					}
				}
				// The node reaches the pod over either family.
				for i, nodeIP := range in.Nodes[0].IPs {
					if from.Node != "n1" {
						break
					}
					tr, err := s.Trace(Endpoint{IP: nodeIP}, Endpoint{IP: from.IPs[i]}, ProtoTCP, 10250)
					if err != nil {
						t.Fatal(err)
					}
					if !tr.Ingress.Allowed {
						t.Errorf("node %s -> %s: %s", nodeIP, from.IPs[i], tr.Ingress.Reason)
					}
				}
			}
		})
	}
	if compared == 0 {
		t.Fatal("no case without ipBlock: nothing compared")
	}
	t.Logf("%d flow pairs compared", compared)
}
