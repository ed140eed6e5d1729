package netplumb

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"net"
	"net/netip"
)

// Rule priorities, the same as Terway's veth datapath so the two read alike
// in "ip rule": the "to pod" rule must sort before every "from pod" rule,
// or traffic between two pods of the node would leave through an ENI.
const (
	// PrioToPod is the priority of "to <podIP> lookup main": traffic for a
	// pod reaches its veth whatever link it arrived on.
	PrioToPod = 512
	// PrioFromPod is the priority of "from <podIP> lookup <ENI table>":
	// pod egress leaves through the ENI that owns the pod's address.
	PrioFromPod = 2048

	// HostVethPrefix starts every host-side veth name.
	HostVethPrefix = "veni"
)

// PodGateway is the link-local next hop every pod routes through. It is
// never configured anywhere: the pod has a permanent neighbour entry that
// maps it to the host veth's MAC, so no ARP is needed and the same address
// works for every pod.
var PodGateway = netip.MustParseAddr("169.254.1.1")

// PodGateway6 is PodGateway for IPv6 (dual stack): the pod routes ::/0 via
// fe80::1 with a permanent neighbour entry for the host veth's MAC. It is
// configured nowhere either; being link-local it is valid on every veth.
var PodGateway6 = netip.MustParseAddr("fe80::1")

// ENIConfig describes a secondary ENI the node should carry pod traffic on.
type ENIConfig struct {
	// MAC of the ENI, as the cloud reports it; the link is found by it.
	MAC net.HardwareAddr
	// VSwitchCIDR is the ENI's subnet; it gets a scope-link route in the
	// ENI's table.
	VSwitchCIDR netip.Prefix
	// Gateway is the vSwitch gateway, the default route of the ENI's table.
	Gateway netip.Addr
	// PrimaryIP is the ENI's own address, configured on the link as a /32
	// (as AWS VPC CNI does on secondary ENIs). The node's ARP requests on the
	// ENI then carry an address the VPC assigned to that ENI; without it the
	// kernel borrows eth0's address, which a VPC that checks sources per ENI
	// refuses. The zero Addr leaves the link without an address.
	PrimaryIP netip.Addr
	// MTU to set on the ENI; 0 leaves the link's MTU as it is. Pods on the
	// ENI may not use a larger one (SetupPod returns ErrMTU).
	MTU int
	// Table is the ENI's policy-routing table. Required: the caller owns
	// the numbering (the store gives every ENI a table for life). It must
	// not be derived from the link: a detached and re-attached ENI gets a
	// new ifindex, and pod rules naming a table derived from the old one
	// would point at an empty table. The kernel's own tables (253 default,
	// 254 main, 255 local) are refused.
	Table int
	// NetNS is the path of the node namespace holding the ENI; "" means the
	// caller's own namespace (the host).
	NetNS string
	// IPv6CIDR and Gateway6 are the vSwitch's IPv6 /64 and gateway (dual
	// stack): the ENI's table gets them next to IPv4's. Zero: IPv4 only.
	IPv6CIDR netip.Prefix
	Gateway6 netip.Addr
}

// ENILink is a configured ENI, as EnsureENI left it (or LookupENI found
// it). SetupPod takes it to know where the pod's host side lives, which
// table its egress uses and which subnet the ENI serves; CheckPod to know
// what the ENI's table must hold.
type ENILink struct {
	Name        string
	Index       int
	Table       int
	MAC         net.HardwareAddr
	MTU         int          // the link's MTU after EnsureENI
	NetNS       string       // node namespace path; "" is the caller's namespace
	VSwitchCIDR netip.Prefix // ENIConfig.VSwitchCIDR, masked
	Gateway     netip.Addr   // ENIConfig.Gateway
	IPv6CIDR    netip.Prefix // ENIConfig.IPv6CIDR, masked; zero without IPv6
	Gateway6    netip.Addr   // ENIConfig.Gateway6
}

// PodConfig describes one pod interface on a shared ENI.
type PodConfig struct {
	// ContainerID and IfName identify the attachment (CNI_CONTAINERID,
	// CNI_IFNAME); the host veth name is derived from them (HostVethName),
	// so DEL finds the link with no state.
	ContainerID string
	IfName      string
	// ContainerNetNS is the pod's netns path (CNI_NETNS). TeardownPod
	// accepts "" or a path that no longer exists.
	ContainerNetNS string
	// IP is the pod's IPv4, assigned to ENI in the cloud; the zero Addr
	// for an IPv6-only pod (then IP6 is required). TeardownPod accepts
	// both zero and then finds the addresses from the host routes.
	IP netip.Addr
	// IP6 is the pod's IPv6 on the same ENI (dual stack, or the only
	// address of an IPv6-only pod), the zero Addr for an IPv4-only pod.
	// The ENI must have IPv6 (ENILink.Gateway6).
	IP6 netip.Addr
	// ENI the address belongs to.
	ENI ENILink
	// MTU of both veth ends; 0 uses ENI.MTU.
	MTU int
	// BeforeUp, when set, runs once the veth pair exists and before
	// either end is up, with the host end: what must be in place before
	// the pod's first packet (its NetworkPolicy) goes there. Its error
	// fails SetupPod, which then removes the pair.
	BeforeUp func(host Interface) error
}

// Interface is one end of a pod's veth pair.
type Interface struct {
	Name  string
	Index int // ifindex inside that end's namespace
	MAC   net.HardwareAddr
}

// PodResult is what SetupPod created; the CNI result needs both ends.
type PodResult struct {
	Host Interface // in the node namespace
	Pod  Interface // in the pod namespace
	// Routes are the destinations the pod's main table sends through
	// PodGateway on this interface: 0.0.0.0/0 for the primary interface,
	// the ENI's vSwitch CIDR for any other. The CNI result lists them.
	Routes []netip.Prefix
}

// HostVethName derives the host-side veth name of a pod interface:
// "veni" + 11 hex digits of sha256(containerID/ifName), 15 characters, the
// kernel's limit (IFNAMSIZ-1). The "/" separator cannot occur in either
// part (CNI container ids are [A-Za-z0-9_.-], link names exclude "/"), so
// distinct attachments hash distinct strings. It depends only on the
// attachment, so DEL and CHECK compute the same name ADD used.
func HostVethName(containerID, ifName string) string {
	sum := sha256.Sum256([]byte(containerID + "/" + ifName))
	return HostVethPrefix + hex.EncodeToString(sum[:])[:15-len(HostVethPrefix)]
}

func (c ENIConfig) validate() error {
	if len(c.MAC) == 0 {
		return fmt.Errorf("eni: mac is empty: %w", ErrInvalidConfig)
	}
	if !c.VSwitchCIDR.IsValid() || !c.VSwitchCIDR.Addr().Is4() {
		return fmt.Errorf("eni %s: vswitch cidr %q is not an ipv4 prefix: %w", c.MAC, c.VSwitchCIDR, ErrInvalidConfig)
	}
	if !c.Gateway.Is4() || !c.VSwitchCIDR.Contains(c.Gateway) {
		return fmt.Errorf("eni %s: gateway %s is not inside %s: %w", c.MAC, c.Gateway, c.VSwitchCIDR, ErrInvalidConfig)
	}
	if c.MTU < 0 || (c.MTU > 0 && c.MTU < minMTU) {
		return fmt.Errorf("eni %s: mtu %d: %w (use 0 to keep the link's, or at least %d)", c.MAC, c.MTU, ErrInvalidConfig, minMTU)
	}
	if err := validTable(c.Table); err != nil {
		return fmt.Errorf("eni %s: %w", c.MAC, err)
	}
	if c.PrimaryIP.IsValid() && !c.VSwitchCIDR.Contains(c.PrimaryIP) {
		return fmt.Errorf("eni %s: primary ip %s is not inside %s: %w", c.MAC, c.PrimaryIP, c.VSwitchCIDR, ErrInvalidConfig)
	}
	if (c.IPv6CIDR.IsValid() || c.Gateway6.IsValid()) && (!c.IPv6CIDR.Addr().Is6() || !c.IPv6CIDR.Contains(c.Gateway6)) {
		return fmt.Errorf("eni %s: ipv6 gateway %s is not inside %s: %w", c.MAC, c.Gateway6, c.IPv6CIDR, ErrInvalidConfig)
	}
	return nil
}

// minMTU is the smallest MTU an IPv4 host must accept (RFC 791).
const minMTU = 576

// validTable refuses table numbers veni must not use for an ENI.
func validTable(t int) error {
	switch {
	case t == 0:
		return fmt.Errorf("table is 0: %w (ENIConfig.Table is required: pass the ENI's table from the store)", ErrInvalidConfig)
	case t < 0 || t > math.MaxUint32:
		return fmt.Errorf("table %d is out of range: %w", t, ErrInvalidConfig)
	case t >= 253 && t <= 255: // RT_TABLE_DEFAULT, RT_TABLE_MAIN, RT_TABLE_LOCAL
		return fmt.Errorf("table %d is one of the kernel's own (default, main, local): %w", t, ErrInvalidConfig)
	}
	return nil
}

func (c PodConfig) validateIdentity() error {
	if c.ContainerID == "" || c.IfName == "" {
		return fmt.Errorf("pod: container id and ifname are required: %w", ErrInvalidConfig)
	}
	return nil
}

func (c PodConfig) validateSetup() error {
	if err := c.validateIdentity(); err != nil {
		return err
	}
	if c.ContainerNetNS == "" {
		return fmt.Errorf("pod %s: netns path is empty: %w", c.ContainerID, ErrInvalidConfig)
	}
	if c.IP.IsValid() && !c.IP.Is4() {
		return fmt.Errorf("pod %s: ip %q is not ipv4 (an IPv6-only pod's address is IP6): %w", c.ContainerID, c.IP, ErrInvalidConfig)
	}
	if !c.IP.IsValid() && !c.IP6.IsValid() {
		return fmt.Errorf("pod %s: neither ip nor ip6 is set: %w", c.ContainerID, ErrInvalidConfig)
	}
	if c.ENI.Index <= 0 || c.ENI.Table <= 0 || !c.ENI.VSwitchCIDR.IsValid() || !c.ENI.Gateway.IsValid() {
		return fmt.Errorf("pod %s: eni has no ifindex, table, vswitch cidr or gateway (pass what EnsureENI or LookupENI returned): %w", c.ContainerID, ErrInvalidConfig)
	}
	if c.IP6.IsValid() && (!c.IP6.Is6() || c.IP6.Is4In6() || c.IP6.IsLinkLocalUnicast()) {
		return fmt.Errorf("pod %s: ip6 %q is not a global ipv6: %w", c.ContainerID, c.IP6, ErrInvalidConfig)
	}
	if c.IP6.IsValid() && (!c.ENI.Gateway6.IsValid() || !c.ENI.IPv6CIDR.IsValid()) {
		return fmt.Errorf("pod %s: ip6 %s on eni %s, which has no ipv6 gateway (pass an ENIConfig with IPv6CIDR and Gateway6 to EnsureENI): %w", c.ContainerID, c.IP6, c.ENI.Name, ErrInvalidConfig)
	}
	if c.MTU < 0 || (c.MTU > 0 && c.MTU < minMTU) {
		return fmt.Errorf("pod %s: mtu %d: %w (use 0 for the ENI's, or at least %d)", c.ContainerID, c.MTU, ErrInvalidConfig, minMTU)
	}
	if len(c.IfName) > 15 {
		return fmt.Errorf("pod %s: ifname %q longer than 15 characters: %w", c.ContainerID, c.IfName, ErrInvalidConfig)
	}
	return nil
}

// addr is the pod's address that names it in messages: its IPv4, or an
// IPv6-only pod's IPv6.
func (c PodConfig) addr() netip.Addr {
	if c.IP.IsValid() {
		return c.IP
	}
	return c.IP6
}

func (c PodConfig) mtu() int {
	if c.MTU > 0 {
		return c.MTU
	}
	return c.ENI.MTU
}
