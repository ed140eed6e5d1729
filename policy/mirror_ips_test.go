package policy

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/veni-cni/veni/kube"
	"github.com/veni-cni/veni/store"
)

// Ensure Mirror.PodIPs gives each mirrored pod the addresses FromMirror's
// snapshot gives it: allocations first (reserved or bound, unmapped,
// without repeats, sorted), else the node's for hostNetwork, else the
// annotation; none for a finished pod; and false for a pod not mirrored.
func TestMirror_PodIPs(t *testing.T) {
	a := netip.MustParseAddr
	m := Mirror{
		Node: Node{Name: "n1", IPs: []netip.Addr{a("192.168.0.1")}},
		Pods: []store.Pod{
			{Namespace: "x", Name: "two"},
			{Namespace: "x", Name: "annotated", Annotations: map[string]string{AnnotationPodIPs: "10.0.0.9, ::ffff:10.0.0.8"}},
			{Namespace: "x", Name: "host", HostNetwork: true},
			{Namespace: "x", Name: "done", Phase: kube.PodSucceeded},
			{Namespace: "x", Name: "reserved-over-annotation", Annotations: map[string]string{AnnotationPodIPs: "10.0.0.1"}},
			{Namespace: "y", Name: "two"},
		},
		Allocations: []store.Allocation{
			{PodNamespace: "x", PodName: "two", IP: a("10.0.0.5"), IP6: a("fd00::5"), State: store.IPBound},
			{PodNamespace: "x", PodName: "two", IP: a("::ffff:10.0.0.3"), State: store.IPReserved},
			{PodNamespace: "x", PodName: "two", IP: a("10.0.0.5"), State: store.IPBound},
			{PodNamespace: "x", PodName: "two", IP: a("10.0.0.7"), State: store.IPFree},
			{PodNamespace: "x", PodName: "done", IP: a("10.0.0.6"), State: store.IPBound},
			{PodNamespace: "x", PodName: "reserved-over-annotation", IP: a("10.0.0.2"), State: store.IPReserved},
			{PodNamespace: "z", PodName: "stray", IP: a("10.0.0.4"), State: store.IPBound},
		},
	}
	snap, err := FromMirror(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range m.Pods {
		ref := PodRef{Namespace: p.Namespace, Name: p.Name}
		got, ok, err := m.PodIPs(ref)
		want, _ := snap.Pod(ref)
		if err != nil || !ok || !slices.Equal(got, want.IPs) {
			t.Errorf("%s: PodIPs %v (%t, %v), snapshot %v", ref, got, ok, err, want.IPs)
		}
	}
	if _, ok, _ := m.PodIPs(PodRef{Namespace: "z", Name: "stray"}); ok {
		t.Error("a pod the mirror does not hold has addresses")
	}
	if got, _, _ := m.PodIPs(PodRef{Namespace: "x", Name: "two"}); !slices.Equal(got, []netip.Addr{a("10.0.0.3"), a("10.0.0.5"), a("fd00::5")}) {
		t.Errorf("x/two: %v, want its allocated addresses, the IPv6 held with one included", got)
	}
}
