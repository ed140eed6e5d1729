package netplumb

import (
	"fmt"
	"net"
	"net/netip"
)

// LoopbackUp brings lo up in the namespace at netns and returns its
// loopback addresses: what the CNI loopback plugin does on ADD.
//
//	ip -n $netns link set lo up
//
// May return an error wrapping ErrNetNSNotFound.
func LoopbackUp(netns string) ([]netip.Prefix, error) {
	h, err := openHandle(netns)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	lo, err := linkByName(h, "lo")
	if err != nil {
		return nil, fmt.Errorf("lo in %s: %w", netns, err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		return nil, fmt.Errorf("set lo up in %s: %w", netns, err)
	}
	addrs, err := addrList(h, lo)
	if err != nil {
		return nil, fmt.Errorf("lo in %s: %w", netns, err)
	}
	var out []netip.Prefix
	for _, a := range addrs {
		if a.IPNet == nil || !a.IP.IsLoopback() {
			continue
		}
		ip, _ := netip.AddrFromSlice(a.IP)
		ones, _ := a.Mask.Size()
		out = append(out, netip.PrefixFrom(ip.Unmap(), ones))
	}
	return out, nil
}

// LoopbackIsUp reports whether lo is up in the namespace at netns.
//
// May return an error wrapping ErrNetNSNotFound.
func LoopbackIsUp(netns string) (bool, error) {
	h, err := openHandle(netns)
	if err != nil {
		return false, err
	}
	defer h.Close()
	lo, err := linkByName(h, "lo")
	if err != nil {
		return false, fmt.Errorf("lo in %s: %w", netns, err)
	}
	return lo.Attrs().Flags&net.FlagUp != 0, nil
}
