package enforce

import (
	"net/netip"
	"testing"
)

// BenchmarkSetEndpoint_New measures what a CNI ADD pays to install a new
// pod's policy (an endpoint the kernel has never seen, as every new host
// veth is), and BenchmarkRemoveEndpoint what its DEL pays to remove it.
func BenchmarkSetEndpoint_New(b *testing.B) {
	e := mustOpen(b, Options{PinDir: mustPinDir(b)})
	rs := testRuleset()
	// A first endpoint: the node's connection table exists, as on any node
	// that has had a policy pod before.
	mustSet(b, e, EndpointKey{Ifindex: 1 << 20, IP: netip.MustParseAddr("10.0.0.2")}, rs)
	ifindex := 1 << 21
	b.ResetTimer()
	for b.Loop() {
		ifindex++
		ep := EndpointKey{Ifindex: ifindex, IP: netip.MustParseAddr("10.0.0.3")}
		if err := e.SetEndpoint(ep, rs); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := e.RemoveEndpoint(ep); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
