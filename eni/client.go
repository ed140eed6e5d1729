package eni

import (
	"context"
	"net"
	"net/netip"
	"time"
)

// ENI types as the ECS API names them.
const (
	TypePrimary   = "Primary"
	TypeSecondary = "Secondary"
	TypeTrunk     = "Trunk"
	TypeMember    = "Member" // what Describe calls a Secondary ENI attached through a trunk
)

// ENI states as the ECS API names them. An ENI moves
// Available → Attaching → InUse on attach and InUse → Detaching → Available
// on detach.
const (
	StatusAvailable = "Available"
	StatusAttaching = "Attaching"
	StatusInUse     = "InUse"
	StatusDetaching = "Detaching"
	StatusDeleting  = "Deleting"
)

// Client is what a node needs from the cloud. Implementations must be safe
// for concurrent use. Every method may return an error wrapping one of the
// sentinels in errors.go.
type Client interface {
	// InstanceLimits returns the ENI and address quotas of an instance type
	// (DescribeInstanceTypes).
	InstanceLimits(ctx context.Context, instanceType string) (InstanceLimits, error)

	// VSwitches describes the given vSwitches, including their free address
	// count (DescribeVSwitches).
	VSwitches(ctx context.Context, ids ...string) ([]VSwitch, error)

	// CreateENI creates a secondary ENI (CreateNetworkInterface). With the
	// same non-empty ClientToken a retried call returns the ENI created by
	// the first one instead of a second ENI.
	CreateENI(ctx context.Context, opts CreateENIOptions) (ENI, error)

	// AttachENI starts attaching an ENI to an instance
	// (AttachNetworkInterface). Attachment is asynchronous: poll ENIs until
	// the status is InUse.
	AttachENI(ctx context.Context, eniID, instanceID string) error

	// DetachENI starts detaching an ENI (DetachNetworkInterface).
	DetachENI(ctx context.Context, eniID, instanceID string) error

	// DeleteENI deletes an Available ENI (DeleteNetworkInterface).
	DeleteENI(ctx context.Context, eniID string) error

	// ENIs lists the ENIs matching the filter, following every page
	// (DescribeNetworkInterfaces).
	ENIs(ctx context.Context, filter ENIFilter) ([]ENI, error)

	// AssignPrivateIPs assigns count new secondary IPv4 addresses to an ENI
	// (AssignPrivateIpAddresses; the API takes at most 10 per call) and
	// returns them.
	AssignPrivateIPs(ctx context.Context, eniID string, count int) ([]netip.Addr, error)

	// UnassignPrivateIPs removes secondary IPv4 addresses from an ENI
	// (UnassignPrivateIpAddresses).
	UnassignPrivateIPs(ctx context.Context, eniID string, ips []netip.Addr) error

	// AssignPrefixes delegates count new /28 IPv4 prefixes to an ENI
	// (AssignPrivateIpAddresses with Ipv4PrefixCount; at most 10 per call)
	// and returns them. Each prefix takes one of the ENI's private IPv4
	// slots.
	AssignPrefixes(ctx context.Context, eniID string, count int) ([]netip.Prefix, error)

	// UnassignPrefixes removes delegated prefixes from an ENI
	// (UnassignPrivateIpAddresses with Ipv4Prefix.N).
	UnassignPrefixes(ctx context.Context, eniID string, prefixes []netip.Prefix) error

	// AssignIPv6s assigns count new IPv6 addresses to an ENI
	// (AssignIpv6Addresses; at most 10 per call) and returns them.
	AssignIPv6s(ctx context.Context, eniID string, count int) ([]netip.Addr, error)

	// UnassignIPv6s removes IPv6 addresses from an ENI
	// (UnassignIpv6Addresses).
	UnassignIPv6s(ctx context.Context, eniID string, ips []netip.Addr) error

	// AssignIPv6Prefixes delegates count new IPv6 /80s to an ENI
	// (AssignIpv6Addresses with Ipv6PrefixCount; at most 10 per call) and
	// returns them. Each /80 takes one of the ENI's IPv6 slots.
	AssignIPv6Prefixes(ctx context.Context, eniID string, count int) ([]netip.Prefix, error)

	// UnassignIPv6Prefixes removes delegated /80s from an ENI
	// (UnassignIpv6Addresses with Ipv6Prefix.N).
	UnassignIPv6Prefixes(ctx context.Context, eniID string, prefixes []netip.Prefix) error
}

// MaxIPsPerAssign is the most addresses AssignPrivateIpAddresses accepts in
// one call. AssignIpv6Addresses takes as many.
const MaxIPsPerAssign = 10

// MaxPrefixesPerAssign is the most prefixes one AssignPrivateIpAddresses
// (Ipv4PrefixCount) or AssignIpv6Addresses (Ipv6PrefixCount) call
// delegates: 1–10.
const MaxPrefixesPerAssign = 10

// PrefixBits is the length of a delegated IPv4 prefix: a /28 of 16
// addresses.
const PrefixBits = 28

// Prefix6Bits is the length of a delegated IPv6 prefix: a /80 of the
// vSwitch's /64.
const Prefix6Bits = 80

// InstanceLimits are the network quotas of one ECS instance type.
type InstanceLimits struct {
	InstanceType   string
	ENIs           int  // EniQuantity: ENIs per instance, primary included
	IPv4PerENI     int  // EniPrivateIpAddressQuantity, primary address included
	IPv6PerENI     int  // EniIpv6AddressQuantity
	TrunkSupported bool // EniTrunkSupported
	MemberENIs     int  // EniTotalQuantity - EniQuantity when trunking is supported
}

// VSwitch is a VPC subnet in one zone.
type VSwitch struct {
	ID           string
	VPCID        string
	ZoneID       string
	CIDR         netip.Prefix
	IPv6CIDR     netip.Prefix // Ipv6CidrBlock; the zero Prefix when IPv6 is off
	AvailableIPs int          // AvailableIpAddressCount
}

// ENI is an elastic network interface as the cloud describes it.
type ENI struct {
	ID               string
	Type             string // TypePrimary, TypeSecondary, TypeTrunk or TypeMember
	Status           string // one of the Status* constants
	MAC              net.HardwareAddr
	InstanceID       string // empty unless attached or attaching
	VPCID            string
	VSwitchID        string
	ZoneID           string
	SecurityGroupIDs []string
	PrimaryIP        netip.Addr
	PrivateIPs       []netip.Addr   // every private IPv4, primary first
	Prefixes         []netip.Prefix // delegated IPv4 /28s (Ipv4PrefixSets)
	IPv6s            []netip.Addr   // IPv6 addresses (Ipv6Sets)
	IPv6Prefixes     []netip.Prefix // delegated IPv6 /80s (Ipv6PrefixSets)
	Tags             map[string]string
	Description      string
	CreationTime     time.Time

	// TrunkID is the trunk a member is attached through
	// (Attachment.TrunkNetworkInterfaceId), and DeviceIndex its
	// Attachment.DeviceIndex: for a member, its VLAN ID on the trunk.
	TrunkID     string
	DeviceIndex int
}

// CreateENIOptions describe a new secondary ENI.
type CreateENIOptions struct {
	VSwitchID        string
	SecurityGroupIDs []string // at least one
	Tags             map[string]string
	Description      string
	ResourceGroupID  string
	SecondaryIPs     int    // extra private IPv4s assigned at creation
	Prefixes         int    // IPv4 /28 prefixes delegated at creation (1–10; not with SecondaryIPs)
	IPv6s            int    // IPv6 addresses assigned at creation
	IPv6Prefixes     int    // IPv6 /80 prefixes delegated at creation (Ipv6PrefixCount; not with IPv6s)
	ClientToken      string // idempotency key; empty disables idempotency
	Trunk            bool   // create a trunk ENI (InstanceType=Trunk) instead of a Secondary one
}

// ENIFilter selects ENIs. Empty fields do not filter; Tags must all match.
type ENIFilter struct {
	InstanceID string
	IDs        []string
	VSwitchID  string
	Status     string
	Tags       map[string]string
}
