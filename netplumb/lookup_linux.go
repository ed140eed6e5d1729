package netplumb

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
)

// LookupENI finds the link of an ENI that EnsureENI configured with cfg,
// without waiting and without changing anything, and returns it as
// EnsureENI would. It is for read-only callers: CNI CHECK, the daemon's
// program sync and audits; CheckPod then verifies the ENI's table against
// the returned link. cfg is validated as EnsureENI validates it (Table is
// required). May return an error wrapping ErrLinkNotFound or
// ErrInvalidConfig.
func LookupENI(ctx context.Context, cfg ENIConfig) (ENILink, error) {
	if err := cfg.validate(); err != nil {
		return ENILink{}, err
	}
	h, err := openHandle(cfg.NetNS)
	if err != nil {
		return ENILink{}, fmt.Errorf("lookup eni %s: %w", cfg.MAC, err)
	}
	defer h.Close()
	// An already-expired context makes FindLinkByMAC look exactly once.
	done, cancel := context.WithCancel(ctx)
	cancel()
	link, err := FindLinkByMAC(done, h, cfg.MAC)
	if err != nil {
		return ENILink{}, fmt.Errorf("lookup eni: %w", err)
	}
	return eniLinkOf(link, cfg), nil
}

// NodeIPv6 returns the global IPv6 addresses of every link in the calling
// thread's network namespace, sorted: for the fast path, which must hand a
// pod's packets for any of the node's addresses to the host stack. Unlike
// LinkIPv6 it does not ask which link is the node's primary NIC. The dump
// is retried when the kernel reports it interrupted (an ADD in parallel
// adding addresses), so the list is never partial.
//
// Equivalent to: ip -6 addr show scope global
func NodeIPv6() ([]netip.Addr, error) {
	h, err := openHandle("")
	if err != nil {
		return nil, fmt.Errorf("the node's ipv6: %w", err)
	}
	defer h.Close()
	addrs, err := retryDump("list the node's ipv6 addresses", func() ([]netlink.Addr, error) {
		return h.AddrList(nil, netlink.FAMILY_V6)
	})
	if err != nil {
		return nil, err
	}
	return globalIPv6(addrs), nil
}

// globalIPv6 returns the global unicast IPv6 of addrs, sorted, without
// duplicates.
func globalIPv6(addrs []netlink.Addr) []netip.Addr {
	var out []netip.Addr
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Is6() && !ip.Is4In6() && ip.IsGlobalUnicast() {
			out = append(out, ip)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

// LinkIPv6 returns the global IPv6 addresses of the link with MAC mac in
// the node's namespace, sorted, without waiting for the link: for the
// daemon, the node's own IPv6 on its primary NIC (what the cloud or router
// advertisements gave it), so that NetworkPolicy knows the node by both
// families. Tentative addresses count (they become the node's once DAD
// ends). May return an error wrapping ErrLinkNotFound.
//
// Equivalent to: ip -6 addr show dev $link scope global
func LinkIPv6(mac net.HardwareAddr) ([]netip.Addr, error) {
	h, err := openHandle("")
	if err != nil {
		return nil, fmt.Errorf("ipv6 of link %s: %w", mac, err)
	}
	defer h.Close()
	done, cancel := context.WithCancel(context.Background())
	cancel() // look once
	link, err := FindLinkByMAC(done, h, mac)
	if err != nil {
		return nil, err
	}
	addrs, err := addrListFamily(h, link, netlink.FAMILY_V6)
	if err != nil {
		return nil, fmt.Errorf("ipv6 of link %s: %w", link.Attrs().Name, err)
	}
	return globalIPv6(addrs), nil
}
