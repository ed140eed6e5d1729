package daemon

import (
	"context"
	"net"

	"github.com/veni-cni/veni/ipam"
	"github.com/veni-cni/veni/netplumb"
	"github.com/veni-cni/veni/podnet"
	"github.com/veni-cni/veni/store"
)

// Host is the daemon's hold on the node's kernel for the pool: it waits
// for a new ENI's link, configures ENI links, and lists the pods veni
// plumbed. The daemon runs on netplumb (the node namespace it runs in);
// tests give it a Host whose links exist at once, so the loops run
// without root.
type Host interface {
	// WaitLink blocks until a link with mac exists (ipam.Node.WaitLink).
	WaitLink(ctx context.Context, mac net.HardwareAddr) error
	// EnsureENI configures the ENI's link and routing table and returns
	// its ifindex.
	EnsureENI(ctx context.Context, e store.ENI) (ifindex int, err error)
	// HostPods lists the pods veni plumbed (ipam.Node.HostPods).
	HostPods(ctx context.Context) ([]ipam.HostPod, error)
	// NeighbourLimits reads the kernel's IPv4 neighbour table limits
	// (netplumb.ErrNoNeighbourLimits outside the initial namespace).
	NeighbourLimits() (netplumb.NeighbourLimits, error)
}

// nodeHost is the Host of a real node: netplumb in the caller's namespace.
type nodeHost struct{}

func (nodeHost) WaitLink(ctx context.Context, mac net.HardwareAddr) error {
	return netplumb.WaitLink(ctx, mac)
}

func (nodeHost) EnsureENI(ctx context.Context, e store.ENI) (int, error) {
	mac, err := net.ParseMAC(e.MAC)
	if err != nil {
		return 0, err
	}
	link, err := netplumb.EnsureENI(ctx, netplumb.ENIConfig{MAC: mac, VSwitchCIDR: e.VSwitchCIDR, Gateway: e.Gateway, PrimaryIP: e.PrimaryIP, Table: e.Table, IPv6CIDR: e.IPv6CIDR, Gateway6: e.Gateway6})
	return link.Index, err
}

func (nodeHost) NeighbourLimits() (netplumb.NeighbourLimits, error) {
	return netplumb.ReadNeighbourLimits()
}

func (nodeHost) HostPods(ctx context.Context) ([]ipam.HostPod, error) {
	return podnet.HostPods(ctx)
}
