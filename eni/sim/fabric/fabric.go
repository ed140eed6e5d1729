package fabric

import (
	"fmt"
	"hash/fnv"
	"net/netip"
	"path/filepath"
)

// DefaultName is the name (namespace and alias prefix) of the user's sim.
// Tests pick their own so they never collide with it.
const DefaultName = "veni-sim"

// Addresses the VPC namespace serves, as on Alibaba Cloud.
var (
	APIAddr      = netip.MustParseAddr("100.100.0.10")    // the simulated OpenAPI endpoint
	MetadataAddr = netip.MustParseAddr("100.100.100.200") // the instance metadata service
	ServiceCIDR  = netip.MustParsePrefix("100.100.0.0/16")
)

// RouteProtocol marks the root namespace's blackhole routes (and the VPC's
// ENI routes) as the sim's, like "proto static" marks an admin's routes. 86
// is not among iproute2's registered protocols.
const RouteProtocol = 86

// netnsDir is where named namespaces are bind-mounted ("ip netns" uses it).
const netnsDir = "/run/netns"

// Options describe the VPC a Fabric builds.
type Options struct {
	// Name prefixes every namespace and alias; DefaultName when empty.
	Name string
	// VPCCIDR is blackholed in the root namespace while the fabric lives.
	VPCCIDR netip.Prefix
	// VSwitches are the subnets whose gateways the VPC answers for. An ENI
	// in a subnet not listed here adds its gateway on attach.
	VSwitches []netip.Prefix
	// IPv6CIDRs are the vSwitches' IPv6 blocks, blackholed in the root
	// namespace while the fabric lives. An ENI whose vSwitch's block is
	// not listed adds its blackhole on attach.
	IPv6CIDRs []netip.Prefix
}

// Node is one simulated ECS instance's network namespace.
type Node struct {
	Name       string `json:"name"`       // hostname, e.g. node-1
	InstanceID string `json:"instanceId"` // the instance it belongs to
	NetNS      string `json:"netns"`      // namespace name, for "ip netns exec"
	NetNSPath  string `json:"netnsPath"`  // /run/netns/<netns>
}

func (o Options) name() string {
	if o.Name == "" {
		return DefaultName
	}
	return o.Name
}

// VPCNetNSName is the name of the VPC router namespace of sim name.
func VPCNetNSName(name string) string { return name + "-vpc" }

// NodeNetNSName is the name of the namespace of node in sim name.
func NodeNetNSName(name, node string) string { return name + "-" + node }

// NetNSPath is where the named namespace is mounted.
func NetNSPath(nsName string) string { return filepath.Join(netnsDir, nsName) }

// LinkName is the VPC-side link name of an ENI: IFNAMSIZ leaves 15
// characters, fewer than an ENI id has, so it is a hash of the id. The full
// id is kept in the link's alias.
func LinkName(eniID string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(eniID))
	return fmt.Sprintf("ve-%08x", h.Sum32())
}

// linkAlias ties a VPC-side link to its sim and ENI.
func linkAlias(name, eniID string) string { return name + "/" + eniID }

// NodeIfName is the name the node's kernel gives the ENI's NIC: eth0 for
// the primary ENI, then eth<device index>.
func NodeIfName(primary bool, deviceIndex int) string {
	if primary {
		return "eth0"
	}
	return fmt.Sprintf("eth%d", deviceIndex)
}

// blackholeMetric is the priority of name's root blackhole routes. The
// kernel keys a route on (table, prefix, tos, metric), so a per-name metric
// lets sims with the same CIDRs each own their blackhole.
func blackholeMetric(name string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	return 4000 + int(h.Sum32()%60000)
}
