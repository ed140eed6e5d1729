package fabric

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// blackholeRoute is sim name's root-namespace blackhole for p.
func blackholeRoute(name string, p netip.Prefix) *netlink.Route {
	return &netlink.Route{
		Dst:      prefixNet(p),
		Type:     unix.RTN_BLACKHOLE,
		Protocol: RouteProtocol,
		Priority: blackholeMetric(name),
		Table:    unix.RT_TABLE_MAIN,
	}
}

// addBlackholes makes the root namespace drop everything for the VPC CIDR,
// the 100.100.0.0/16 service range and the vSwitches' IPv6 blocks, so a
// sim address can never leave the machine through the host's own default
// route.
//
// Equivalent to: ip route replace blackhole P proto 86 metric M (each P)
func (f *Fabric) addBlackholes() error {
	prefixes := []netip.Prefix{ServiceCIDR}
	if f.vpcCIDR.IsValid() {
		prefixes = append(prefixes, f.vpcCIDR)
	}
	for _, p := range append(prefixes, f.holes6...) {
		if err := f.ensureBlackhole(p); err != nil {
			return err
		}
	}
	return nil
}

// ensureBlackhole installs the root blackhole for p unless it has one. A
// host with IPv6 turned off (EAFNOSUPPORT) cannot send IPv6 anywhere, so
// an IPv6 prefix needs none there.
func (f *Fabric) ensureBlackhole(p netip.Prefix) error {
	p = p.Masked()
	if !p.IsValid() || slices.Contains(f.holes, p) {
		return nil
	}
	err := netlink.RouteReplace(blackholeRoute(f.name, p))
	if p.Addr().Is6() && errors.Is(err, unix.EAFNOSUPPORT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("root blackhole route %s: %w", p, err)
	}
	f.holes = append(f.holes, p)
	return nil
}

func (f *Fabric) removeBlackholes() error {
	var errs []error
	for _, p := range f.holes {
		if err := netlink.RouteDel(blackholeRoute(f.name, p)); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("delete root blackhole %s: %w", p, err))
		}
	}
	f.holes = nil
	return errors.Join(errs...)
}

// Cleanup removes everything a sim named name may have left behind after a
// crash: its VPC and node namespaces (VPC-side links first, so veth pairs
// die even if a process still holds a node namespace), its root blackhole
// routes and any root-namespace link carrying its alias. Other sims' state
// is untouched. Nothing to clean is not an error.
func Cleanup(name string) error {
	var errs []error
	names, err := listNamedNS()
	if err != nil {
		return err
	}
	vpcName := VPCNetNSName(name)
	if slices.Contains(names, vpcName) {
		errs = append(errs, deleteLinksIn(vpcName, name))
	}
	for _, n := range names {
		if n == vpcName || strings.HasPrefix(n, name+"-node-") {
			errs = append(errs, DeleteNetNS(n))
		}
	}
	root, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer root.Close()
	errs = append(errs, deleteSimLinks(root, name))
	routes, err := listRoutes(root,
		&netlink.Route{Table: unix.RT_TABLE_MAIN, Type: unix.RTN_BLACKHOLE, Protocol: RouteProtocol},
		netlink.RT_FILTER_TABLE|netlink.RT_FILTER_TYPE|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return fmt.Errorf("list root routes: %w", err)
	}
	metric := blackholeMetric(name)
	for _, r := range routes {
		if r.Priority != metric {
			continue
		}
		if err := root.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("delete root blackhole %s: %w", r.Dst, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("clean up sim %s: %w", name, err)
	}
	return nil
}

// deleteLinksIn deletes sim name's links inside the namespace nsName.
func deleteLinksIn(nsName, name string) error {
	nsh, err := netns.GetFromPath(NetNSPath(nsName))
	if err != nil {
		return fmt.Errorf("open netns %s: %w", nsName, err)
	}
	defer nsh.Close()
	h, err := netlink.NewHandleAt(nsh, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink handle in %s: %w", nsName, err)
	}
	defer h.Close()
	return deleteSimLinks(h, name)
}
