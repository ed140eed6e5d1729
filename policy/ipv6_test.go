package policy

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/veni-cni/veni/store"
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

// TestFromMirror_DualStackTrace: on a dual-stack node, a pod's allocation
// holds its IPv6 with its IPv4; a trace between two pods' IPv6 addresses
// finds both pods and decides as between their IPv4 addresses, with a
// selector rule naming the client.
func TestFromMirror_DualStackTrace(t *testing.T) {
	a := netip.MustParseAddr
	m := Mirror{
		Node: Node{Name: "n1", IPs: []netip.Addr{a("192.168.0.1"), a("fd00:ff::1")}},
		Pods: []store.Pod{
			{Namespace: "x", Name: "web", Labels: map[string]string{"app": "web"}},
			{Namespace: "x", Name: "client", Labels: map[string]string{"app": "client"}},
			{Namespace: "x", Name: "other", Labels: map[string]string{"app": "other"}},
		},
		Allocations: []store.Allocation{
			{PodNamespace: "x", PodName: "web", IP: a("10.0.0.1"), IP6: a("fd00::1"), State: store.IPBound},
			{PodNamespace: "x", PodName: "client", IP: a("10.0.0.2"), IP6: a("fd00::2"), State: store.IPBound},
			{PodNamespace: "x", PodName: "other", IP: a("10.0.0.3"), IP6: a("fd00::3"), State: store.IPBound},
		},
		Policies: []store.Policy{{Namespace: "x", Name: "web", Raw: []byte(`{"metadata":{"name":"web","namespace":"x"},
			"spec":{"podSelector":{"matchLabels":{"app":"web"}},"ingress":[{"from":[{"podSelector":{"matchLabels":{"app":"client"}}}]}]}}`)}},
	}
	s, err := FromMirror(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		from, to string
		allowed  bool
	}{
		{"10.0.0.2", "10.0.0.1", true}, {"fd00::2", "fd00::1", true},
		{"10.0.0.3", "10.0.0.1", false}, {"fd00::3", "fd00::1", false},
		{"fd00:ff::1", "fd00::1", true}, // the node's IPv6
	} {
		tr, err := s.Trace(ep(t, tc.from), ep(t, tc.to), ProtoTCP, 80)
		if err != nil {
			t.Fatal(err)
		}
		if tr.Allowed != tc.allowed || tr.To.Kind != KindPod || tr.To.Pod == nil || tr.To.Pod.Name != "web" {
			t.Errorf("%s -> %s: allowed %v (want %v), to %+v: %s", tc.from, tc.to, tr.Allowed, tc.allowed, tr.To, tr.Ingress.Reason)
		}
	}
	var buf strings.Builder
	tr, err := s.Trace(ep(t, "fd00::2"), ep(t, "x/web"), ProtoTCP, 80)
	if err != nil {
		t.Fatalf("trace from fd00::2 to x/web: %v", err)
	}
	if err := tr.WriteText(&buf); err != nil || !strings.Contains(buf.String(), "fd00::1") || !strings.Contains(buf.String(), "fd00::2") {
		t.Errorf("trace text (%v) does not show the IPv6 ends:\n%s", err, buf.String())
	}
}
