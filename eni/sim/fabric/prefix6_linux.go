package fabric

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Delegated IPv6 /80s (see doc.go for why this shape). A /80 is one route
// in the VPC, "/80 via fe80::EUI64(MAC) dev ve-XXXX", whose nexthop is the
// ENI's link-local address with a permanent neighbour entry for the ENI's
// MAC: the VPC never solicits a pod address, and no address of the /80 is
// listed anywhere. Anti-spoofing takes the /80 as one source rule,
// "from /80 iif ve-XXXX lookup main". Nodes reach other nodes' /80s through
// the vSwitch's IPv6 gateway (netplumb routes the /64 via it), so nothing
// asks the VPC to answer neighbour solicitations for them.

var _ interface {
	SetENIIPv6Prefixes(instanceID, eniID string, prefixes []netip.Prefix) error
} = (*Fabric)(nil)

// linkLocal is the EUI-64 link-local address of mac, the one a link with
// that MAC gives itself: fe80::(mac[0]^2)mac[1]:mac[2]ff:fe mac[3]:mac[4]mac[5].
func linkLocal(mac net.HardwareAddr) netip.Addr {
	var b [16]byte
	b[0], b[1] = 0xfe, 0x80
	if len(mac) == 6 {
		b[8], b[9], b[10], b[11] = mac[0]^2, mac[1], mac[2], 0xff
		b[12], b[13], b[14], b[15] = 0xfe, mac[3], mac[4], mac[5]
	}
	return netip.AddrFrom16(b)
}

// SetENIIPv6Prefixes makes the VPC deliver every address of prefixes to
// the ENI and accept them as sources from it. An ENI that is not attached
// has nothing to route: its /80s arrive with AttachENI. A trunk member's
// /80s are not carried (members get their addresses one by one).
//
// Equivalent to:
//
//	ip -n <sim>-vpc neigh replace fe80::EUI64 lladdr MAC dev ve-XXXX nud permanent
//	ip -n <sim>-vpc -6 route replace PREFIX/80 via fe80::EUI64 dev ve-XXXX proto 86
//	ip -n <sim>-vpc -6 rule add from PREFIX/80 iif ve-XXXX lookup main priority 31000
func (f *Fabric) SetENIIPv6Prefixes(instanceID, eniID string, prefixes []netip.Prefix) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return ErrClosed
	}
	if _, ok := f.members[eniID]; ok {
		if len(prefixes) > 0 {
			return fmt.Errorf("set ipv6 prefixes of member eni %s on %s: a member's /80s are not carried", eniID, instanceID)
		}
		return nil
	}
	st := f.enis6[eniID]
	if st == nil {
		st = &eni6{}
		f.enis6[eniID] = st
	}
	st.prefixes = slices.Clone(prefixes)
	link, err := f.eniLink(eniID)
	if errors.As(err, &netlink.LinkNotFoundError{}) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("set ipv6 prefixes of eni %s: %w", eniID, err)
	}
	if err := f.setPrefixes6(eniID, link); err != nil {
		return fmt.Errorf("set ipv6 prefixes of eni %s on %s: %w", eniID, instanceID, err)
	}
	return nil
}

// setPrefixes6 applies the ENI's recorded /80s to its VPC link: the
// nexthop's neighbour entry, one route per /80, the source rules.
func (f *Fabric) setPrefixes6(eniID string, link netlink.Link) error {
	st := f.enis6[eniID]
	if st == nil {
		return nil
	}
	mac, ok := f.macs[eniID]
	if !ok {
		return fmt.Errorf("vpc link %s was not made by this fabric", link.Attrs().Name)
	}
	nh := linkLocal(mac)
	idx := link.Attrs().Index
	if len(st.prefixes) > 0 {
		n := &netlink.Neigh{LinkIndex: idx, Family: netlink.FAMILY_V6, State: netlink.NUD_PERMANENT, IP: nh.AsSlice(), HardwareAddr: mac}
		if err := f.vpc.NeighSet(n); err != nil {
			return fmt.Errorf("neighbour %s lladdr %s dev %s: %w", nh, mac, link.Attrs().Name, err)
		}
	}
	want := map[netip.Prefix]bool{}
	for _, p := range st.prefixes {
		want[p.Masked()] = true
	}
	have, err := listRoutes(f.vpc, &netlink.Route{LinkIndex: idx, Protocol: RouteProtocol}, netlink.RT_FILTER_OIF|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return fmt.Errorf("list routes of %s: %w", link.Attrs().Name, err)
	}
	for _, r := range have {
		p, ok := routePrefix(r)
		if !ok || p.Bits() == p.Addr().BitLen() {
			continue // an address's route: setRoutes's
		}
		if want[p] {
			delete(want, p)
			continue
		}
		if err := f.vpc.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("delete route %s: %w", p, err)
		}
	}
	for p := range want {
		r := &netlink.Route{LinkIndex: idx, Dst: prefixNet(p), Gw: nh.AsSlice(), Protocol: RouteProtocol}
		if err := f.vpc.RouteReplace(r); err != nil {
			return fmt.Errorf("route %s via %s dev %s: %w", p, nh, link.Attrs().Name, err)
		}
	}
	if len(st.prefixes) == 0 {
		n := &netlink.Neigh{LinkIndex: idx, Family: netlink.FAMILY_V6, IP: nh.AsSlice()}
		if err := f.vpc.NeighDel(n); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("delete neighbour %s dev %s: %w", nh, link.Attrs().Name, err)
		}
	}
	return f.setSourceRules(link.Attrs().Name, st.addrs, st.prefixes)
}

// routePrefix is r's destination as a prefix.
func routePrefix(r netlink.Route) (netip.Prefix, bool) {
	if r.Dst == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(r.Dst.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := r.Dst.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones).Masked(), true
}

// prefixNet is p as a net.IPNet.
func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
