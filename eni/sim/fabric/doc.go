// Package fabric is the packet side of the simulated VPC: real network
// namespaces and veth pairs that carry packets the way the cloud's VPC
// would, driven by the control-plane model in package sim through the
// sim.Fabric interface.
//
// Topology. One namespace, "<name>-vpc", is the VPC router: it forwards
// (ip_forward=1) and holds on its lo, as /32 addresses, the OpenAPI
// address (100.100.0.10), the metadata address (100.100.100.200) and every
// vSwitch gateway (the CIDR's last address minus 2). Each node is a
// namespace "<name>-node-<n>". Each ENI is a veth pair: the node end has
// exactly the ENI's MAC and is named like a new NIC (eth0 for the primary
// ENI, ethN by device index); the VPC end lives in the VPC namespace under
// a short name derived from the ENI id (LinkName) and carries the alias
// "<name>/<eni id>" so a crashed sim can be cleaned up by name. The
// primary eth0 is configured here, as cloud-init would; secondary ENIs
// appear DOWN with no address, as a freshly hot-plugged NIC does, and the
// node's own software configures them.
//
// Forwarding and anti-spoofing use the kernel's routing, not a firewall:
// every address assigned to an ENI is a /32 route via that ENI's VPC-side
// link, and nothing else in the VPC namespace routes to the vSwitch CIDRs.
// Strict reverse-path filtering (rp_filter=1) on the VPC side then drops
// any packet whose source is not routed back through the link it arrived
// on, which is exactly "source not assigned to this ENI" — also for ARP,
// whose requests are validated the same way. This keeps the rule set and
// the forwarding table one and the same thing, so they cannot disagree;
// nftables would need a second copy of the address sets. Proxy ARP (with
// proxy_delay 0) on the VPC-side links answers a node's ARP for the
// gateway and for same-subnet peers, so nodes need no special routes. The
// VPC itself never ARPs toward a node: like the cloud's SDN, which delivers
// to the MAC of the ENI holding an address, it has a permanent neighbour
// entry (address → ENI MAC, on the ENI's VPC-side link) for every assigned
// address, added and removed with its /32 route. Nodes therefore need no
// proxy ARP for their pods, as on the real VPC.
//
// IPv6 follows the same model (ipv6_linux.go): /128 routes and permanent
// neighbour entries per assigned address, ip6 forwarding on; since IPv6
// has neither rp_filter nor proxy_arp, anti-spoofing is one "from ADDR iif
// LINK lookup main" rule per address above a "not iif lo blackhole" rule,
// and proxy NDP answers a node's neighbour solicitations for the vSwitch's
// IPv6 gateway (a /128 on the VPC's lo) and its same-/64 peers.
// Link-local, ND and router solicitations reach the VPC through the
// kernel's local table, which is looked up before those rules.
//
// Delegated IPv6 /80s (prefix6_linux.go; the sim hands them over through
// sim.Prefix6Fabric) cannot follow that model: a /80 holds 2^48 addresses,
// so there is no per-address route, neighbour entry, source rule or proxy
// entry to make, and Linux proxy NDP answers only for listed addresses.
// The design keeps the VPC from ever soliciting or being solicited for a
// /80 address:
//
//   - VPC side, one route per /80, "PREFIX/80 via fe80::EUI64(MAC) dev
//     ve-XXXX", whose nexthop (the ENI's link-local address) has a
//     permanent neighbour entry for the ENI's MAC, as the cloud's SDN
//     delivers to the MAC of the ENI holding a prefix; and one
//     anti-spoofing rule per /80, "from PREFIX/80 iif ve-XXXX lookup main".
//   - Node side, a node reaches the vSwitch's /64 through its IPv6 gateway
//     (package netplumb routes it so in every ENI's table), so it never
//     solicits a peer's address on-link; the VPC answers for the gateway
//     as before. Answering solicitations for /80 addresses instead would
//     need a neighbour-discovery daemon in the VPC (proxy NDP cannot
//     match a prefix), one more moving part for no behaviour the gateway
//     route does not give.
//
// Security groups count a /80 as members of its ENI's groups (one
// interval element of the group's IPv6 set), so "same group" and
// group-peer rules cover every address of it.
//
// Single IPv6 addresses of the same /64 keep their proxy entries, so a
// node that puts an address/64 on its NIC still reaches them on-link.
//
// Trunks (trunk_linux.go). A trunk ENI's link also carries its members,
// which have no link of their own, exactly as the cloud's VPC does: each
// member address is a /32 (/128) route via the trunk's VPC-side link with
// a permanent neighbour entry to the trunk's MAC, and a tc program pair
// on that link (package trunkbpf, the fabric's own bpf2go program) does
// the VLAN demultiplexing. From the node, a tagged frame passes only when
// its VLAN ID is a member's and its source one of that member's
// addresses; its tag is popped (the VPC namespace has no 8021q device)
// and skb->mark set to the member's mark. An untagged frame from a
// member's address is dropped: it would pass rp_filter, since the address
// is routed via the trunk, but the real VPC refuses member traffic
// without its tag. Untagged frames from the trunk's own addresses pass as
// before (a trunk also serves shared-IP pods). Toward the node, a frame to
// a member's address is tagged with the member's VLAN ID. Maps grow before
// routes are added and shrink after they are removed, so a routed member
// address is always tagged on delivery and never accepted untagged. ARP
// is judged by its sender and target address like IP, but a tagged IPv6
// neighbour solicitation from a link-local source is dropped (it is no
// member address), so a node that resolves neighbours untagged and tags
// only the member's IP packets (Terway's "filter" mode) is what works for
// IPv6. A member's IPv6 addresses are carried when the trunk's link has
// IPv6, that is when the trunk's vSwitch has an IPv6 block.
//
// Security groups (secgroup.go) are the one firewall: a Fabric is a
// sim.SecurityGroupFabric, and each sim.SecurityPolicy the cloud hands it
// (after every change of rules, groups or addresses, derived whole from the
// model) replaces one nftables table in the VPC namespace (family inet:
// IPv4 and IPv6 alike, each rule in its peer's family), stateful
// (conntrack: a rule change applies to new connections), with per-ENI
// chains keyed by the VPC-side link and one address set per group and
// family. A
// member's chains are keyed by its mark on its trunk's link (what it
// sends) and by its addresses (what it receives), ahead of the trunk
// link's own, so a member is judged by its groups and the trunk by its. The
// routes above still decide what may be sent at all; the groups decide
// what of that is allowed.
//
// Isolation: the VPC has no uplink. While a Fabric exists the root
// namespace holds blackhole routes for the VPC CIDR, 100.100.0.0/16 and
// every vSwitch's IPv6 /64 (Options.IPv6CIDRs, or on attach) so
// that no sim packet can leave the machine through the host's default
// route. The routes carry a per-name metric and the protocol RouteProtocol,
// so two sims with the same CIDRs (a user's and a test's) coexist and each
// removes only its own.
//
// Threads: netlink work goes through handles bound to a namespace
// (netlink.NewHandleAt; interrupted dumps are retried by retryDump, the
// fabric's own copy: the simulator imports no veni package outside eni/sim,
// so it cannot share a bug with the code it tests). Code only runs inside a
// namespace for sysctls and for creating listening sockets (Listen),
// through ns.Do, which never leaks a switched thread. The trunk programs
// are attached as tc filters through the VPC's netlink handle too. Fabric
// methods serialise on one mutex.
//
// Lifetime: the tc filters hold the trunk programs and their maps as long
// as the trunk's link lives; the Fabric keeps the map handles to update
// them, and releases them when the trunk is detached or the Fabric is
// closed. Nothing is pinned.
//
// This package must not touch the root namespace beyond its blackhole
// routes, and must not import the cloud model beyond sim.ENILink,
// sim.MemberLink and sim.SecurityPolicy; package sim never imports fabric.
package fabric
