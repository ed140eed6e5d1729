package netplumb

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"github.com/vishvananda/netlink"
)

// PrimaryIfName is the pod interface that gets the pod's default route.
//
// A pod may have more than one veni interface (Multus adds a second network
// as net1, or a runtime lists two networks). Only one of them may own the
// default route, and the choice must not depend on the order of the ADDs:
// containerd runs a sandbox's networks concurrently, so "the first ADD
// takes the default" would race. Kubernetes names the pod network's
// interface eth0, so eth0 gets the default route (and ADD fails, as before,
// when something else already put one there); any other interface routes
// its ENI's vSwitch CIDR, and source routing inside the pod sends what
// leaves from its address back out of it (see podRoutes).
const PrimaryIfName = "eth0"

// PrioPodSource is the priority of the rule a non-primary interface gets
// inside the pod: "from $IP lookup $podTable". podTableBase plus the pod
// interface's ifindex numbers its table: unique in the pod namespace, and
// the interface never changes ifindex while it lives.
const (
	PrioPodSource = 1000
	podTableBase  = 1000
)

func isPrimary(ifName string) bool { return ifName == PrimaryIfName }

// podTable is the pod-side table of a non-primary interface.
func podTable(podIndex int) int { return podTableBase + podIndex }

// configurePodSide gives the pod interface its address, gateway neighbour
// and routes, and returns the destinations routed through the gateway.
//
// A non-primary interface needs source routing: without it, replies from
// its address would follow the pod's default route out of eth0, arrive on
// eth0's host veth, and fail that veth's strict rp_filter (the address
// belongs to the other veth). So it gets a table of its own with a default
// route, and a rule sending its address's traffic there.
func configurePodSide(h *netlink.Handle, pod netlink.Link, cfg PodConfig, hostMAC net.HardwareAddr) ([]netip.Prefix, error) {
	name := pod.Attrs().Name
	index := pod.Attrs().Index
	addr := &netlink.Addr{IPNet: prefixToIPNet(netip.PrefixFrom(cfg.IP, 32))}
	if err := h.AddrAdd(pod, addr); err != nil {
		return nil, fmt.Errorf("add address %s to %s: %w", addr.IPNet, name, err)
	}
	if err := h.LinkSetUp(pod); err != nil {
		return nil, fmt.Errorf("set %s up: %w", name, err)
	}
	if err := setGatewayNeigh(h, pod, PodGateway, hostMAC); err != nil {
		return nil, err
	}
	if isPrimary(cfg.IfName) {
		gw := prefixToIPNet(netip.PrefixFrom(PodGateway, 32))
		if err := h.RouteAdd(&netlink.Route{LinkIndex: index, Dst: gw, Scope: netlink.SCOPE_LINK}); err != nil {
			return nil, fmt.Errorf("add route %s dev %s: %w", gw, name, err)
		}
		def := &netlink.Route{LinkIndex: index, Gw: PodGateway.AsSlice()}
		if err := h.RouteAdd(def); err != nil {
			return nil, fmt.Errorf("add default via %s dev %s: %w (does the pod already have a default route? only %s gets one)", PodGateway, name, err, PrimaryIfName)
		}
		return []netip.Prefix{netip.PrefixFrom(netip.IPv4Unspecified(), 0)}, nil
	}
	routes := podRoutes(index, cfg.ENI.VSwitchCIDR)
	for _, r := range routes {
		if err := h.RouteAdd(r); err != nil {
			return nil, fmt.Errorf("add route %s: %w (a route to %s exists in the pod already: does another interface serve that subnet?)", routeString(*r), err, ipNetString(r.Dst))
		}
	}
	if err := h.RuleAdd(podSourceRule(cfg.IP, podTable(index))); err != nil && !errors.Is(err, syscall.EEXIST) {
		return nil, fmt.Errorf("add rule from %s lookup %d in the pod: %w", cfg.IP, podTable(index), err)
	}
	return []netip.Prefix{cfg.ENI.VSwitchCIDR.Masked()}, nil
}

// podRoutes are a non-primary interface's routes in the pod:
//
//	ip route add $VSwitchCIDR via 169.254.1.1 dev $IfName onlink
//	ip route add default via 169.254.1.1 dev $IfName onlink table $podTable
//
// "onlink" spares the scope-link route to 169.254.1.1, which eth0 holds in
// the same table.
func podRoutes(index int, cidr netip.Prefix) []*netlink.Route {
	return []*netlink.Route{
		{LinkIndex: index, Dst: prefixToIPNet(cidr.Masked()), Gw: PodGateway.AsSlice(), Flags: int(netlink.FLAG_ONLINK)},
		{LinkIndex: index, Dst: prefixToIPNet(netip.PrefixFrom(netip.IPv4Unspecified(), 0)), Gw: PodGateway.AsSlice(), Flags: int(netlink.FLAG_ONLINK), Table: podTable(index)},
	}
}

// podSourceRule is "from $ip/32 lookup $table prio 1000", inside the pod.
func podSourceRule(ip netip.Addr, table int) *netlink.Rule {
	r := netlink.NewRule()
	r.Priority = PrioPodSource
	r.Src = prefixToIPNet(netip.PrefixFrom(ip, ip.BitLen()))
	r.Table = table
	return r
}

// deletePodSourceRule removes the pod-side rule of ip, whatever table it
// names (the interface, and so its table, may be gone already).
func deletePodSourceRule(h *netlink.Handle, ip netip.Addr) error {
	return deleteRules(h, []*netlink.Rule{podSourceRule(ip, 0)})
}

func ipNetString(n *net.IPNet) string {
	if n == nil {
		return "default"
	}
	return n.String()
}

// setGatewayNeigh gives the pod's link-local gateway (169.254.1.1 or
// fe80::1) a permanent neighbour entry at the host veth's MAC, so the pod
// never resolves it.
func setGatewayNeigh(h *netlink.Handle, pod netlink.Link, gw netip.Addr, hostMAC net.HardwareAddr) error {
	family := netlink.FAMILY_V4
	if gw.Is6() {
		family = netlink.FAMILY_V6
	}
	neigh := &netlink.Neigh{LinkIndex: pod.Attrs().Index, Family: family, State: netlink.NUD_PERMANENT, IP: gw.AsSlice(), HardwareAddr: hostMAC}
	if err := h.NeighSet(neigh); err != nil {
		return fmt.Errorf("add neighbour %s dev %s: %w", gw, pod.Attrs().Name, err)
	}
	return nil
}
