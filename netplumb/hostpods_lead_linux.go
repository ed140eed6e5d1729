package netplumb

// Temporary until the datapath branch's HostPods (with owner aliases)
// lands: lists veni's host veths and their /32 routes only.

import (
	"context"
	"net"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"
)

// HostPod is a pod veni plumbed, as the node namespace's links show it.
type HostPod struct {
	ContainerID string
	IfName      string
	NetNS       string
	IPs         []netip.Addr
	HostIfindex int
	HostName    string
	HostMAC     net.HardwareAddr
	Owned       bool // the owner fields came from the link's owner record
}

// HostPods lists the host ends of veni's pod veths in netns ("" for the
// caller's).
func HostPods(ctx context.Context, netns string) ([]HostPod, error) {
	h, err := openHandle(netns)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	links, err := linkList(h)
	if err != nil {
		return nil, err
	}
	var out []HostPod
	for _, l := range links {
		if l.Type() != "veth" || !strings.HasPrefix(l.Attrs().Name, HostVethPrefix) {
			continue
		}
		ips, err := hostRouteIPs(h, l.Attrs().Index)
		if err != nil {
			return nil, err
		}
		out = append(out, HostPod{IPs: ips, HostIfindex: l.Attrs().Index, HostName: l.Attrs().Name, HostMAC: l.Attrs().HardwareAddr})
	}
	_ = netlink.Handle{}
	return out, ctx.Err()
}
