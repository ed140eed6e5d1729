package fastpath

import (
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/veni-cni/veni/internal/testutil"
)

// The test VPC: one vSwitch, a gateway, and two addresses in the VPC
// namespace, one on-link and one behind the gateway. Every address lives in
// namespaces the test creates.
var (
	vswitchCIDR = netip.MustParsePrefix("10.99.0.0/24")
	gatewayIP   = netip.MustParseAddr("10.99.0.253")
	nodeIP      = netip.MustParseAddr("10.99.0.10")
	onLinkIP    = netip.MustParseAddr("10.99.0.100")
	remoteIP    = netip.MustParseAddr("10.98.0.5")
	serviceCIDR = netip.MustParsePrefix("10.96.0.0/16")
	serviceIP   = netip.MustParseAddr("10.96.0.10")
	podGateway  = netip.MustParseAddr("169.254.1.1")
)

const eniTable = 1001

// testNode is a node namespace with one ENI (a veth into a VPC namespace)
// and pods wired the way netplumb wires them.
type testNode struct {
	name   string // netns name, for "ip netns exec"
	ns     netns.NsHandle
	h      *netlink.Handle
	vpc    netns.NsHandle
	vpcH   *netlink.Handle
	eni    netlink.Link // eth1 in the node
	eniMAC net.HardwareAddr
}

type testPod struct {
	ns     netns.NsHandle
	ip     netip.Addr
	ip6    netip.Addr   // dual stack (mustPod6)
	host   netlink.Link // host-side veth in the node
	podMAC net.HardwareAddr
}

func prefix32(a netip.Addr) *net.IPNet {
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(32, 32)}
}

func ipnet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}
}

func mustHandle(tb testing.TB, ns netns.NsHandle) *netlink.Handle {
	tb.Helper()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		tb.Fatalf("netlink handle: %v", err)
	}
	tb.Cleanup(h.Close)
	return h
}

func must(tb testing.TB, what string, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatalf("%s: %v", what, err)
	}
}

func mustLink(tb testing.TB, h *netlink.Handle, name string) netlink.Link {
	tb.Helper()
	l, err := h.LinkByName(name)
	must(tb, "link "+name, err)
	return l
}

// mustTestNode builds node and VPC namespaces joined by an ENI veth:
//
//	node: eth1 10.99.0.10/24, table 1001 {10.99.0.0/24 dev eth1,
//	      default via 10.99.0.253}, main default via 10.99.0.253
//	vpc:  vpc0 10.99.0.253/32 proxy_arp, /32 routes back to the node's
//	      addresses, 10.98.0.5 and 10.99.0.100 on lo
func mustTestNode(tb testing.TB) *testNode {
	tb.Helper()
	testutil.RequireRoot(tb)
	n := &testNode{}
	n.name, n.ns = testutil.NewNetNS(tb)
	_, n.vpc = testutil.NewNetNS(tb)
	n.h = mustHandle(tb, n.ns)
	n.vpcH = mustHandle(tb, n.vpc)

	must(tb, "add eni veth", n.h.LinkAdd(&netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: "eth1"},
		PeerName:      "vpc0",
		PeerNamespace: netlink.NsFd(int(n.vpc)),
	}))
	n.eni = mustLink(tb, n.h, "eth1")
	n.eniMAC = n.eni.Attrs().HardwareAddr
	must(tb, "eni addr", n.h.AddrAdd(n.eni, &netlink.Addr{IPNet: &net.IPNet{IP: nodeIP.AsSlice(), Mask: net.CIDRMask(24, 32)}}))
	must(tb, "eni up", n.h.LinkSetUp(n.eni))
	must(tb, "node lo up", n.h.LinkSetUp(mustLink(tb, n.h, "lo")))
	must(tb, "eni table subnet", n.h.RouteAdd(&netlink.Route{
		LinkIndex: n.eni.Attrs().Index, Dst: ipnet(vswitchCIDR), Scope: netlink.SCOPE_LINK,
		Src: nodeIP.AsSlice(), Table: eniTable,
	}))
	must(tb, "eni table default", n.h.RouteAdd(&netlink.Route{
		LinkIndex: n.eni.Attrs().Index, Gw: gatewayIP.AsSlice(), Table: eniTable,
	}))
	must(tb, "main default", n.h.RouteAdd(&netlink.Route{
		LinkIndex: n.eni.Attrs().Index, Gw: gatewayIP.AsSlice(),
	}))
	mustSysctl(tb, n.ns, "net/ipv4/ip_forward", "1")

	vpc0 := mustLink(tb, n.vpcH, "vpc0")
	must(tb, "vpc lo up", n.vpcH.LinkSetUp(mustLink(tb, n.vpcH, "lo")))
	for _, a := range []netip.Addr{remoteIP, onLinkIP} {
		must(tb, "vpc lo addr", n.vpcH.AddrAdd(mustLink(tb, n.vpcH, "lo"), &netlink.Addr{IPNet: prefix32(a)}))
	}
	must(tb, "gateway addr", n.vpcH.AddrAdd(vpc0, &netlink.Addr{IPNet: prefix32(gatewayIP)}))
	must(tb, "vpc0 up", n.vpcH.LinkSetUp(vpc0))
	mustSysctl(tb, n.vpc, "net/ipv4/conf/vpc0/proxy_arp", "1")
	n.routeFromVPC(tb, nodeIP)
	return n
}

// routeFromVPC makes the VPC deliver addr to the node's ENI, the way the
// cloud knows which ENI holds an address: a /32 route and the ENI's MAC.
func (n *testNode) routeFromVPC(tb testing.TB, addr netip.Addr) {
	tb.Helper()
	vpc0 := mustLink(tb, n.vpcH, "vpc0")
	must(tb, "vpc route "+addr.String(), n.vpcH.RouteAdd(&netlink.Route{
		LinkIndex: vpc0.Attrs().Index, Dst: prefix32(addr), Scope: netlink.SCOPE_LINK,
	}))
	must(tb, "vpc neigh "+addr.String(), n.vpcH.NeighAdd(&netlink.Neigh{
		LinkIndex: vpc0.Attrs().Index, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT,
		IP: addr.AsSlice(), HardwareAddr: n.eniMAC,
	}))
}

// mustPod wires a pod as netplumb does: a veth pair, eth0 with ip/32 and a
// default route via 169.254.1.1 (a permanent neighbour: the host veth's
// MAC), a /32 route on the host side, and rules "from ip lookup <ENI
// table>" (2048) and "to ip lookup main" (512).
func (n *testNode) mustPod(tb testing.TB, hostName string, ip netip.Addr) *testPod {
	tb.Helper()
	p := &testPod{ip: ip}
	_, p.ns = testutil.NewNetNS(tb)
	ph := mustHandle(tb, p.ns)
	must(tb, "add pod veth", n.h.LinkAdd(&netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: hostName},
		PeerName:      "eth0",
		PeerNamespace: netlink.NsFd(int(p.ns)),
	}))
	p.host = mustLink(tb, n.h, hostName)
	eth0 := mustLink(tb, ph, "eth0")
	p.podMAC = eth0.Attrs().HardwareAddr

	must(tb, "pod lo up", ph.LinkSetUp(mustLink(tb, ph, "lo")))
	must(tb, "pod addr", ph.AddrAdd(eth0, &netlink.Addr{IPNet: prefix32(ip)}))
	must(tb, "pod eth0 up", ph.LinkSetUp(eth0))
	must(tb, "pod gateway route", ph.RouteAdd(&netlink.Route{
		LinkIndex: eth0.Attrs().Index, Dst: prefix32(podGateway), Scope: netlink.SCOPE_LINK,
	}))
	must(tb, "pod default route", ph.RouteAdd(&netlink.Route{
		LinkIndex: eth0.Attrs().Index, Gw: podGateway.AsSlice(),
	}))
	must(tb, "pod gateway neigh", ph.NeighAdd(&netlink.Neigh{
		LinkIndex: eth0.Attrs().Index, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT,
		IP: podGateway.AsSlice(), HardwareAddr: p.host.Attrs().HardwareAddr,
	}))

	must(tb, "host veth up", n.h.LinkSetUp(p.host))
	must(tb, "host route", n.h.RouteAdd(&netlink.Route{
		LinkIndex: p.host.Attrs().Index, Dst: prefix32(ip), Scope: netlink.SCOPE_LINK,
	}))
	from := netlink.NewRule()
	from.Src, from.Table, from.Priority = prefix32(ip), eniTable, 2048
	must(tb, "rule from pod", n.h.RuleAdd(from))
	to := netlink.NewRule()
	to.Dst, to.Table, to.Priority = prefix32(ip), 254, 512
	must(tb, "rule to pod", n.h.RuleAdd(to))
	n.routeFromVPC(tb, ip)
	return p
}

func (n *testNode) endpoint(p *testPod) Endpoint {
	return Endpoint{
		IP:          p.ip,
		IP6:         p.ip6,
		HostIfindex: p.host.Attrs().Index,
		HostMAC:     p.host.Attrs().HardwareAddr,
		PodMAC:      p.podMAC,
		ENIIfindex:  n.eni.Attrs().Index,
		ENITable:    eniTable,
	}
}

// mustNft loads an nftables ruleset into the node namespace; the table dies
// with the namespace.
func (n *testNode) mustNft(tb testing.TB, ruleset string) {
	tb.Helper()
	cmd := exec.Command("ip", "netns", "exec", n.name, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("nft: %v: %s", err, out)
	}
}

func (n *testNode) nftList(tb testing.TB, args ...string) string {
	tb.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", n.name, "nft"}, args...)...).CombinedOutput()
	if err != nil {
		tb.Fatalf("nft %v: %v: %s", args, err, out)
	}
	return string(out)
}
