package netplumb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ExclusiveVethName is the pod end of an exclusive pod's veth pair, Terway's
// name: the pod's route to the node and its Services.
const ExclusiveVethName = "veth1"

// ExclusiveConfig describes a pod's own ENI (exclusive ENI mode).
type ExclusiveConfig struct {
	// ContainerID and IfName identify the attachment; the ENI is named
	// IfName in the pod, the host veth HostVethName(ContainerID, IfName).
	ContainerID string
	IfName      string
	// ContainerNetNS is the pod's netns path (CNI_NETNS); TeardownExclusive
	// accepts "" or a path that no longer exists.
	ContainerNetNS string
	// Pin is where the pod's namespace is held by a bind mount of veni's
	// own for as long as the ENI may be in it, so the namespace cannot be
	// destroyed with the ENI inside (see SetupExclusive). Required.
	Pin string
	// NetNS is the node namespace path; "" is the caller's.
	NetNS string
	// MAC of the ENI: its link is found by it, in whichever namespace.
	MAC net.HardwareAddr
	// IP is the ENI's primary address, VSwitchCIDR and Gateway its
	// vSwitch's.
	IP          netip.Addr
	VSwitchCIDR netip.Prefix
	Gateway     netip.Addr
	// MTU of the pod's interfaces; 0 keeps the ENI's.
	MTU int
	// HostRoutes are the destinations the pod reaches through the node
	// rather than the VPC: the Service CIDR, the node's own addresses,
	// host_stack_cidrs.
	HostRoutes []netip.Prefix
}

func (c ExclusiveConfig) validate() error {
	switch {
	case c.ContainerID == "" || c.IfName == "" || c.Pin == "":
		return fmt.Errorf("exclusive eni: container id, ifname and pin are required: %w", ErrInvalidConfig)
	case len(c.MAC) == 0:
		return fmt.Errorf("exclusive eni: mac is empty: %w", ErrInvalidConfig)
	case !c.IP.Is4() || !c.VSwitchCIDR.Contains(c.IP) || !c.VSwitchCIDR.Contains(c.Gateway):
		return fmt.Errorf("exclusive eni %s: ip %s and gateway %s must be inside %s: %w", c.MAC, c.IP, c.Gateway, c.VSwitchCIDR, ErrInvalidConfig)
	case c.MTU < 0 || (c.MTU > 0 && c.MTU < minMTU):
		return fmt.Errorf("exclusive eni %s: mtu %d: %w (use 0 for the ENI's, or at least %d)", c.MAC, c.MTU, ErrInvalidConfig, minMTU)
	case c.IfName != PrimaryIfName:
		return fmt.Errorf("exclusive eni %s: ifname %q: %w (the ENI is the pod's primary interface, %s, with its default route)", c.MAC, c.IfName, ErrInvalidConfig, PrimaryIfName)
	}
	return nil
}

// SetupExclusive moves the pod's own ENI into the pod and gives it a veth
// pair to the node, Terway's exclusive layout. First it pins the pod's
// namespace (a bind mount of CNI_NETNS at cfg.Pin): a namespace the runtime
// destroys with a physical NIC inside hands the NIC back to the initial
// namespace, which on a node whose "host" is itself a namespace (the
// simulator) is not the node's, and a virtual link (the simulator's ENIs
// are veths) is destroyed with it; pinned, the namespace lives until
// TeardownExclusive has moved the ENI back and unpinned it. Then, in the
// pod namespace:
//
//	ip link set $eni netns $pod; ip link set $eni name $IfName mtu $MTU up
//	ip addr add $IP/$bits dev $IfName
//	ip route add default via $Gateway dev $IfName onlink
//	ip link add $host type veth peer veth1 (created from the node side)
//	ip link set veth1 up; ip neigh add 169.254.1.1 lladdr $hostMAC dev veth1 nud permanent
//	ip route add $HostRoute via 169.254.1.1 dev veth1 onlink src $IP   (each)
//
// and in the node namespace: the host veth's alias (its owner, as
// SetupPod's), strict rp_filter, "ip route replace $IP/32 dev $host".
//
// The pod side must be new (ErrPodInterfaceExists). On failure the veth is
// removed, the ENI moved back to the node and the namespace unpinned.
//
// May return errors wrapping ErrLinkNotFound (no link with the ENI's MAC in
// the node), ErrNetNSNotFound or ErrInvalidConfig.
func SetupExclusive(ctx context.Context, cfg ExclusiveConfig) (_ PodResult, err error) {
	if err := cfg.validate(); err != nil {
		return PodResult{}, err
	}
	wrap := func(err error) error {
		return fmt.Errorf("setup exclusive eni %s for %s/%s (%s): %w", cfg.MAC, cfg.ContainerID, cfg.IfName, cfg.IP, err)
	}
	hs, err := openSetupHandles(cfg.NetNS, cfg.ContainerNetNS, cfg.IfName)
	if err != nil {
		return PodResult{}, wrap(err)
	}
	defer hs.Close()
	hostH, podNS, podH := hs.host, hs.podNS, hs.pod
	eni, err := findLinkNow(hostH, cfg.MAC)
	if err != nil {
		return PodResult{}, wrap(err)
	}
	if cfg.MTU > 0 && cfg.MTU > eni.Attrs().MTU {
		return PodResult{}, wrap(fmt.Errorf("pod mtu %d, eni %s mtu %d: %w", cfg.MTU, eni.Attrs().Name, eni.Attrs().MTU, ErrMTU))
	}
	if err := pinNetNS(cfg.ContainerNetNS, cfg.Pin); err != nil {
		return PodResult{}, wrap(err)
	}
	defer func() {
		if err != nil {
			// Everything back where it was, the namespace unpinned last.
			if terr := TeardownExclusive(context.Background(), cfg); terr != nil {
				slog.Warn("undo exclusive eni after failed setup", "eni", cfg.MAC.String(), "err", terr)
			}
		}
	}()
	if err := ctx.Err(); err != nil {
		return PodResult{}, wrap(err)
	}
	// Down and named for the pod before it moves: in the pod it appears
	// under the name it will keep.
	if err := hostH.LinkSetDown(eni); err != nil {
		return PodResult{}, wrap(fmt.Errorf("set %s down: %w", eni.Attrs().Name, err))
	}
	if err := hostH.LinkSetNsFd(eni, int(podNS)); err != nil {
		return PodResult{}, wrap(fmt.Errorf("move %s into %s: %w", eni.Attrs().Name, cfg.ContainerNetNS, err))
	}
	podENI, err := findLinkNow(podH, cfg.MAC)
	if err != nil {
		return PodResult{}, wrap(err)
	}
	if err := podH.LinkSetName(podENI, cfg.IfName); err != nil {
		return PodResult{}, wrap(fmt.Errorf("rename %s to %s: %w", podENI.Attrs().Name, cfg.IfName, err))
	}
	if cfg.MTU > 0 {
		if err := podH.LinkSetMTU(podENI, cfg.MTU); err != nil {
			return PodResult{}, wrap(fmt.Errorf("set %s mtu %d: %w", cfg.IfName, cfg.MTU, err))
		}
	}
	addr := &netlink.Addr{IPNet: prefixToIPNet(netip.PrefixFrom(cfg.IP, cfg.VSwitchCIDR.Bits()))}
	if err := podH.AddrReplace(podENI, addr); err != nil {
		return PodResult{}, wrap(fmt.Errorf("addr %s dev %s: %w", addr.IPNet, cfg.IfName, err))
	}
	if err := podH.LinkSetUp(podENI); err != nil {
		return PodResult{}, wrap(fmt.Errorf("set %s up: %w", cfg.IfName, err))
	}
	def := &netlink.Route{
		LinkIndex: podENI.Attrs().Index, Dst: prefixToIPNet(netip.MustParsePrefix("0.0.0.0/0")),
		Gw: cfg.Gateway.AsSlice(), Flags: int(netlink.FLAG_ONLINK), Table: unix.RT_TABLE_MAIN,
	}
	if err := podH.RouteReplace(def); err != nil {
		return PodResult{}, wrap(fmt.Errorf("route default via %s dev %s: %w", cfg.Gateway, cfg.IfName, err))
	}

	hostName := HostVethName(cfg.ContainerID, cfg.IfName)
	if err := removeStaleHostVeth(hostH, hostName); err != nil {
		return PodResult{}, wrap(err)
	}
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: hostName, MTU: podENI.Attrs().MTU},
		PeerName:      ExclusiveVethName,
		PeerNamespace: netlink.NsFd(int(podNS)),
	}
	if err := hostH.LinkAdd(veth); err != nil {
		return PodResult{}, wrap(fmt.Errorf("add veth %s/%s: %w", hostName, ExclusiveVethName, err))
	}
	host, err := linkByName(hostH, hostName)
	if err != nil {
		return PodResult{}, wrap(err)
	}
	if err := hostH.LinkSetAlias(host, ownerAlias(PodConfig{ContainerID: cfg.ContainerID, IfName: cfg.IfName, ContainerNetNS: cfg.ContainerNetNS})); err != nil {
		return PodResult{}, wrap(fmt.Errorf("set alias of %s: %w", hostName, err))
	}
	if err := inNetNS(cfg.NetNS, func() error {
		return setSysctls([2]string{"net/ipv4/ip_forward", "1"}, [2]string{"net/ipv4/conf/" + hostName + "/rp_filter", "1"})
	}); err != nil {
		return PodResult{}, wrap(err)
	}
	if err := configureHostSide(hostH, host, cfg.IP); err != nil {
		return PodResult{}, wrap(err)
	}
	peer, err := linkByName(podH, ExclusiveVethName)
	if err != nil {
		return PodResult{}, wrap(err)
	}
	if err := podH.LinkSetUp(peer); err != nil {
		return PodResult{}, wrap(fmt.Errorf("set %s up: %w", ExclusiveVethName, err))
	}
	if err := setGatewayNeigh(podH, peer, PodGateway, host.Attrs().HardwareAddr); err != nil {
		return PodResult{}, wrap(err)
	}
	for _, dst := range cfg.HostRoutes {
		if !dst.Addr().Is4() {
			continue
		}
		r := &netlink.Route{
			LinkIndex: peer.Attrs().Index, Dst: prefixToIPNet(dst.Masked()), Gw: PodGateway.AsSlice(),
			Src: cfg.IP.AsSlice(), Flags: int(netlink.FLAG_ONLINK), Table: unix.RT_TABLE_MAIN,
		}
		if err := podH.RouteReplace(r); err != nil {
			return PodResult{}, wrap(fmt.Errorf("route %s via %s dev %s: %w", dst, PodGateway, ExclusiveVethName, err))
		}
	}
	return PodResult{
		Host:   Interface{Name: hostName, Index: host.Attrs().Index, MAC: host.Attrs().HardwareAddr},
		Pod:    Interface{Name: cfg.IfName, Index: podENI.Attrs().Index, MAC: podENI.Attrs().HardwareAddr},
		Routes: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")},
	}, nil
}

// TeardownExclusive gives the pod's ENI back to the node and removes the
// veth pair: it looks for the ENI's link (by MAC) in the pinned namespace,
// then in CNI_NETNS, then in the node, then in the initial namespace (where
// the kernel returns a physical NIC whose namespace died unpinned), and
// moves it into the node namespace, down, without addresses, under a name
// of its own ("veni-x" + the MAC's last three bytes, so it never takes the
// node's eth0). Then it deletes the host veth and unpins the namespace.
// Everything already gone is success, as TeardownPod.
//
// May return an error wrapping ErrLinkNotFound when the ENI's link is in
// none of those namespaces: it is lost to this node (deleted, or in a
// namespace veni does not know), and its ENI must not serve another pod.
func TeardownExclusive(ctx context.Context, cfg ExclusiveConfig) error {
	if cfg.ContainerID == "" || cfg.IfName == "" || cfg.Pin == "" || len(cfg.MAC) == 0 {
		return fmt.Errorf("teardown exclusive eni: container id, ifname, pin and mac are required: %w", ErrInvalidConfig)
	}
	wrap := func(err error) error {
		return fmt.Errorf("teardown exclusive eni %s of %s/%s: %w", cfg.MAC, cfg.ContainerID, cfg.IfName, err)
	}
	hostH, err := openHandle(cfg.NetNS)
	if err != nil {
		return wrap(err)
	}
	defer hostH.Close()
	hostNS, err := openNodeNS(cfg.NetNS)
	if err != nil {
		return wrap(err)
	}
	defer hostNS.Close()
	// The host veth first: the pod loses its path to the node with it.
	if l, err := linkByName(hostH, HostVethName(cfg.ContainerID, cfg.IfName)); err == nil {
		if err := ignoreNotExist(hostH.LinkDel(l)); err != nil {
			return wrap(fmt.Errorf("delete veth %s: %w", l.Attrs().Name, err))
		}
	} else if !errors.Is(err, ErrLinkNotFound) {
		return wrap(err)
	}
	back := false
	for _, path := range []string{cfg.Pin, cfg.ContainerNetNS} {
		moved, err := moveBack(hostH, hostNS, path, cfg.MAC)
		if err != nil {
			return wrap(err)
		}
		if moved {
			back = true
			break
		}
	}
	if !back {
		if _, err := findLinkNow(hostH, cfg.MAC); err == nil {
			back = true
		}
	}
	if !back && cfg.NetNS != "" {
		// Only where the node is itself a namespace; a process that may
		// not open the initial namespace (a container's) just cannot
		// look there.
		moved, err := moveBack(hostH, hostNS, "/proc/1/ns/net", cfg.MAC)
		if err != nil {
			slog.Debug("look for an exclusive eni in the initial namespace", "eni", cfg.MAC.String(), "err", err)
		}
		back = moved
	}
	if err := unpinNetNS(cfg.Pin); err != nil {
		return wrap(err)
	}
	if !back {
		return wrap(fmt.Errorf("no link with the eni's mac in the pod, the node or the initial namespace: %w", ErrLinkNotFound))
	}
	l, err := findLinkNow(hostH, cfg.MAC)
	if err != nil {
		return wrap(err)
	}
	// Back as a node link: down, no address from the pod, its own name.
	if err := hostH.LinkSetDown(l); err != nil {
		return wrap(fmt.Errorf("set %s down: %w", l.Attrs().Name, err))
	}
	if name := exclusiveNodeName(cfg.MAC); l.Attrs().Name != name {
		if err := hostH.LinkSetName(l, name); err != nil {
			return wrap(fmt.Errorf("rename %s to %s: %w", l.Attrs().Name, name, err))
		}
	}
	addrs, err := addrList(hostH, l)
	if err != nil {
		return wrap(err)
	}
	for _, a := range addrs {
		if err := ignoreNotExist(hostH.AddrDel(l, &a)); err != nil {
			return wrap(fmt.Errorf("remove %s from %s: %w", a.IPNet, l.Attrs().Name, err))
		}
	}
	return nil
}

// openNodeNS opens the node namespace at path; "" is the caller's.
func openNodeNS(path string) (netns.NsHandle, error) {
	if path != "" {
		return openNSHandle(path)
	}
	h, err := netns.Get()
	if err != nil {
		return netns.None(), fmt.Errorf("open own netns: %w", err)
	}
	return h, nil
}

// exclusiveNodeName is the name an exclusive ENI's link has in the node
// while no pod holds it.
func exclusiveNodeName(mac net.HardwareAddr) string {
	return fmt.Sprintf("veni-x%02x%02x%02x", mac[len(mac)-3], mac[len(mac)-2], mac[len(mac)-1])
}

// moveBack moves the link with mac from the namespace at path into the
// node's (hostNS) and reports whether it did; a path that is not a
// namespace, the node's own, or has no such link is not an error.
func moveBack(hostH *netlink.Handle, hostNS netns.NsHandle, path string, mac net.HardwareAddr) (bool, error) {
	if path == "" {
		return false, nil
	}
	nsh, err := openNSHandle(path)
	if errors.Is(err, ErrNetNSNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer nsh.Close()
	if nsh.Equal(hostNS) {
		return false, nil
	}
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		return false, fmt.Errorf("netlink handle in %s: %w", path, err)
	}
	defer h.Close()
	l, err := findLinkNow(h, mac)
	if errors.Is(err, ErrLinkNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := h.LinkSetDown(l); err != nil {
		return false, fmt.Errorf("set %s down in %s: %w", l.Attrs().Name, path, err)
	}
	// Renamed before it moves: "eth0" would clash with the node's.
	if name := exclusiveNodeName(mac); l.Attrs().Name != name {
		if err := h.LinkSetName(l, name); err != nil {
			return false, fmt.Errorf("rename %s to %s in %s: %w", l.Attrs().Name, name, path, err)
		}
	}
	if err := h.LinkSetNsFd(l, int(hostNS)); err != nil {
		return false, fmt.Errorf("move %s from %s to the node: %w", l.Attrs().Name, path, err)
	}
	return true, nil
}

// findLinkNow returns the link with mac in h's namespace without waiting.
// May return an error wrapping ErrLinkNotFound.
func findLinkNow(h *netlink.Handle, mac net.HardwareAddr) (netlink.Link, error) {
	links, err := linkList(h)
	if err != nil {
		return nil, fmt.Errorf("find link with mac %s: %w", mac, err)
	}
	for _, l := range links {
		switch l.Type() {
		case "vlan", "ipvlan", "ipvtap":
			continue
		}
		if bytes.Equal(l.Attrs().HardwareAddr, mac) {
			return l, nil
		}
	}
	return nil, fmt.Errorf("link with mac %s: %w", mac, ErrLinkNotFound)
}

// pinNetNS bind-mounts the namespace at path on pin ("mount --bind $path
// $pin"), creating pin. Pinning again is success.
func pinNetNS(path, pin string) error {
	if pinned(pin) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(pin), 0o700); err != nil {
		return fmt.Errorf("pin netns: %w", err)
	}
	f, err := os.OpenFile(pin, os.O_CREATE|os.O_RDONLY, 0o400)
	if err != nil {
		return fmt.Errorf("pin netns: %w", err)
	}
	f.Close()
	if err := unix.Mount(path, pin, "none", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("pin netns %s at %s: %w", path, pin, err)
	}
	return nil
}

// pinned reports whether pin is a namespace mount.
func pinned(pin string) bool {
	var st unix.Statfs_t
	return unix.Statfs(pin, &st) == nil && st.Type == unix.NSFS_MAGIC
}

// unpinNetNS undoes pinNetNS; an unpinned or missing pin is success.
func unpinNetNS(pin string) error {
	if pinned(pin) {
		if err := unix.Unmount(pin, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("unpin netns %s: %w", pin, err)
		}
	}
	if err := os.Remove(pin); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("unpin netns: %w", err)
	}
	return nil
}

// IsExclusiveNodeLink reports whether a node link's name is that of an
// exclusive ENI no pod holds.
func IsExclusiveNodeLink(name string) bool { return strings.HasPrefix(name, "veni-x") }

// CheckExclusive verifies what SetupExclusive installed: in the pod, IfName
// is the ENI (its MAC), up, with cfg.IP in the vSwitch's prefix and a
// default route via the vSwitch gateway, and veth1 with the gateway
// neighbour; in the node, the host veth with the /32 route to the pod.
//
// May return errors wrapping ErrPodInterfaceMissing, ErrPodAddressMissing,
// ErrPodRouteMissing, ErrHostVethMissing or ErrHostRouteMissing.
func CheckExclusive(ctx context.Context, cfg ExclusiveConfig) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	podH, err := openHandle(cfg.ContainerNetNS)
	if err != nil {
		return err
	}
	defer podH.Close()
	l, err := linkByName(podH, cfg.IfName)
	if err != nil || !bytes.Equal(l.Attrs().HardwareAddr, cfg.MAC) {
		return fmt.Errorf("%s in %s is not the eni %s: %w", cfg.IfName, cfg.ContainerNetNS, cfg.MAC, ErrPodInterfaceMissing)
	}
	addrs, err := addrList(podH, l)
	if err != nil {
		return err
	}
	if !containsAddr(addrs, netip.PrefixFrom(cfg.IP, cfg.VSwitchCIDR.Bits()).String()) {
		return fmt.Errorf("%s/%d on %s: %w", cfg.IP, cfg.VSwitchCIDR.Bits(), cfg.IfName, ErrPodAddressMissing)
	}
	routes, err := routeList(podH, &netlink.Route{LinkIndex: l.Attrs().Index, Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
	if err != nil {
		return err
	}
	gw := false
	for _, r := range routes {
		gw = gw || (isDefault(r) && r.Gw.Equal(cfg.Gateway.AsSlice()))
	}
	if !gw {
		return fmt.Errorf("default via %s dev %s: %w", cfg.Gateway, cfg.IfName, ErrPodRouteMissing)
	}
	if _, err := linkByName(podH, ExclusiveVethName); err != nil {
		return fmt.Errorf("%s in %s: %w", ExclusiveVethName, cfg.ContainerNetNS, ErrPodInterfaceMissing)
	}
	hostH, err := openHandle(cfg.NetNS)
	if err != nil {
		return err
	}
	defer hostH.Close()
	host, err := linkByName(hostH, HostVethName(cfg.ContainerID, cfg.IfName))
	if err != nil {
		return fmt.Errorf("host veth of %s/%s: %w", cfg.ContainerID, cfg.IfName, ErrHostVethMissing)
	}
	hr, err := routeList(hostH, hostRoute(host.Attrs().Index, cfg.IP), netlink.RT_FILTER_DST|netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
	if err != nil {
		return err
	}
	if len(hr) == 0 {
		return fmt.Errorf("%s/32 dev %s: %w", cfg.IP, host.Attrs().Name, ErrHostRouteMissing)
	}
	return ctx.Err()
}

// LocateExclusive says where the ENI's link (cfg.MAC) is: "pod" (in the
// pinned namespace or CNI_NETNS), "node", or "" when in neither, which
// means the ENI is lost to the node.
func LocateExclusive(cfg ExclusiveConfig) (string, error) {
	for _, path := range []string{cfg.Pin, cfg.ContainerNetNS} {
		if path == "" {
			continue
		}
		h, err := openHandle(path)
		if errors.Is(err, ErrNetNSNotFound) {
			continue
		}
		if err != nil {
			return "", err
		}
		_, err = findLinkNow(h, cfg.MAC)
		h.Close()
		if err == nil {
			return "pod", nil
		}
		if !errors.Is(err, ErrLinkNotFound) {
			return "", err
		}
	}
	h, err := openHandle(cfg.NetNS)
	if err != nil {
		return "", err
	}
	defer h.Close()
	if _, err := findLinkNow(h, cfg.MAC); err == nil {
		return "node", nil
	} else if !errors.Is(err, ErrLinkNotFound) {
		return "", err
	}
	return "", nil
}

// UnpinAll undoes every pin in dir (SetupExclusive's pins of one node) and
// returns how many it removed. A missing dir is none.
func UnpinAll(dir string) (int, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("unpin netns: %w", err)
	}
	n := 0
	var errs []error
	for _, e := range ents {
		if err := unpinNetNS(filepath.Join(dir, e.Name())); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}
