package sim

import (
	"net"
	"net/netip"
)

// Fabric is the packet side of the simulated VPC. The cloud model (Cloud)
// calls it when the control plane changes what the network must carry, so
// that real packets follow the API's state:
//
//   - an ENI finishing its attach gets a link in the node (AttachENI),
//   - a detached ENI loses it (DetachENI),
//   - the VPC forwards to an ENI exactly the addresses assigned to it, and
//     accepts from it only those addresses as sources (SetENIAddresses).
//
// Cloud calls Fabric methods without holding its own lock, in the order the
// changes happened for one ENI. A nil Fabric (API-only tests) is allowed.
type Fabric interface {
	// AttachENI wires eni into the node of its instance.
	AttachENI(link ENILink) error
	// DetachENI removes the ENI's link from the node and the VPC.
	DetachENI(instanceID, eniID string) error
	// SetENIAddresses replaces the set of private IPs the VPC routes to the
	// ENI and accepts from it: its IPv4 addresses (every address of each
	// delegated prefix included) followed by its IPv6 addresses.
	SetENIAddresses(instanceID, eniID string, ips []netip.Addr) error
}

// ENILink is what the fabric needs to know to wire one ENI.
type ENILink struct {
	InstanceID  string
	ENIID       string
	MAC         net.HardwareAddr
	Primary     bool         // the instance's primary ENI (eth0)
	DeviceIndex int          // 0 for the primary ENI, then 1, 2, ... in attach order
	VSwitchCIDR netip.Prefix // the ENI's subnet
	Gateway     netip.Addr   // the vSwitch gateway (the CIDR's last address minus 2)
	// IPs are the addresses assigned when the attach completes: IPv4 first
	// (the primary IP, then secondary IPs and every address of each
	// prefix), then IPv6, as SetENIAddresses takes them.
	IPs []netip.Addr
	// IPv6CIDR and Gateway6 are the vSwitch's IPv6 /64 and gateway (the
	// metadata's ipv6-gateway); both invalid when the vSwitch has no IPv6.
	IPv6CIDR netip.Prefix
	Gateway6 netip.Addr
}
