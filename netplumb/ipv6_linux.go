package netplumb

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// IPv6 (dual stack) mirrors IPv4 on the same links. A pod with IP6 gets,
// next to its IPv4 (see SetupPod):
//
//	sysctl net.ipv6.conf.$IfName.disable_ipv6=0 .accept_ra=0 .accept_dad=0   (in the pod)
//	ip -6 addr add $IP6/128 dev $IfName nodad
//	ip -6 neigh add fe80::1 lladdr $hostMAC dev $IfName nud permanent
//	ip -6 route add default via fe80::1 dev $IfName                         (eth0)
//
// and on the node:
//
//	sysctl net.ipv6.conf.all.forwarding=1
//	sysctl net.ipv6.conf.$host.disable_ipv6=0 .accept_ra=0 .accept_dad=0
//	ip -6 route replace $IP6/128 dev $host
//	ip -6 rule add to $IP6/128 lookup main prio 512
//	ip -6 rule add from $IP6/128 lookup $ENI.Table prio 2048
//
// An IPv6-only pod (ip_stack ipv6: PodConfig.IP zero, IP6 set) gets only
// the IPv6 part: no IPv4 address, route, neighbour or rule, on either side
// (its ENI keeps its IPv4 table: every ENI has a primary IPv4).
//
// fe80::1 is never configured: like 169.254.1.1 it only names the host
// veth's MAC through the permanent neighbour entry. The pod's address is
// usable at once (nodad), and the pod ignores router advertisements: its
// routes are these, whatever a neighbour announces. DAD is off on the veth
// ends and the ENI too: while a link-local address is tentative the kernel
// sends no neighbour solicitation from it, and a pod's first packets would
// wait a second.
//
// IPv6 has no rp_filter: the host does not drop a pod's spoofed IPv6
// source itself; the VPC does (it forwards only sources assigned to the
// ENI), and the eBPF fast path drops a source that is another local pod's
// (see ebpf/fastpath).

// hostSysctls6 are the node-side sysctls of a dual-stack pod's host veth.
// Setting conf.all.forwarding also makes the kernel ignore router
// advertisements on links with accept_ra=1 (a router does not take them),
// which a node whose own IPv6 comes from RAs must set accept_ra=2 for.
func hostSysctls6(host string) [][2]string {
	return [][2]string{
		{"net/ipv6/conf/all/forwarding", "1"},
		{"net/ipv6/conf/" + host + "/disable_ipv6", "0"},
		{"net/ipv6/conf/" + host + "/accept_ra", "0"},
		{"net/ipv6/conf/" + host + "/accept_dad", "0"},
	}
}

// podSysctls6 are the pod-side sysctls of a dual-stack pod interface.
func podSysctls6(ifName string) [][2]string {
	return [][2]string{
		{"net/ipv6/conf/" + ifName + "/disable_ipv6", "0"},
		{"net/ipv6/conf/" + ifName + "/accept_ra", "0"},
		{"net/ipv6/conf/" + ifName + "/accept_dad", "0"},
	}
}

// configurePodSide6 gives the pod interface its IPv6, the fe80::1
// neighbour and routes, and returns the destinations routed through
// fe80::1: ::/0 on the primary interface, the ENI's IPv6 /64 on another
// (with a source rule to its own table, as for IPv4).
func configurePodSide6(h *netlink.Handle, pod netlink.Link, cfg PodConfig, hostMAC net.HardwareAddr) ([]netip.Prefix, error) {
	name, index := pod.Attrs().Name, pod.Attrs().Index
	addr := &netlink.Addr{IPNet: prefixToIPNet(netip.PrefixFrom(cfg.IP6, 128)), Flags: unix.IFA_F_NODAD}
	if err := h.AddrAdd(pod, addr); err != nil {
		return nil, fmt.Errorf("add address %s to %s: %w (is IPv6 disabled in the pod? net.ipv6.conf.all.disable_ipv6)", addr.IPNet, name, err)
	}
	if err := setGatewayNeigh(h, pod, PodGateway6, hostMAC); err != nil {
		return nil, err
	}
	// onlink: the link-local gateway needs no fe80::/64 route, which the
	// kernel adds only once the link has carrier.
	if isPrimary(cfg.IfName) {
		def := &netlink.Route{LinkIndex: index, Dst: prefixToIPNet(netip.PrefixFrom(netip.IPv6Unspecified(), 0)), Gw: PodGateway6.AsSlice(), Flags: int(netlink.FLAG_ONLINK)}
		if err := h.RouteAdd(def); err != nil {
			return nil, fmt.Errorf("add default via %s dev %s: %w (does the pod already have an IPv6 default route? only %s gets one)", PodGateway6, name, err, PrimaryIfName)
		}
		return []netip.Prefix{netip.PrefixFrom(netip.IPv6Unspecified(), 0)}, nil
	}
	cidr := cfg.ENI.IPv6CIDR.Masked()
	routes := []*netlink.Route{
		{LinkIndex: index, Dst: prefixToIPNet(cidr), Gw: PodGateway6.AsSlice(), Flags: int(netlink.FLAG_ONLINK)},
		{LinkIndex: index, Dst: prefixToIPNet(netip.PrefixFrom(netip.IPv6Unspecified(), 0)), Gw: PodGateway6.AsSlice(), Flags: int(netlink.FLAG_ONLINK), Table: podTable(index)},
	}
	for _, r := range routes {
		if err := h.RouteAdd(r); err != nil {
			return nil, fmt.Errorf("add route %s: %w (a route to %s exists in the pod already: does another interface serve that subnet?)", routeString(*r), err, ipNetString(r.Dst))
		}
	}
	if err := h.RuleAdd(podSourceRule(cfg.IP6, podTable(index))); err != nil && !errors.Is(err, syscall.EEXIST) {
		return nil, fmt.Errorf("add rule from %s lookup %d in the pod: %w", cfg.IP6, podTable(index), err)
	}
	return []netip.Prefix{cidr}, nil
}

// ensureENI6 is EnsureENI's IPv6 part, after eniSysctls6 and the link up:
//
//	ip -6 route replace $IPv6CIDR via $Gateway6 dev $eni onlink table $Table
//	ip -6 route replace default via $Gateway6 dev $eni onlink table $Table
//
// Unlike IPv4, the vSwitch's /64 goes through its gateway, not on-link: a
// peer's address may be one of the 2^48 of a delegated /80 (prefix mode),
// which the VPC routes but no one answers neighbour solicitations for, as
// Linux proxy NDP (and the cloud's, as far as anyone documents) is per
// address. The gateway routes every address the VPC knows, singles and
// /80s alike, so one route serves both modes.
//
// The ENI gets no global IPv6 of its own: its link-local address is what
// its neighbour solicitations (for the gateway) come from, and the VPC
// answers for the gateway. That address must not be tentative: the kernel
// sends no solicitation while it is, and the first pod packets through a
// fresh ENI would wait a second or two.
func ensureENI6(h *netlink.Handle, eni ENILink) error {
	for _, dst := range []netip.Prefix{eni.IPv6CIDR.Masked(), netip.PrefixFrom(netip.IPv6Unspecified(), 0)} {
		r := &netlink.Route{
			LinkIndex: eni.Index,
			Dst:       prefixToIPNet(dst),
			Gw:        eni.Gateway6.AsSlice(),
			Flags:     int(netlink.FLAG_ONLINK),
			Table:     eni.Table,
			Protocol:  unix.RTPROT_STATIC,
		}
		if err := h.RouteReplace(r); err != nil {
			return fmt.Errorf("ipv6 table %d: route %s via %s: %w", eni.Table, dst, eni.Gateway6, err)
		}
	}
	return nil
}

// eniSysctls6 are the ENI's IPv6 sysctls (dual stack):
//
//	sysctl net.ipv6.conf.$eni.disable_ipv6=0 .accept_ra=0 .accept_dad=0
func eniSysctls6(name string) [][2]string {
	return [][2]string{
		{"net/ipv6/conf/" + name + "/disable_ipv6", "0"},
		{"net/ipv6/conf/" + name + "/accept_ra", "0"},
		{"net/ipv6/conf/" + name + "/accept_dad", "0"},
	}
}
