package netplumb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// SetupPod wires one pod interface to its ENI. In the pod namespace:
//
//	ip link add $IfName type veth peer $host (created from the node side)
//	ip addr add $IP/32 dev $IfName; ip link set $IfName up
//	ip neigh add 169.254.1.1 lladdr $hostMAC dev $IfName nud permanent
//
// then, for the primary interface (IfName eth0):
//
//	ip route add 169.254.1.1 dev $IfName scope link
//	ip route add default via 169.254.1.1 dev $IfName
//
// and for any other (a second network, as Multus adds), see podRoutes:
//
//	ip route add $VSwitchCIDR via 169.254.1.1 dev $IfName onlink
//	ip route add default via 169.254.1.1 dev $IfName onlink table $podTable
//	ip rule add from $IP/32 lookup $podTable prio 1000
//
// In the node namespace (cfg.ENI.NetNS):
//
//	sysctl net.ipv4.ip_forward=1 net.ipv4.conf.$host.rp_filter=1
//	ip link set $host alias "veni1 $ContainerID $IfName $ContainerNetNS" up
//	ip route replace $IP/32 dev $host scope link
//	ip rule add to $IP/32 lookup main prio 512
//	ip rule add from $IP/32 lookup $ENI.Table prio 2048
//
// Strict rp_filter on the host veth drops what the pod sends from any
// address but its own (a neighbour's, say): the /32 route back to the pod
// is the only route through that veth, so the reverse-path check is exact.
// The kernel applies max(conf/all, conf/$host): a node whose conf/all is 2
// (loose) weakens it, which is why the eBPF fast path also drops a
// neighbour's address itself. The alias records who owns the veth, for
// HostPods (rebuilding the store from the host).
//
// The pod side must be new: when the pod namespace already has IfName it
// returns an error wrapping ErrPodInterfaceExists (the CNI spec forbids
// adopting it). The node side is idempotent: a leftover host veth of the
// same name is replaced, routes are replaced and rules added only when
// missing. On failure everything this call created is removed again.
//
// The pod's MTU (cfg.MTU, or the ENI's when 0) may not exceed the ENI's:
// a larger one returns an error wrapping ErrMTU before anything is made.
//
// May also return errors wrapping ErrNetNSNotFound or ErrInvalidConfig.
func SetupPod(ctx context.Context, cfg PodConfig) (_ PodResult, err error) {
	if err := cfg.validateSetup(); err != nil {
		return PodResult{}, err
	}
	if mtu := cfg.mtu(); cfg.ENI.MTU > 0 && mtu > cfg.ENI.MTU {
		return PodResult{}, fmt.Errorf("setup pod %s/%s: %w", cfg.ContainerID, cfg.IfName, mtuError(mtu, cfg.ENI))
	}
	hostName := HostVethName(cfg.ContainerID, cfg.IfName)
	wrap := func(err error) error {
		return fmt.Errorf("setup pod %s/%s (%s): %w", cfg.ContainerID, cfg.IfName, cfg.addr(), err)
	}

	hs, err := openSetupHandles(cfg.ENI.NetNS, cfg.ContainerNetNS, cfg.IfName)
	if err != nil {
		return PodResult{}, wrap(err)
	}
	defer hs.Close()
	hostH, podNS, podH := hs.host, hs.podNS, hs.pod
	if err := removeStaleHostVeth(hostH, hostName); err != nil {
		return PodResult{}, wrap(err)
	}
	if err := ctx.Err(); err != nil {
		return PodResult{}, wrap(err)
	}

	// Create the pair from the node side with the peer born inside the pod
	// namespace: the pod end never appears in the node namespace, so a
	// crash cannot leave an "eth0" there.
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: hostName, MTU: cfg.mtu()},
		PeerName:      cfg.IfName,
		PeerNamespace: netlink.NsFd(int(podNS)),
	}
	if err := hostH.LinkAdd(veth); err != nil {
		return PodResult{}, wrap(fmt.Errorf("add veth %s/%s: %w", hostName, cfg.IfName, err))
	}
	// Deleting the host end deletes the pod end with its address, routes
	// and neighbour, and the host /32 route with it.
	defer func() {
		if err != nil {
			if derr := ignoreNotExist(hostH.LinkDel(veth)); derr != nil {
				slog.Warn("undo veth after failed setup", "veth", hostName, "err", derr)
			}
		}
	}()

	host, err := linkByName(hostH, hostName)
	if err != nil {
		return PodResult{}, wrap(err)
	}
	pod, err := linkByName(podH, cfg.IfName)
	if err != nil {
		return PodResult{}, wrap(err)
	}
	// The alias goes first: a veth that exists carries its owner, even
	// after a crash half way through this call.
	if err := hostH.LinkSetAlias(host, ownerAlias(cfg)); err != nil {
		return PodResult{}, wrap(fmt.Errorf("set alias of %s: %w", hostName, err))
	}
	if cfg.BeforeUp != nil {
		if err := cfg.BeforeUp(Interface{Name: hostName, Index: host.Attrs().Index, MAC: host.Attrs().HardwareAddr}); err != nil {
			return PodResult{}, wrap(err)
		}
	}
	if err := inNetNS(cfg.ENI.NetNS, func() error {
		kv := [][2]string{
			{"net/ipv4/ip_forward", "1"},
			{"net/ipv4/conf/" + hostName + "/rp_filter", "1"},
		}
		if cfg.IP6.IsValid() {
			kv = append(kv, hostSysctls6(hostName)...)
		}
		return setSysctls(kv...)
	}); err != nil {
		return PodResult{}, wrap(err)
	}
	// The host side (its /32 route and the pod's rules to its ENI) is
	// complete before the pod side routes: a pod sends the instant its
	// default route exists, and a packet that met a host without them was
	// lost (rp_filter on the host veth drops it), so a newborn's first
	// packet to an allowed peer did not arrive (e2e TestSim_PolicyMatrix
	// birth).
	if err := configureHostSide(hostH, host, cfg.IP); err != nil {
		return PodResult{}, wrap(err)
	}
	var want []*netlink.Rule
	if cfg.IP.IsValid() {
		want = podRules(cfg.IP, cfg.ENI.Table)
	}
	if cfg.IP6.IsValid() {
		if err := hostH.RouteReplace(hostRoute(host.Attrs().Index, cfg.IP6)); err != nil {
			return PodResult{}, wrap(fmt.Errorf("route %s/128 dev %s: %w", cfg.IP6, hostName, err))
		}
		want = append(want, podRules(cfg.IP6, cfg.ENI.Table)...)
	}
	// The two rules of a family differ in priority: replacing a stale
	// match of one cannot touch the other, so one dump serves both (one
	// per family).
	rules, err := ruleListOf(hostH, want)
	if err != nil {
		return PodResult{}, wrap(err)
	}
	for _, r := range want {
		added, rerr := ensureRule(hostH, rules, r)
		if rerr != nil {
			return PodResult{}, wrap(rerr)
		}
		if !added {
			continue // not ours to undo: it was there before this call
		}
		defer func() {
			if err != nil {
				if derr := deleteRules(hostH, []*netlink.Rule{r}); derr != nil {
					slog.Warn("undo rule after failed setup", "rule", ruleString(r), "err", derr)
				}
			}
		}()
	}
	if cfg.IP6.IsValid() {
		// Before configurePodSide sets the pod end up: no DAD, no RA.
		if err := inNetNS(cfg.ContainerNetNS, func() error { return setSysctls(podSysctls6(cfg.IfName)...) }); err != nil {
			return PodResult{}, wrap(err)
		}
	}
	var routes []netip.Prefix
	if cfg.IP.IsValid() {
		routes, err = configurePodSide(podH, pod, cfg, host.Attrs().HardwareAddr)
	} else if err = podH.LinkSetUp(pod); err != nil {
		// An IPv6-only pod: configurePodSide6 alone, on a link up.
		err = fmt.Errorf("set %s up: %w", cfg.IfName, err)
	}
	if err != nil {
		return PodResult{}, wrap(err)
	}
	if cfg.IP6.IsValid() {
		routes6, err := configurePodSide6(podH, pod, cfg, host.Attrs().HardwareAddr)
		if err != nil {
			return PodResult{}, wrap(err)
		}
		routes = append(routes, routes6...)
	}
	if !isPrimary(cfg.IfName) {
		// Deleting the veth takes the pod's routes along, not its rule.
		defer func() {
			if err != nil {
				if derr := deletePodSourceRule(podH, cfg.addr()); derr != nil {
					slog.Warn("undo pod rule after failed setup", "ip", cfg.addr(), "err", derr)
				}
			}
		}()
	}
	if err := ctx.Err(); err != nil {
		return PodResult{}, wrap(err)
	}

	slog.Debug("pod plumbed", "container", cfg.ContainerID, "ifname", cfg.IfName, "ip", cfg.addr(), "host", hostName, "eni", cfg.ENI.Name)
	return PodResult{
		Host:   Interface{Name: hostName, Index: host.Attrs().Index, MAC: host.Attrs().HardwareAddr},
		Pod:    Interface{Name: cfg.IfName, Index: pod.Attrs().Index, MAC: pod.Attrs().HardwareAddr},
		Routes: routes,
	}, nil
}

// mtuError says a pod's MTU does not fit its ENI, with both values and
// the two ways out.
func mtuError(podMTU int, eni ENILink) error {
	return fmt.Errorf("pod mtu %d is above the mtu %d of eni %s: %w (set the network's mtu to at most %d, or raise the ENI's mtu in the node configuration)",
		podMTU, eni.MTU, eni.Name, ErrMTU, eni.MTU)
}

// removeStaleHostVeth deletes a host veth left by an earlier attempt for the
// same container and ifname. Its pod end is not IfName in the pod
// namespace (SetupPod checked), so it belongs to nothing alive.
func removeStaleHostVeth(h *netlink.Handle, name string) error {
	old, err := linkByName(h, name)
	if errors.Is(err, ErrLinkNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	slog.Info("replacing leftover host veth", "veth", name)
	if err := ignoreNotExist(h.LinkDel(old)); err != nil {
		return fmt.Errorf("delete leftover veth %s: %w", name, err)
	}
	return nil
}

func configureHostSide(h *netlink.Handle, host netlink.Link, ip netip.Addr) error {
	name := host.Attrs().Name
	if err := h.LinkSetUp(host); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	if !ip.IsValid() {
		return nil // an IPv6-only pod: its /128 is SetupPod's
	}
	if err := h.RouteReplace(hostRoute(host.Attrs().Index, ip)); err != nil {
		return fmt.Errorf("route %s/32 dev %s: %w", ip, name, err)
	}
	return nil
}

func hostRoute(index int, ip netip.Addr) *netlink.Route {
	return &netlink.Route{
		LinkIndex: index,
		Dst:       prefixToIPNet(netip.PrefixFrom(ip, ip.BitLen())),
		Scope:     netlink.SCOPE_LINK,
		Table:     unix.RT_TABLE_MAIN,
		Protocol:  unix.RTPROT_STATIC,
	}
}

// TeardownPod removes what SetupPod installed for cfg: the veth pair (via
// its host end, which takes the pod end along, with the pod-side routes),
// the /32 route and both rules of the pod address, and for a non-primary
// interface its source rule in the pod (when the pod namespace is still
// there). It succeeds when any of it is already gone,
// including the pod namespace itself or an empty cfg.ContainerNetNS:
// runtimes repeat DEL, and containerd sends a last one after the sandbox
// is destroyed (CNI spec, "DEL ... should not return an error if resources
// are missing"; kubernetes/kubernetes#43014).
//
// When cfg.IP is the zero Addr the address is read from the host veth's
// routes. The rules are left alone when another link now routes the same
// address: the IP was already given to a new pod and a late DEL of the old
// one must not cut it off.
func TeardownPod(ctx context.Context, cfg PodConfig) error {
	if err := cfg.validateIdentity(); err != nil {
		return err
	}
	hostName := HostVethName(cfg.ContainerID, cfg.IfName)
	wrap := func(err error) error {
		return fmt.Errorf("teardown pod %s/%s: %w", cfg.ContainerID, cfg.IfName, err)
	}
	hostH, err := openHandle(cfg.ENI.NetNS)
	if errors.Is(err, ErrNetNSNotFound) {
		return nil // the node namespace is gone, and everything in it
	}
	if err != nil {
		return wrap(err)
	}
	defer hostH.Close()

	ips := []netip.Addr{}
	if cfg.IP.IsValid() {
		ips = append(ips, cfg.IP)
	}
	if cfg.IP6.IsValid() {
		ips = append(ips, cfg.IP6)
	}
	host, err := linkByName(hostH, hostName)
	switch {
	case errors.Is(err, ErrLinkNotFound):
		if err := deletePodSide(cfg); err != nil {
			return wrap(err)
		}
	case err != nil:
		return wrap(err)
	default:
		if !cfg.IP.IsValid() && !cfg.IP6.IsValid() {
			// What the host routes to the veth is what SetupPod put
			// there: both families. (With IP given, the caller's
			// allocation names IP6 too; no dump on every DEL.)
			found, err := hostRouteIPs(hostH, host.Attrs().Index)
			if err != nil {
				return wrap(err)
			}
			for _, ip := range found {
				if !slices.Contains(ips, ip) {
					ips = append(ips, ip)
				}
			}
		}
		if err := ignoreNotExist(hostH.LinkDel(host)); err != nil {
			return wrap(fmt.Errorf("delete veth %s: %w", hostName, err))
		}
	}
	if err := ctx.Err(); err != nil {
		return wrap(err)
	}

	if !isPrimary(cfg.IfName) {
		if err := deletePodSourceRules(cfg, ips); err != nil {
			return wrap(err)
		}
	}
	for _, ip := range ips {
		routes, err := routeListFamily(hostH, familyOf(ip), &netlink.Route{Dst: prefixToIPNet(netip.PrefixFrom(ip, ip.BitLen()))}, netlink.RT_FILTER_DST)
		if err != nil {
			return wrap(err)
		}
		if len(routes) > 0 {
			// Deleting the veth removed our /32; one left belongs to a
			// newer owner of this address, and so do the rules.
			slog.Info("pod address routed by another link, keeping its rules", "ip", ip, "container", cfg.ContainerID)
			continue
		}
		if err := deleteRules(hostH, podRules(ip, 0)); err != nil {
			return wrap(err)
		}
	}
	return nil
}

// deletePodSourceRules removes a non-primary interface's rules inside the
// pod (the veth took its routes along). A pod namespace that is gone took
// them along too.
func deletePodSourceRules(cfg PodConfig, ips []netip.Addr) error {
	if cfg.ContainerNetNS == "" || len(ips) == 0 {
		return nil
	}
	podH, err := openHandle(cfg.ContainerNetNS)
	if errors.Is(err, ErrNetNSNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	defer podH.Close()
	for _, ip := range ips {
		if err := deletePodSourceRule(podH, ip); err != nil {
			return fmt.Errorf("pod rule of %s: %w", ip, err)
		}
	}
	return nil
}

// deletePodSide removes the pod end when the host end is already gone,
// which only happens when a veth was half torn down by something else.
func deletePodSide(cfg PodConfig) error {
	if cfg.ContainerNetNS == "" {
		return nil
	}
	podH, err := openHandle(cfg.ContainerNetNS)
	if errors.Is(err, ErrNetNSNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	defer podH.Close()
	pod, err := linkByName(podH, cfg.IfName)
	if errors.Is(err, ErrLinkNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if pod.Type() != "veth" {
		return nil // not ours: SetupPod only creates veths
	}
	if err := ignoreNotExist(podH.LinkDel(pod)); err != nil {
		return fmt.Errorf("delete %s in %s: %w", cfg.IfName, cfg.ContainerNetNS, err)
	}
	return nil
}

// hostRouteIPs returns the /32 (and IPv6 /128) destinations routed
// through the link, IPv4 first.
func hostRouteIPs(h *netlink.Handle, index int) ([]netip.Addr, error) {
	var ips []netip.Addr
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		routes, err := routeListFamily(h, family, &netlink.Route{LinkIndex: index}, netlink.RT_FILTER_OIF)
		if err != nil {
			return nil, err
		}
		for _, r := range routes {
			if r.Dst == nil {
				continue
			}
			ip, ok := netip.AddrFromSlice(r.Dst.IP)
			if !ok {
				continue
			}
			ip = ip.Unmap()
			if ones, bits := r.Dst.Mask.Size(); ones != ip.BitLen() || bits != ip.BitLen() {
				continue
			}
			ips = append(ips, ip)
		}
	}
	return ips, nil
}
