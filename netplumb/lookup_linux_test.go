package netplumb

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"
)

// Ensure LinkIPv6 returns the global IPv6 addresses of the link with the
// MAC, sorted, without its link-local or IPv4 ones, and a missing link as
// ErrLinkNotFound; and NodeIPv6 finds them among the namespace's links.
func TestLinkIPv6(t *testing.T) {
	topo := mustTopology(t)
	eth0, err := linkByName(topo.nodeH, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	mustSysctls(t, topo.node, [2]string{"net/ipv6/conf/eth0/disable_ipv6", "0"})
	if err := topo.nodeH.LinkSetUp(eth0); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"fd00:ac1e:1::5/64", "2001:db8::9/64", "10.9.0.5/24"} {
		mustAddr(t, topo.nodeH, eth0, netip.MustParsePrefix(p))
	}
	var got []netip.Addr
	if err := inNetNS(topo.node, func() (err error) { got, err = LinkIPv6(primaryMAC); return err }); err != nil {
		t.Fatal(err)
	}
	want := []netip.Addr{netip.MustParseAddr("2001:db8::9"), netip.MustParseAddr("fd00:ac1e:1::5")}
	if !slices.Equal(got, want) {
		t.Errorf("LinkIPv6 = %v, want %v", got, want)
	}
	var all []netip.Addr
	if err := inNetNS(topo.node, func() (err error) { all, err = NodeIPv6(); return err }); err != nil {
		t.Fatal(err)
	}
	for _, a := range want {
		if !slices.Contains(all, a) {
			t.Errorf("NodeIPv6 = %v, want %s among them", all, a)
		}
	}
	if slices.ContainsFunc(all, func(a netip.Addr) bool { return !a.Is6() || a.IsLinkLocalUnicast() || a.IsLoopback() }) {
		t.Errorf("NodeIPv6 = %v: only global IPv6", all)
	}
	other := net.HardwareAddr{0x02, 0, 0, 0, 0xee, 0xee}
	if err := inNetNS(topo.node, func() (err error) { _, err = LinkIPv6(other); return err }); !errors.Is(err, ErrLinkNotFound) {
		t.Errorf("LinkIPv6 of a missing link: %v, want ErrLinkNotFound", err)
	}
}
