package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/veni-cni/veni/kube"
	"sigs.k8s.io/yaml"
)

// The fixed cluster of the table tests: namespaces x, y, z (labelled
// ns=<name>), pods a, b, c in each (labelled pod=<name>, app=web for a and
// b), all on the pod network; node n1 holds x and y, node n2 holds z.
// Addresses: 10.0.<ns>.<pod> and fd00::<ns>:<pod>; nodes 192.168.0.1/2.
// Container ports: a: http 80/TCP, dns 53/UDP; b: http 8080/TCP,
// dns 53/TCP; c: none. A host-network pod h in z on n2.
func nsIndex(ns string) int { return int(ns[0]-'x') + 1 }

func fixedCluster() Input {
	in := Input{Nodes: []Node{
		{Name: "n1", IPs: []netip.Addr{netip.MustParseAddr("192.168.0.1")}},
		{Name: "n2", IPs: []netip.Addr{netip.MustParseAddr("192.168.0.2")}},
	}}
	for _, ns := range []string{"x", "y", "z"} {
		in.Namespaces = append(in.Namespaces, Namespace{Name: ns, Labels: map[string]string{"ns": ns}})
		for i, name := range []string{"a", "b", "c"} {
			node := "n1"
			if ns == "z" {
				node = "n2"
			}
			p := Pod{Namespace: ns, Name: name, Node: node, Labels: map[string]string{"pod": name},
				IPs: []netip.Addr{
					netip.MustParseAddr(fmt.Sprintf("10.0.%d.%d", nsIndex(ns), i+1)),
					netip.MustParseAddr(fmt.Sprintf("fd00::%d:%d", nsIndex(ns), i+1)),
				}}
			switch name {
			case "a":
				p.Labels["app"] = "web"
				p.Ports = []ContainerPort{{"http", 80, ProtoTCP}, {"dns", 53, ProtoUDP}}
			case "b":
				p.Labels["app"] = "web"
				p.Ports = []ContainerPort{{"http", 8080, ProtoTCP}, {"dns", 53, ProtoTCP}}
			}
			in.Pods = append(in.Pods, p)
		}
	}
	in.Pods = append(in.Pods, Pod{Namespace: "z", Name: "h", Node: "n2", HostNetwork: true,
		Labels: map[string]string{"pod": "h", "app": "web"}, IPs: []netip.Addr{netip.MustParseAddr("192.168.0.2")},
		Ports: []ContainerPort{{"http", 80, ProtoTCP}}})
	return in
}

// mustPolicies reads a YAML list of NetworkPolicies, strictly, and through
// untyped JSON as kubectl does, so that a bare y (a YAML 1.1 boolean) is
// an error rather than the string "true".
func mustPolicies(tb testing.TB, doc string) []kube.NetworkPolicy {
	tb.Helper()
	js, err := yaml.YAMLToJSON([]byte(strings.ReplaceAll(doc, "\t", "  ")))
	if err != nil {
		tb.Fatalf("policies: %v\n%s", err, doc)
	}
	var pols []kube.NetworkPolicy
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&pols); err != nil {
		tb.Fatalf("policies: %v\n%s", err, doc)
	}
	return pols
}

func mustSnapshot(tb testing.TB, in Input) *Snapshot {
	tb.Helper()
	s, err := New(in)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return s
}

func mustCompile(tb testing.TB, s *Snapshot, ns, name string) *Ruleset {
	tb.Helper()
	rs, err := s.Compile(PodRef{ns, name})
	if err != nil {
		tb.Fatal(err)
	}
	return rs
}

// ep reads "x/a", "x/a6" (the pod's IPv6 address) or an address.
func ep(tb testing.TB, s string) Endpoint {
	tb.Helper()
	e, err := ParseEndpoint(s)
	if err != nil {
		tb.Fatal(err)
	}
	return e
}
