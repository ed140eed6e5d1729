package policy

import (
	"encoding/json"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/veni-cni/veni/kube"
	"github.com/veni-cni/veni/store"
)

func kubeWorld(t *testing.T) ([]*kube.Pod, []*kube.Namespace, []*kube.NetworkPolicy, []*kube.Node) {
	pods := []*kube.Pod{
		{ObjectMeta: kube.ObjectMeta{Name: "web", Namespace: "shop", Labels: map[string]string{"app": "web"}},
			Spec:   kube.PodSpec{NodeName: "node-1", Containers: []kube.Container{{Name: "c", Ports: []kube.ContainerPort{{Name: "http", ContainerPort: 8080}}}}},
			Status: kube.PodStatus{Phase: kube.PodRunning, PodIPs: []kube.PodIP{{IP: "10.0.0.2"}}, PodIP: "10.0.0.2"}},
		// Status not yet written: the annotation veni wrote gives the address.
		{ObjectMeta: kube.ObjectMeta{Name: "db", Namespace: "shop", Labels: map[string]string{"app": "db"}, Annotations: map[string]string{AnnotationPodIPs: "10.0.0.3,fd00::3"}},
			Spec:   kube.PodSpec{NodeName: "node-1", Containers: []kube.Container{{Name: "c", Ports: []kube.ContainerPort{{Name: "pg", ContainerPort: 5432, Protocol: "TCP"}}}}},
			Status: kube.PodStatus{Phase: kube.PodPending}},
		// Finished: its address is someone else's now.
		{ObjectMeta: kube.ObjectMeta{Name: "job", Namespace: "shop", Labels: map[string]string{"app": "web"}},
			Spec:   kube.PodSpec{NodeName: "node-1"},
			Status: kube.PodStatus{Phase: kube.PodSucceeded, PodIP: "10.0.0.9"}},
		{ObjectMeta: kube.ObjectMeta{Name: "new", Namespace: "shop", Labels: map[string]string{"app": "other"}},
			Spec:   kube.PodSpec{NodeName: "node-1"},
			Status: kube.PodStatus{Phase: kube.PodRunning, PodIP: "10.0.0.9"}},
		{ObjectMeta: kube.ObjectMeta{Name: "agent", Namespace: "ops"},
			Spec:   kube.PodSpec{NodeName: "node-1", HostNetwork: true},
			Status: kube.PodStatus{Phase: kube.PodRunning, PodIP: "192.168.0.10"}},
	}
	nss := []*kube.Namespace{{ObjectMeta: kube.ObjectMeta{Name: "shop"}}, {ObjectMeta: kube.ObjectMeta{Name: "ops"}}}
	pols := []*kube.NetworkPolicy{}
	for _, p := range mustPolicies(t, `
- metadata: {name: db, namespace: shop}
  spec:
    podSelector: {matchLabels: {app: db}}
    ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: pg}]}]`) {
		pols = append(pols, &p)
	}
	nodes := []*kube.Node{{ObjectMeta: kube.ObjectMeta{Name: "node-1"}, Status: kube.NodeStatus{Addresses: []kube.NodeAddress{
		{Type: "InternalIP", Address: "192.168.0.10"}, {Type: "ExternalIP", Address: "47.1.2.3"}, {Type: "Hostname", Address: "node-1"}}}}}
	return pods, nss, pols, nodes
}

// TestFromKube_Addresses checks where addresses come from and that the
// snapshot decides on them.
func TestFromKube_Addresses(t *testing.T) {
	s, err := FromKube(kubeWorld(t))
	if err != nil {
		t.Fatal(err)
	}
	if w := s.Warnings(); len(w) != 0 {
		t.Errorf("warnings %v: the finished pod's address must not count", w)
	}
	for _, tc := range []expect{
		{"shop/web", "shop/db", "TCP/5432", true},
		{"10.0.0.9", "shop/db", "TCP/5432", false}, // shop/new, not the finished shop/job
		{"ops/agent", "shop/db", "TCP/5432", true}, // host network on db's node: the node
		{"47.1.2.3", "shop/db", "TCP/5432", false}, // ExternalIP is not the node
		{"shop/web", "fd00::3", "TCP/5432", false}, // web has no IPv6 address
	} {
		proto, port := parseFlow(t, tc.flow)
		tr, err := s.Trace(ep(t, tc.from), ep(t, tc.to), proto, port)
		if tc.to == "fd00::3" {
			if !errors.Is(err, ErrNoAddress) {
				t.Errorf("%s -> %s: err %v, want ErrNoAddress", tc.from, tc.to, err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if tr.Allowed != tc.allowed {
			t.Errorf("%s -> %s %s: allowed=%v, want %v (%s)", tc.from, tc.to, tc.flow, tr.Allowed, tc.allowed, tr.Ingress.Reason)
		}
	}
}

// TestFromMirror_SameAsFromKube builds the local node's view from store
// mirror records (as the daemon writes them) and wants the same rulesets
// as from the API objects.
func TestFromMirror_SameAsFromKube(t *testing.T) {
	pods, nss, pols, nodes := kubeWorld(t)
	want, err := FromKube(pods, nss, pols, nodes)
	if err != nil {
		t.Fatal(err)
	}
	m := Mirror{Node: Node{Name: "node-1", IPs: []netip.Addr{netip.MustParseAddr("192.168.0.10")}}}
	for _, p := range pods {
		rec := store.Pod{Namespace: p.Namespace, Name: p.Name, Labels: p.Labels, HostNetwork: p.Spec.HostNetwork, Phase: p.Status.Phase, Annotations: p.Annotations}
		for _, c := range p.Spec.Containers {
			for _, cp := range c.Ports {
				proto := cp.Protocol
				if proto == "" {
					proto = "TCP"
				}
				rec.Ports = append(rec.Ports, store.PodPort{Name: cp.Name, Port: cp.ContainerPort, Protocol: proto})
			}
		}
		m.Pods = append(m.Pods, rec)
		// The mirror has no status: addresses come from allocations.
		if p.Status.PodIP != "" && p.Status.Phase == kube.PodRunning && !p.Spec.HostNetwork {
			m.Allocations = append(m.Allocations, store.Allocation{PodNamespace: p.Namespace, PodName: p.Name, IP: netip.MustParseAddr(p.Status.PodIP), State: store.IPBound})
		}
	}
	for _, n := range nss {
		m.Namespaces = append(m.Namespaces, store.Namespace{Name: n.Name, Labels: n.Labels})
	}
	for _, p := range pols {
		raw, _ := json.Marshal(p)
		m.Policies = append(m.Policies, store.Policy{Namespace: p.Namespace, Name: p.Name, Raw: raw})
	}
	got, err := FromMirror(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range want.Pods() {
		a, _ := want.Compile(p.Ref())
		b, _ := got.Compile(p.Ref())
		if !reflect.DeepEqual(a, b) {
			ja, _ := json.Marshal(a)
			jb, _ := json.Marshal(b)
			t.Errorf("%s:\nfrom kube   %s\nfrom mirror %s", p.Ref(), ja, jb)
		}
	}

	// A record that does not decode: its selection is unknown, so the
	// whole namespace is closed both ways, and a warning says so.
	m.Policies = append(m.Policies, store.Policy{Namespace: "shop", Name: "broken", Raw: []byte(`{"spec": 1}`)})
	s, err := FromMirror(m)
	if err != nil {
		t.Fatal(err)
	}
	if w := s.Warnings(); len(w) != 1 || !strings.Contains(w[0], "mirrored policy shop/broken") {
		t.Errorf("warnings %q", w)
	}
	rs, _ := s.Compile(PodRef{"shop", "web"})
	if !rs.Ingress.Isolated || !rs.Egress.Isolated || len(rs.Egress.CIDRs) != 0 {
		t.Errorf("shop/web under an unreadable policy: %+v", rs)
	}
}

// TestFromKube_InvalidPolicy: a policy the API server accepted but veni
// cannot read isolates what it selects, allows nothing, and warns; New on
// its own (manifests) refuses it.
func TestFromKube_InvalidPolicy(t *testing.T) {
	pods, nss, pols, nodes := kubeWorld(t)
	bad := mustPolicies(t, `
- metadata: {name: odd, namespace: shop}
  spec:
    podSelector: {matchLabels: {app: web}}
    policyTypes: [Egress]
    egress: [{to: [{ipBlock: {cidr: "010.0.0.0/8"}}]}]`)
	pols = append(pols, &bad[0])
	s, err := FromKube(pods, nss, pols, nodes)
	if err != nil {
		t.Fatal(err)
	}
	if w := s.Warnings(); len(w) != 1 || !strings.Contains(w[0], "policy shop/odd") || !strings.Contains(w[0], "allows nothing") {
		t.Errorf("warnings %q", w)
	}
	rs, _ := s.Compile(PodRef{"shop", "web"})
	if rs.Ingress.Isolated || !rs.Egress.Isolated || len(rs.Egress.CIDRs) != 0 || rs.Egress.Policies[0] != "shop/odd" {
		t.Errorf("shop/web: %+v", rs)
	}
	if _, err := New(Input{Policies: bad}); !errors.Is(err, ErrInvalidPolicy) {
		t.Errorf("New: %v", err)
	}
}
