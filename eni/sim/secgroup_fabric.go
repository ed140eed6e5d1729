package sim

import "net/netip"

// SecurityGroupFabric is a Fabric that enforces security groups. The Cloud
// checks for it with a type assertion: a Fabric without it carries every
// packet anti-spoofing allows, as before security groups were modelled.
//
// SetSecurityPolicy is called, in order with the other Fabric calls, after
// every change that can alter the policy: a rule, an ENI's groups, an
// ENI's addresses (group membership), an attach, a detach, a deletion.
// Each call carries the whole policy, derived from the model as it is when
// the call runs; the Fabric replaces what it enforces with it. A call that
// fails is made again (every 500ms) until one succeeds.
// Connections already established stay allowed (the groups are stateful);
// new ones are judged by the new policy.
type SecurityGroupFabric interface {
	SetSecurityPolicy(p SecurityPolicy) error
}

// SecurityPolicy is every security group of the VPC and which ENIs are in
// which groups.
type SecurityPolicy struct {
	Groups []SecurityGroup
	ENIs   []ENISecurity
}

// ENISecurity is the groups of one ENI. For a trunk member, Trunk, VLAN
// and Addrs say how its traffic is told apart from its trunk's on the
// trunk's link: it arrives tagged with VLAN (the fabric marks it) and is
// delivered to Addrs (every address routed to the member).
type ENISecurity struct {
	ENIID  string
	Groups []string
	Trunk  string       // a member: its trunk ENI; empty otherwise
	VLAN   int          // a member: its VLAN ID on the trunk
	Addrs  []netip.Addr // a member: its addresses, as in its groups' Members
}

// SecurityGroup is one group: its kind, its rules and its members'
// addresses (every address routed to an ENI in the group: private IPs,
// every address of a delegated prefix, and IPv6 addresses).
type SecurityGroup struct {
	ID         string
	Enterprise bool // members are not allowed to each other, nor egress, by default
	Rules      []SecurityRule
	Members    []netip.Addr
	// MemberPrefixes are the IPv6 /80s delegated to its ENIs: every
	// address of them is a member's, and none of them is in Members.
	MemberPrefixes []netip.Prefix
}

// SecurityRule is one rule. The peer is the source of an ingress rule and
// the destination of an egress rule: a CIDR, or a group's members.
type SecurityRule struct {
	Egress    bool
	Drop      bool   // drop, else accept
	Priority  int    // 1..100, 1 first; a drop wins a tie
	Protocol  string // tcp, udp, icmp, icmpv6 or all
	PortFrom  int    // -1 for icmp and all
	PortTo    int
	PeerCIDR  netip.Prefix // IPv4 or IPv6; zero when PeerGroup is set
	PeerGroup string
}
