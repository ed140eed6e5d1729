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
//     accepts from it only those addresses as sources (SetENIAddresses),
//   - a trunk member finishing its attach is carried by its trunk's link,
//     tagged with its VLAN ID (AttachMember), until its detach starts
//     (DetachMember).
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
	// delegated prefix included) followed by its IPv6 addresses. For a
	// member (after AttachMember) these are routed to its trunk's link and
	// accepted from it only with the member's VLAN tag.
	SetENIAddresses(instanceID, eniID string, ips []netip.Addr) error
	// AttachMember makes the VPC carry a trunk member's traffic on its
	// trunk's link: frames tagged with the member's VLAN ID from the
	// member's addresses are accepted (and judged by the member's security
	// groups), frames to them are delivered tagged, and untagged frames
	// from them are dropped. The trunk was attached before (AttachENI).
	AttachMember(m MemberLink) error
	// DetachMember stops carrying the member: its addresses are no longer
	// routed and its VLAN ID no longer accepted on the trunk.
	DetachMember(instanceID, trunkID, memberID string) error
}

// ENILink is what the fabric needs to know to wire one ENI.
type ENILink struct {
	InstanceID  string
	ENIID       string
	MAC         net.HardwareAddr
	Primary     bool         // the instance's primary ENI (eth0)
	Trunk       bool         // a trunk ENI: its link carries its members' tagged frames
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
	// IPv6Prefixes are the /80s delegated to the ENI when the attach
	// completes, for a Prefix6Fabric.
	IPv6Prefixes []netip.Prefix
}

// Prefix6Fabric is a Fabric that routes delegated IPv6 /80s. A /80 cannot
// be handed over address by address as SetENIAddresses takes them: the
// Cloud gives it the ENI's whole /80 set after every SetENIAddresses of a
// shared ENI (and with AttachENI, in ENILink.IPv6Prefixes). A Fabric
// without it leaves /80 addresses unrouted.
type Prefix6Fabric interface {
	Fabric
	// SetENIIPv6Prefixes replaces the /80s the VPC routes to the ENI and
	// accepts from it as sources.
	SetENIIPv6Prefixes(instanceID, eniID string, prefixes []netip.Prefix) error
}

// MemberLink is what the fabric needs to carry one trunk member. A member
// never appears as a NIC of the node: its frames ride its trunk's link,
// tagged with its VLAN ID.
type MemberLink struct {
	InstanceID  string
	TrunkID     string       // the trunk ENI it is attached through
	ENIID       string       // the member ENI
	VLAN        int          // its Attachment.DeviceIndex: 1..4094, unique on the trunk
	VSwitchCIDR netip.Prefix // the member's subnet (may differ from the trunk's)
	Gateway     netip.Addr   // the member's vSwitch gateway
	// IPs are the addresses assigned when the attach completes, as
	// SetENIAddresses takes them.
	IPs []netip.Addr
}
