package netplumb

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
)

// Owner records on host veths. SetupPod sets the host veth's alias
// (IFLA_IFALIAS, "ip link set $host alias ...") to
//
//	veni1 <container id> <ifname> <netns path>
//
// so that the pods of a node can be listed from the kernel alone when the
// store is lost (HostPods). "veni1" versions the format. The netns path is
// the last field and may hold spaces; a record that would exceed the
// kernel's 255 bytes keeps "-" for the path (unknown) rather than fail the
// ADD.
const (
	aliasVersion = "veni1"
	maxAliasLen  = 255 // IFALIASZ - 1
	unknownNetNS = "-"
)

// ownerAlias is the owner record of cfg's host veth.
func ownerAlias(cfg PodConfig) string {
	s := strings.Join([]string{aliasVersion, cfg.ContainerID, cfg.IfName, cfg.ContainerNetNS}, " ")
	if len(s) > maxAliasLen || cfg.ContainerNetNS == "" {
		s = strings.Join([]string{aliasVersion, cfg.ContainerID, cfg.IfName, unknownNetNS}, " ")
	}
	return s
}

// parseOwnerAlias reads an owner record; ok is false when alias is not one
// this version understands.
func parseOwnerAlias(alias string) (containerID, ifName, netns string, ok bool) {
	f := strings.SplitN(alias, " ", 4)
	if len(f) != 4 || f[0] != aliasVersion || f[1] == "" || f[2] == "" || f[3] == "" {
		return "", "", "", false
	}
	if f[3] == unknownNetNS {
		f[3] = ""
	}
	return f[1], f[2], f[3], true
}

// HostPod is one veni host veth found in a node namespace, with what the
// kernel says about the pod behind it.
type HostPod struct {
	// ContainerID, IfName and NetNS come from the veth's owner record.
	// NetNS is "" when the record could not hold the path.
	ContainerID string
	IfName      string
	NetNS       string
	// IPs are the pod addresses routed through the veth (its /32 routes
	// in the main table), sorted.
	IPs []netip.Addr
	// Host is the host end of the veth.
	Host Interface
	// Owned reports whether the owner record was found and matches the
	// veth's name (HostVethName of its container id and ifname). When
	// false only Host and IPs are known, and Alias holds what the link
	// carried ("" for none): a veth made by an older veni, or an alias
	// someone changed.
	Owned bool
	Alias string
}

// HostPods lists every veni host veth in the node namespace netns ("" is
// the caller's), for rebuilding allocations after the store was lost. It
// changes nothing. Veths without a readable owner record are listed with
// Owned false, never dropped.
//
// Equivalent to: ip -d link show type veth (names "veni*", their alias) and
// ip -4 route show table main (their /32 routes).
//
// May return an error wrapping ErrNetNSNotFound.
func HostPods(ctx context.Context, netns string) ([]HostPod, error) {
	h, err := openHandle(netns)
	if err != nil {
		return nil, fmt.Errorf("host pods: %w", err)
	}
	defer h.Close()
	links, err := linkList(h)
	if err != nil {
		return nil, fmt.Errorf("host pods: %w", err)
	}
	routes, err := routeList(h, &netlink.Route{Table: 254}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("host pods: %w", err)
	}
	// A dual-stack pod's IPv6 is a /128 on the same veth.
	routes6, err := routeListFamily(h, netlink.FAMILY_V6, &netlink.Route{Table: 254}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("host pods: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("host pods: %w", err)
	}
	byLink := make(map[int][]netip.Addr)
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		if ones, bits := r.Dst.Mask.Size(); ones != 32 || bits != 32 {
			continue
		}
		if ip, ok := netip.AddrFromSlice(r.Dst.IP.To4()); ok {
			byLink[r.LinkIndex] = append(byLink[r.LinkIndex], ip)
		}
	}
	for _, r := range routes6 {
		if r.Dst == nil {
			continue
		}
		if ones, bits := r.Dst.Mask.Size(); ones != 128 || bits != 128 {
			continue
		}
		if ip, ok := netip.AddrFromSlice(r.Dst.IP); ok && !ip.Is4In6() && !ip.IsLinkLocalUnicast() {
			byLink[r.LinkIndex] = append(byLink[r.LinkIndex], ip)
		}
	}
	var out []HostPod
	for _, l := range links {
		a := l.Attrs()
		if l.Type() != "veth" || !isHostVethName(a.Name) {
			continue
		}
		p := HostPod{
			Host: Interface{Name: a.Name, Index: a.Index, MAC: a.HardwareAddr},
			IPs:  byLink[a.Index],
		}
		slices.SortFunc(p.IPs, netip.Addr.Compare)
		id, ifName, podNS, ok := parseOwnerAlias(a.Alias)
		if ok && HostVethName(id, ifName) == a.Name {
			p.ContainerID, p.IfName, p.NetNS, p.Owned = id, ifName, podNS, true
		} else {
			p.Alias = a.Alias
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b HostPod) int { return strings.Compare(a.Host.Name, b.Host.Name) })
	return out, nil
}

// isHostVethName reports whether name has the shape HostVethName gives.
func isHostVethName(name string) bool {
	rest, ok := strings.CutPrefix(name, HostVethPrefix)
	if !ok || len(name) != 15 {
		return false
	}
	return strings.Trim(rest, "0123456789abcdef") == ""
}
