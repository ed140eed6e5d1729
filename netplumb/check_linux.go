package netplumb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// CheckPod verifies that what SetupPod installs for cfg is still in place,
// for CNI CHECK. It returns nil, or the first missing piece as an error
// wrapping one of ErrPodInterfaceMissing, ErrPodAddressMissing,
// ErrPodRouteMissing, ErrPodNeighborMissing, ErrHostVethMissing,
// ErrHostRouteMissing, ErrRuleMissing, ErrENIRouteMissing or ErrMTU (or
// ErrNetNSNotFound). It changes nothing.
//
// Beyond the pod's own links, routes and rules it checks the ENI side the
// pod depends on: cfg.ENI's table must route the vSwitch CIDR on the ENI
// and default via the vSwitch gateway, and the pod's "from" rule must point
// at that table. cfg.ENI must come from EnsureENI or LookupENI. A
// dual-stack pod's IPv6 (cfg.IP6) must be on the pod's interface with its
// route via fe80::1 and that gateway's permanent neighbour entry, and have
// its host /128 and both rules.
func CheckPod(ctx context.Context, cfg PodConfig) error {
	if err := cfg.validateSetup(); err != nil {
		return err
	}
	hostName := HostVethName(cfg.ContainerID, cfg.IfName)
	wrap := func(err error) error {
		return fmt.Errorf("check pod %s/%s (%s): %w", cfg.ContainerID, cfg.IfName, cfg.addr(), err)
	}
	hostH, err := openHandle(cfg.ENI.NetNS)
	if err != nil {
		return wrap(err)
	}
	defer hostH.Close()
	podH, err := openHandle(cfg.ContainerNetNS)
	if err != nil {
		return wrap(err)
	}
	defer podH.Close()

	host, err := linkByName(hostH, hostName)
	if errors.Is(err, ErrLinkNotFound) {
		return wrap(fmt.Errorf("%s: %w", hostName, ErrHostVethMissing))
	}
	if err != nil {
		return wrap(err)
	}
	if cfg.IP.IsValid() {
		if err := checkPodSide(podH, cfg, host.Attrs().HardwareAddr); err != nil {
			return wrap(err)
		}
	}
	if cfg.IP6.IsValid() {
		if err := checkPodSide6(podH, cfg, host.Attrs().HardwareAddr); err != nil {
			return wrap(err)
		}
	}
	if err := ctx.Err(); err != nil {
		return wrap(err)
	}
	if cfg.IP.IsValid() {
		if err := checkHostSide(hostH, host, cfg.IP, cfg.ENI.Table); err != nil {
			return wrap(err)
		}
	}
	if cfg.IP6.IsValid() {
		if err := checkHostSide6(hostH, host, cfg.IP6, cfg.ENI.Table); err != nil {
			return wrap(err)
		}
	}
	if err := checkENITable(hostH, cfg.ENI); err != nil {
		return wrap(err)
	}
	if mtu := cfg.mtu(); cfg.ENI.MTU > 0 && mtu > cfg.ENI.MTU {
		return wrap(mtuError(mtu, cfg.ENI))
	}
	return nil
}

// checkENITable verifies what EnsureENI puts in the ENI's table:
//
//	ip route show table $T  →  $VSwitchCIDR dev $eni scope link
//	                           default via $Gateway dev $eni
func checkENITable(h *netlink.Handle, eni ENILink) error {
	routes, err := routeList(h, &netlink.Route{Table: eni.Table}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return err
	}
	var haveSubnet, haveDefault bool
	for _, r := range routes {
		if r.LinkIndex != eni.Index {
			continue
		}
		switch {
		case r.Dst != nil && r.Dst.String() == prefixToIPNet(eni.VSwitchCIDR).String() && r.Scope == netlink.SCOPE_LINK:
			haveSubnet = true
		case isDefault(r) && r.Gw != nil && r.Gw.Equal(eni.Gateway.AsSlice()):
			haveDefault = true
		}
	}
	hint := "(the ENI's routes are gone, e.g. it was re-attached: the next ADD or the daemon's pass re-runs EnsureENI)"
	if !haveSubnet {
		return fmt.Errorf("table %d has no %s dev %s scope link: %w %s", eni.Table, eni.VSwitchCIDR, eni.Name, ErrENIRouteMissing, hint)
	}
	if !haveDefault {
		return fmt.Errorf("table %d has no default via %s dev %s: %w %s", eni.Table, eni.Gateway, eni.Name, ErrENIRouteMissing, hint)
	}
	return nil
}

func checkPodSide(h *netlink.Handle, cfg PodConfig, hostMAC []byte) error {
	ifName, ip := cfg.IfName, cfg.IP
	pod, err := linkByName(h, ifName)
	if errors.Is(err, ErrLinkNotFound) {
		return fmt.Errorf("%s: %w", ifName, ErrPodInterfaceMissing)
	}
	if err != nil {
		return err
	}
	if pod.Attrs().Flags&net.FlagUp == 0 {
		return fmt.Errorf("%s is down: %w", ifName, ErrPodInterfaceMissing)
	}
	addrs, err := addrList(h, pod)
	if err != nil {
		return err
	}
	want := prefixToIPNet(netip.PrefixFrom(ip, 32)).String()
	if !containsAddr(addrs, want) {
		return fmt.Errorf("%s on %s: %w", want, ifName, ErrPodAddressMissing)
	}
	if isPrimary(ifName) {
		err = checkPrimaryRoutes(h, pod)
	} else {
		err = checkSecondaryRoutes(h, pod, cfg)
	}
	if err != nil {
		return err
	}

	return checkGatewayNeigh(h, pod, PodGateway, hostMAC)
}

// checkGatewayNeigh wants setGatewayNeigh's permanent entry of gw at the
// host veth's MAC on the pod's link.
func checkGatewayNeigh(h *netlink.Handle, pod netlink.Link, gw netip.Addr, hostMAC []byte) error {
	neighs, err := neighList(h, pod.Attrs().Index, familyOf(gw))
	if err != nil {
		return err
	}
	for _, n := range neighs {
		if n.IP.Equal(gw.AsSlice()) && n.State&netlink.NUD_PERMANENT != 0 && bytes.Equal(n.HardwareAddr, hostMAC) {
			return nil
		}
	}
	return fmt.Errorf("%s lladdr %s permanent on %s: %w", gw, net.HardwareAddr(hostMAC), pod.Attrs().Name, ErrPodNeighborMissing)
}

// checkPrimaryRoutes wants eth0's "169.254.1.1 dev eth0 scope link" and
// "default via 169.254.1.1 dev eth0".
func checkPrimaryRoutes(h *netlink.Handle, pod netlink.Link) error {
	ifName := pod.Attrs().Name
	routes, err := routeList(h, &netlink.Route{LinkIndex: pod.Attrs().Index}, netlink.RT_FILTER_OIF)
	if err != nil {
		return err
	}
	gw := prefixToIPNet(netip.PrefixFrom(PodGateway, 32)).String()
	var haveGwRoute, haveDefault bool
	for _, r := range routes {
		switch {
		case r.Dst != nil && r.Dst.String() == gw && r.Scope == netlink.SCOPE_LINK:
			haveGwRoute = true
		case isDefault(r) && r.Gw != nil && r.Gw.Equal(PodGateway.AsSlice()):
			haveDefault = true
		}
	}
	if !haveGwRoute {
		return fmt.Errorf("%s dev %s scope link: %w", gw, ifName, ErrPodRouteMissing)
	}
	if !haveDefault {
		return fmt.Errorf("default via %s dev %s: %w", PodGateway, ifName, ErrPodRouteMissing)
	}
	return nil
}

// checkSecondaryRoutes wants a non-primary interface's podRoutes and its
// source rule.
func checkSecondaryRoutes(h *netlink.Handle, pod netlink.Link, cfg PodConfig) error {
	index := pod.Attrs().Index
	for _, want := range podRoutes(index, cfg.ENI.VSwitchCIDR) {
		mask := netlink.RT_FILTER_OIF // the main table
		if want.Table != 0 {
			mask |= netlink.RT_FILTER_TABLE
		}
		routes, err := routeList(h, &netlink.Route{LinkIndex: index, Table: want.Table}, mask)
		if err != nil {
			return err
		}
		found := false
		for _, r := range routes {
			if ipNetString(r.Dst) == ipNetString(want.Dst) || (isDefault(r) && want.Dst.IP.IsUnspecified()) {
				found = r.Gw != nil && r.Gw.Equal(PodGateway.AsSlice())
				break
			}
		}
		if !found {
			return fmt.Errorf("%s in the pod: %w", routeString(*want), ErrPodRouteMissing)
		}
	}
	rule := podSourceRule(cfg.IP, podTable(index))
	ok, err := findRule(h, rule)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%s in the pod: %w", ruleString(rule), ErrPodRouteMissing)
	}
	return nil
}

func checkHostSide(h *netlink.Handle, host netlink.Link, ip netip.Addr, table int) error {
	if host.Attrs().Flags&net.FlagUp == 0 {
		return fmt.Errorf("%s is down: %w", host.Attrs().Name, ErrHostVethMissing)
	}
	routes, err := routeList(h, &netlink.Route{LinkIndex: host.Attrs().Index}, netlink.RT_FILTER_OIF)
	if err != nil {
		return err
	}
	want := prefixToIPNet(netip.PrefixFrom(ip, 32)).String()
	found := false
	for _, r := range routes {
		if r.Dst != nil && r.Dst.String() == want && r.Scope == netlink.SCOPE_LINK {
			found = true
			break
		}
	}
	if !found {
		return fmt.Errorf("%s dev %s: %w", want, host.Attrs().Name, ErrHostRouteMissing)
	}
	return checkPodRules(h, ip, table)
}

func containsAddr(addrs []netlink.Addr, want string) bool {
	for _, a := range addrs {
		if a.IPNet != nil && a.IPNet.String() == want {
			return true
		}
	}
	return false
}

// isDefault reports whether r is a default route; the netlink library
// reports one as a nil Dst or as 0.0.0.0/0 depending on its version.
func isDefault(r netlink.Route) bool {
	if r.Dst == nil {
		return true
	}
	ones, _ := r.Dst.Mask.Size()
	return ones == 0
}

// checkPodRules checks both of the pod address's rules to its ENI's table.
func checkPodRules(h *netlink.Handle, ip netip.Addr, table int) error {
	for _, r := range podRules(ip, table) {
		ok, err := findRule(h, r)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%s: %w (DEL and ADD the pod again to restore it)", ruleString(r), ErrRuleMissing)
		}
	}
	return nil
}

// checkPodSide6 is checkPodSide for a dual-stack pod's IPv6, as
// configurePodSide6 made it: the /128 on the interface, the permanent
// neighbour entry of fe80::1 at the host veth's MAC, and the route through
// it (eth0: the default; another interface: its ENI's /64).
func checkPodSide6(h *netlink.Handle, cfg PodConfig, hostMAC []byte) error {
	ifName := cfg.IfName
	pod, err := linkByName(h, ifName)
	if errors.Is(err, ErrLinkNotFound) {
		return fmt.Errorf("%s: %w", ifName, ErrPodInterfaceMissing)
	}
	if err != nil {
		return err
	}
	if pod.Attrs().Flags&net.FlagUp == 0 {
		return fmt.Errorf("%s is down: %w", ifName, ErrPodInterfaceMissing)
	}
	index := pod.Attrs().Index
	addrs, err := addrListFamily(h, pod, netlink.FAMILY_V6)
	if err != nil {
		return err
	}
	want := prefixToIPNet(netip.PrefixFrom(cfg.IP6, 128)).String()
	if !containsAddr(addrs, want) {
		return fmt.Errorf("%s on %s: %w", want, ifName, ErrPodAddressMissing)
	}
	routes, err := routeListFamily(h, netlink.FAMILY_V6, &netlink.Route{LinkIndex: index}, netlink.RT_FILTER_OIF)
	if err != nil {
		return err
	}
	dst := netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	if !isPrimary(ifName) {
		dst = cfg.ENI.IPv6CIDR.Masked()
	}
	found := false
	for _, r := range routes {
		d := "::/0"
		if r.Dst != nil {
			d = r.Dst.String()
		}
		found = found || d == dst.String() && r.Gw.Equal(PodGateway6.AsSlice())
	}
	if !found {
		return fmt.Errorf("%s via %s dev %s: %w", dst, PodGateway6, ifName, ErrPodRouteMissing)
	}
	return checkGatewayNeigh(h, pod, PodGateway6, hostMAC)
}

// checkHostSide6 is checkHostSide for a dual-stack pod's IPv6: the /128
// through the host veth and both ip -6 rules.
func checkHostSide6(h *netlink.Handle, host netlink.Link, ip netip.Addr, table int) error {
	routes, err := routeListFamily(h, netlink.FAMILY_V6, &netlink.Route{LinkIndex: host.Attrs().Index}, netlink.RT_FILTER_OIF)
	if err != nil {
		return err
	}
	want := prefixToIPNet(netip.PrefixFrom(ip, 128)).String()
	found := false
	for _, r := range routes {
		found = found || (r.Dst != nil && r.Dst.String() == want)
	}
	if !found {
		return fmt.Errorf("%s dev %s: %w", want, host.Attrs().Name, ErrHostRouteMissing)
	}
	return checkPodRules(h, ip, table)
}
