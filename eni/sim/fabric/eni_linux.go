package fabric

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/veni-cni/veni/eni/sim"
)

var _ sim.Fabric = (*Fabric)(nil)

// AttachENI wires an ENI into the node of its instance: a veth pair whose
// node end has the ENI's MAC and NIC name, and for each of the ENI's
// addresses a /32 (IPv6: /128) route and a permanent neighbour entry in
// the VPC. The primary ENI's eth0 is configured (address,
// default route via the gateway) as cloud-init would; a secondary ENI's
// NIC is left down and unaddressed. An ENI whose vSwitch has IPv6 gets
// IPv6 on its VPC link, the gateway's proxy NDP entry and the root
// blackhole of its /64 (see ipv6_linux.go); the node configures its own
// IPv6 addresses. Attaching an attached ENI re-applies
// its configuration. May return an error wrapping ErrUnknownInstance.
//
// Equivalent to:
//
//	ip -n <sim>-vpc link add ve-XXXX type veth peer name ethN address MAC netns <node>
//	ip -n <sim>-vpc link set ve-XXXX alias <sim>/<eni> up
//	ip -n <sim>-vpc route replace IP/32 dev ve-XXXX proto 86   (each IP)
//	ip -n <sim>-vpc neigh replace IP lladdr MAC dev ve-XXXX nud permanent
func (f *Fabric) AttachENI(l sim.ENILink) (err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return ErrClosed
	}
	n, ok := f.nodes[l.InstanceID]
	if !ok {
		return fmt.Errorf("attach eni %s: instance %s: %w", l.ENIID, l.InstanceID, ErrUnknownInstance)
	}
	for _, gw := range []netip.Addr{l.Gateway, l.Gateway6} {
		if gw.IsValid() {
			if err := f.ensureVPCAddr(gw); err != nil {
				return fmt.Errorf("attach eni %s: %w", l.ENIID, err)
			}
		}
	}
	if l.IPv6CIDR.IsValid() {
		if err := f.ensureBlackhole(l.IPv6CIDR); err != nil {
			return fmt.Errorf("attach eni %s: %w", l.ENIID, err)
		}
	}
	link, err := f.eniLink(l.ENIID)
	if errors.As(err, &netlink.LinkNotFoundError{}) {
		link, err = f.addENILink(n, l)
		if err != nil {
			return fmt.Errorf("attach eni %s to %s: %w", l.ENIID, n.Name, err)
		}
		defer func() {
			if err != nil {
				_ = f.vpc.LinkDel(link)
			}
		}()
	} else if err != nil {
		return fmt.Errorf("attach eni %s: %w", l.ENIID, err)
	}
	if err := f.vpc.LinkSetUp(link); err != nil {
		return fmt.Errorf("attach eni %s: set %s up: %w", l.ENIID, link.Attrs().Name, err)
	}
	if l.Primary {
		if err := configurePrimary(n, l); err != nil {
			return fmt.Errorf("attach eni %s: configure eth0 of %s: %w", l.ENIID, n.Name, err)
		}
	}
	f.macs[l.ENIID] = l.MAC
	if l.Trunk {
		if err := f.attachTrunk(l.ENIID, link.Attrs().Index); err != nil {
			return fmt.Errorf("attach trunk eni %s: %w", l.ENIID, err)
		}
	}
	if l.IPv6CIDR.IsValid() {
		if err := f.enableLinkIPv6(link.Attrs().Name); err != nil {
			return fmt.Errorf("attach eni %s: %w", l.ENIID, err)
		}
	}
	st := f.enis6[l.ENIID]
	if st == nil {
		st = &eni6{}
		f.enis6[l.ENIID] = st
	}
	st.cidr, st.gw = l.IPv6CIDR.Masked(), l.Gateway6
	st.prefixes = slices.Clone(l.IPv6Prefixes)
	f.own[l.ENIID] = slices.Clone(l.IPs)
	if err := f.setAddresses(l.ENIID, link, l.MAC, f.linkAddrs(l.ENIID)); err != nil {
		return fmt.Errorf("attach eni %s: %w", l.ENIID, err)
	}
	if err := f.setPrefixes6(l.ENIID, link); err != nil {
		return fmt.Errorf("attach eni %s: %w", l.ENIID, err)
	}
	// The new link answers for its gateway and its peers even when it
	// brought no IPv6 address of its own.
	if err := f.syncProxies(st.cidr); err != nil {
		return fmt.Errorf("attach eni %s: %w", l.ENIID, err)
	}
	return nil
}

// DetachENI removes the ENI's veth pair; with it go its VPC routes. An ENI
// without a link is already detached and not an error.
//
// Equivalent to: ip -n <sim>-vpc link del ve-XXXX
func (f *Fabric) DetachENI(instanceID, eniID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return ErrClosed
	}
	link, err := f.eniLink(eniID)
	if errors.As(err, &netlink.LinkNotFoundError{}) {
		return f.forgetENI(instanceID, eniID)
	}
	if err != nil {
		return fmt.Errorf("detach eni %s from %s: %w", eniID, instanceID, err)
	}
	if err := f.vpc.LinkDel(link); err != nil {
		return fmt.Errorf("detach eni %s from %s: %w", eniID, instanceID, err)
	}
	return f.forgetENI(instanceID, eniID)
}

// forgetENI drops what the fabric keeps of an ENI whose link is gone.
func (f *Fabric) forgetENI(instanceID, eniID string) error {
	delete(f.macs, eniID)
	delete(f.own, eniID)
	if err := f.forgetTrunk(eniID); err != nil {
		return fmt.Errorf("detach eni %s from %s: %w", eniID, instanceID, err)
	}
	if err := f.forgetIPv6(eniID); err != nil {
		return fmt.Errorf("detach eni %s from %s: %w", eniID, instanceID, err)
	}
	return nil
}

// SetENIAddresses makes the VPC deliver exactly ips to the ENI (a /32 or
// /128 route and a permanent neighbour entry with the ENI's MAC for each)
// and accept exactly them as sources from it (IPv4: rp_filter; IPv6:
// source rules, see ipv6_linux.go). An ENI that is not attached has
// nothing to route: its addresses arrive with AttachENI. A member's
// addresses (after AttachMember) are routed to its trunk's link, and
// accepted from it only tagged with the member's VLAN ID (trunk_linux.go).
func (f *Fabric) SetENIAddresses(instanceID, eniID string, ips []netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return ErrClosed
	}
	if m, ok := f.members[eniID]; ok {
		if err := f.setMemberAddresses(m, ips); err != nil {
			return fmt.Errorf("set addresses of member eni %s on trunk %s of %s: %w", eniID, m.trunkID, instanceID, err)
		}
		return nil
	}
	link, err := f.eniLink(eniID)
	if errors.As(err, &netlink.LinkNotFoundError{}) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("set addresses of eni %s: %w", eniID, err)
	}
	mac, ok := f.macs[eniID]
	if !ok {
		return fmt.Errorf("set addresses of eni %s on %s: its vpc link %s was not made by this fabric", eniID, instanceID, link.Attrs().Name)
	}
	f.own[eniID] = slices.Clone(ips)
	if err := f.setAddresses(eniID, link, mac, f.linkAddrs(eniID)); err != nil {
		return fmt.Errorf("set addresses of eni %s on %s: %w", eniID, instanceID, err)
	}
	return nil
}

// eniLink finds an ENI's VPC-side link, checking by alias that the hashed
// name really is this ENI's.
func (f *Fabric) eniLink(eniID string) (netlink.Link, error) {
	link, err := f.vpc.LinkByName(LinkName(eniID))
	if err != nil {
		return nil, err
	}
	if want := linkAlias(f.name, eniID); link.Attrs().Alias != want {
		return nil, fmt.Errorf("link %s belongs to %q, not %q (hash collision)", link.Attrs().Name, link.Attrs().Alias, want)
	}
	return link, nil
}

func (f *Fabric) addENILink(n *node, l sim.ENILink) (_ netlink.Link, err error) {
	name := LinkName(l.ENIID)
	ifName := NodeIfName(l.Primary, l.DeviceIndex)
	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: name},
		PeerName:         ifName,
		PeerHardwareAddr: l.MAC,
		PeerNamespace:    netlink.NsFd(int(n.ns)),
	}
	if err := f.vpc.LinkAdd(veth); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("create %s in %s: %w (a link of that name exists in the node)", ifName, n.NetNS, err)
		}
		return nil, fmt.Errorf("create veth %s/%s: %w", name, ifName, err)
	}
	link, err := f.vpc.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("find new veth %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			_ = f.vpc.LinkDel(link)
		}
	}()
	// The kernel ignores IFLA_IFALIAS on creation, hence a second call.
	if err := f.vpc.LinkSetAlias(link, linkAlias(f.name, l.ENIID)); err != nil {
		return nil, fmt.Errorf("set alias of %s: %w", name, err)
	}
	// rp_filter is the anti-spoofing check; proxy ARP answers the node's
	// ARP for the gateway and same-subnet peers, otherwise delayed up to
	// 0.8s per request by proxy_delay.
	err = writeSysctls(NetNSPath(f.VPCNetNS()), []sysctl{
		{"net/ipv4/conf/" + name + "/rp_filter", "1"},
		{"net/ipv4/conf/" + name + "/proxy_arp", "1"},
		{"net/ipv4/neigh/" + name + "/proxy_delay", "0"},
	})
	if err != nil {
		return nil, fmt.Errorf("configure %s: %w", name, err)
	}
	return link, nil
}

// configurePrimary does cloud-init's part for the primary ENI: the primary
// IP with the vSwitch's prefix length on eth0, and the default route via
// the vSwitch gateway.
//
// Equivalent to:
//
//	ip -n <node> addr replace IP/bits dev eth0; ip -n <node> link set eth0 up
//	ip -n <node> route replace default via GW dev eth0
func configurePrimary(n *node, l sim.ENILink) error {
	if len(l.IPs) == 0 {
		return errors.New("primary eni has no address")
	}
	eth0, err := n.nl.LinkByName("eth0")
	if err != nil {
		return err
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: l.IPs[0].AsSlice(), Mask: net.CIDRMask(l.VSwitchCIDR.Bits(), 32)}}
	if err := n.nl.AddrReplace(eth0, addr); err != nil {
		return fmt.Errorf("add %s: %w", addr.IPNet, err)
	}
	if err := n.nl.LinkSetUp(eth0); err != nil {
		return fmt.Errorf("set up: %w", err)
	}
	route := &netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: l.Gateway.AsSlice(), Dst: &net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)}}
	if err := n.nl.RouteReplace(route); err != nil {
		return fmt.Errorf("default route via %s: %w", l.Gateway, err)
	}
	return nil
}

// setAddresses makes the VPC deliver exactly ips to the ENI behind link:
// its /32 routes and its permanent neighbour entries. The cloud's SDN knows
// which ENI holds an address and sends to that ENI's MAC without asking;
// the neighbour entries do the same here, so the VPC never ARPs toward a
// node and nodes need no proxy ARP for their pods. Neighbours come first
// and go last, so a routed address always has its MAC. IPv6 addresses
// then get their source rules and proxy entries (setIPv6).
func (f *Fabric) setAddresses(eniID string, link netlink.Link, mac net.HardwareAddr, ips []netip.Addr) error {
	if err := f.addNeighbours(link, mac, ips); err != nil {
		return err
	}
	if err := f.setRoutes(link, ips); err != nil {
		return err
	}
	if err := f.pruneNeighbours(link, ips); err != nil {
		return err
	}
	return f.setIPv6(eniID, link, split6(ips))
}

// addNeighbours maps every ip to mac on link.
//
// Equivalent to: ip -n <sim>-vpc neigh replace IP lladdr MAC dev ve-XXXX nud permanent
func (f *Fabric) addNeighbours(link netlink.Link, mac net.HardwareAddr, ips []netip.Addr) error {
	for _, ip := range ips {
		n := &netlink.Neigh{
			LinkIndex:    link.Attrs().Index,
			Family:       family(ip),
			State:        netlink.NUD_PERMANENT,
			IP:           ip.Unmap().AsSlice(),
			HardwareAddr: mac,
		}
		if err := f.vpc.NeighSet(n); err != nil {
			return fmt.Errorf("neighbour %s lladdr %s dev %s: %w", ip, mac, link.Attrs().Name, err)
		}
	}
	return nil
}

// pruneNeighbours deletes the permanent entries on link for addresses not
// in ips (unassigned from the ENI).
func (f *Fabric) pruneNeighbours(link netlink.Link, ips []netip.Addr) error {
	have, err := listNeighs(f.vpc, link.Attrs().Index)
	if err != nil {
		return fmt.Errorf("list neighbours of %s: %w", link.Attrs().Name, err)
	}
	for _, n := range have {
		a, ok := netip.AddrFromSlice(n.IP)
		// A link-local entry is a /80's nexthop (setPrefixes6's).
		if !ok || n.State&netlink.NUD_PERMANENT == 0 || a.IsLinkLocalUnicast() || slices.ContainsFunc(ips, func(ip netip.Addr) bool { return ip.Unmap() == a.Unmap() }) {
			continue
		}
		if err := f.vpc.NeighDel(&n); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("delete neighbour %s dev %s: %w", a, link.Attrs().Name, err)
		}
	}
	return nil
}

// setRoutes makes the VPC's sim routes on link exactly ips as /32s (IPv6:
// /128s).
func (f *Fabric) setRoutes(link netlink.Link, ips []netip.Addr) error {
	want := map[netip.Addr]bool{}
	for _, ip := range ips {
		want[ip.Unmap()] = true
	}
	have, err := listRoutes(f.vpc, &netlink.Route{LinkIndex: link.Attrs().Index, Protocol: RouteProtocol}, netlink.RT_FILTER_OIF|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return fmt.Errorf("list routes of %s: %w", link.Attrs().Name, err)
	}
	for _, r := range have {
		if p, ok := routePrefix(r); ok && p.Bits() != p.Addr().BitLen() {
			continue // a /80's route: setPrefixes6's
		}
		a, ok := netip.AddrFromSlice(r.Dst.IP)
		if ok && want[a.Unmap()] {
			delete(want, a.Unmap())
			continue
		}
		if err := f.vpc.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("delete route %s: %w", r.Dst, err)
		}
	}
	for ip := range want {
		r := &netlink.Route{
			LinkIndex: link.Attrs().Index,
			Dst:       hostNet(ip),
			Scope:     netlink.SCOPE_LINK,
			Protocol:  RouteProtocol,
		}
		if err := f.vpc.RouteReplace(r); err != nil {
			return fmt.Errorf("route %s via %s: %w", ip, link.Attrs().Name, err)
		}
	}
	return nil
}

// deleteSimLinks deletes every link of sim name (by alias) that h sees.
func deleteSimLinks(h *netlink.Handle, name string) error {
	links, err := listLinks(h)
	if err != nil {
		return fmt.Errorf("list links: %w", err)
	}
	var errs []error
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Alias, name+"/") {
			if err := h.LinkDel(l); err != nil && !errors.As(err, &netlink.LinkNotFoundError{}) {
				errs = append(errs, fmt.Errorf("delete %s: %w", l.Attrs().Name, err))
			}
		}
	}
	return errors.Join(errs...)
}
