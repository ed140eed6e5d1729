package fastpath

import (
	"errors"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/veni-cni/veni/internal/testutil"
)

// The test VPC's IPv6, beside mustTestNode's IPv4: the vSwitch /64, its
// gateway, the node's ENI address, a VPC address on the link and one
// behind the gateway, an IPv6 Service CIDR and a host-stack CIDR.
var (
	vswitch6    = netip.MustParsePrefix("fd00:99::/64")
	gateway6    = netip.MustParseAddr("fd00:99::fd")
	node6       = netip.MustParseAddr("fd00:99::10")
	onLink6     = netip.MustParseAddr("fd00:99::100")
	remote6     = netip.MustParseAddr("fd00:98::5")
	hostCIDR6   = netip.MustParsePrefix("fd00:97::/64")
	hostOnly6   = netip.MustParseAddr("fd00:97::53")
	service6    = netip.MustParsePrefix("fd00:96::/108")
	serviceIP6  = netip.MustParseAddr("fd00:96::10")
	podGateway6 = netip.MustParseAddr("fe80::1")
)

func prefix128(a netip.Addr) *net.IPNet {
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(128, 128)}
}

func nodad(a netip.Addr, bits int) *netlink.Addr {
	return &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(bits, 128)}, Flags: unix.IFA_F_NODAD}
}

// mustIPv6 gives the test node and VPC IPv6 as netplumb and the sim do,
// before any pod exists (DAD off for the links to come):
//
//	node: eth1 fd00:99::10/64, table 1001 {fd00:99::/64 dev eth1,
//	      default via fd00:99::fd}, main default via fd00:99::fd
//	vpc:  vpc0 fd00:99::fd and fd00:99::100, fd00:98::5 and fd00:97::53
//	      on lo, /128 routes back to the node's addresses
func (n *testNode) mustIPv6(tb testing.TB) {
	tb.Helper()
	for _, k := range []string{"all/accept_dad", "default/accept_dad", "eth1/accept_dad", "all/forwarding"} {
		mustSysctl(tb, n.ns, "net/ipv6/conf/"+k, map[bool]string{true: "1", false: "0"}[k == "all/forwarding"])
	}
	for _, k := range []string{"all/accept_dad", "default/accept_dad", "vpc0/accept_dad"} {
		mustSysctl(tb, n.vpc, "net/ipv6/conf/"+k, "0")
	}
	must(tb, "eni addr6", n.h.AddrAdd(n.eni, nodad(node6, 64)))
	must(tb, "eni table subnet6", n.h.RouteAdd(&netlink.Route{
		LinkIndex: n.eni.Attrs().Index, Dst: &net.IPNet{IP: vswitch6.Addr().AsSlice(), Mask: net.CIDRMask(64, 128)},
		Table: eniTable,
	}))
	must(tb, "eni table default6", n.h.RouteAdd(&netlink.Route{
		LinkIndex: n.eni.Attrs().Index, Gw: gateway6.AsSlice(), Table: eniTable, Family: netlink.FAMILY_V6,
		Dst: &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)},
	}))
	must(tb, "main default6", n.h.RouteAdd(&netlink.Route{
		LinkIndex: n.eni.Attrs().Index, Gw: gateway6.AsSlice(), Family: netlink.FAMILY_V6,
		Dst: &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)},
	}))
	vpc0 := mustLink(tb, n.vpcH, "vpc0")
	for _, a := range []netip.Addr{gateway6, onLink6} {
		must(tb, "vpc0 addr6", n.vpcH.AddrAdd(vpc0, nodad(a, 128)))
	}
	for _, a := range []netip.Addr{remote6, hostOnly6} {
		must(tb, "vpc lo addr6", n.vpcH.AddrAdd(mustLink(tb, n.vpcH, "lo"), nodad(a, 128)))
	}
	n.routeFromVPC6(tb, node6)
}

// routeFromVPC6 is routeFromVPC for an IPv6 address.
func (n *testNode) routeFromVPC6(tb testing.TB, addr netip.Addr) {
	tb.Helper()
	vpc0 := mustLink(tb, n.vpcH, "vpc0")
	must(tb, "vpc route "+addr.String(), n.vpcH.RouteAdd(&netlink.Route{
		LinkIndex: vpc0.Attrs().Index, Dst: prefix128(addr),
	}))
	must(tb, "vpc neigh "+addr.String(), n.vpcH.NeighAdd(&netlink.Neigh{
		LinkIndex: vpc0.Attrs().Index, Family: netlink.FAMILY_V6, State: netlink.NUD_PERMANENT,
		IP: addr.AsSlice(), HardwareAddr: n.eniMAC,
	}))
}

// mustPod6 makes p dual stack as netplumb does: ip6/128 on eth0, default
// via fe80::1 (a permanent neighbour: the host veth's MAC), no router
// advertisements; on the node a /128 to the host veth and the IPv4 rules'
// IPv6 twins.
func (n *testNode) mustPod6(tb testing.TB, p *testPod, ip6 netip.Addr) {
	tb.Helper()
	p.ip6 = ip6
	ph := mustHandle(tb, p.ns)
	for _, k := range []string{"all/accept_dad", "default/accept_dad", "eth0/accept_dad", "eth0/accept_ra"} {
		mustSysctl(tb, p.ns, "net/ipv6/conf/"+k, "0")
	}
	eth0 := mustLink(tb, ph, "eth0")
	must(tb, "pod addr6", ph.AddrAdd(eth0, nodad(ip6, 128)))
	must(tb, "pod gateway6 neigh", ph.NeighAdd(&netlink.Neigh{
		LinkIndex: eth0.Attrs().Index, Family: netlink.FAMILY_V6, State: netlink.NUD_PERMANENT,
		IP: podGateway6.AsSlice(), HardwareAddr: p.host.Attrs().HardwareAddr,
	}))
	must(tb, "pod default6", ph.RouteAdd(&netlink.Route{
		LinkIndex: eth0.Attrs().Index, Gw: podGateway6.AsSlice(), Family: netlink.FAMILY_V6,
		Dst: &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)},
	}))
	must(tb, "host route6", n.h.RouteAdd(&netlink.Route{
		LinkIndex: p.host.Attrs().Index, Dst: prefix128(ip6),
	}))
	from := netlink.NewRule()
	from.Family, from.Src, from.Table, from.Priority = netlink.FAMILY_V6, prefix128(ip6), eniTable, 2048
	must(tb, "rule6 from pod", n.h.RuleAdd(from))
	to := netlink.NewRule()
	to.Family, to.Dst, to.Table, to.Priority = netlink.FAMILY_V6, prefix128(ip6), 254, 512
	must(tb, "rule6 to pod", n.h.RuleAdd(to))
	n.routeFromVPC6(tb, ip6)
}

// TestDatapath_Traffic6 is TestDatapath_Traffic for dual-stack pods'
// IPv6: real packets, and the IPv6 counters prove which path each took.
func TestDatapath_Traffic6(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.SkipOnOldKernel(t, "6.8", "tcx and bpf_fib_lookup with a table id")
	if err := Supported(); err != nil {
		t.Fatalf("kernel >= 6.8 but: %v", err)
	}
	for _, hook := range []string{PodHookTC, PodHookTCX} {
		t.Run(hook, func(t *testing.T) { testDatapathTraffic6(t, hook) })
	}
}

func grew(t *testing.T, what string, before, after uint64, atLeast uint64, all HookCounters) {
	t.Helper()
	if got := after - before; got < atLeast {
		t.Errorf("%s grew by %d, want >= %d (%+v)", what, got, atLeast, all)
	}
}

func testDatapathTraffic6(t *testing.T, hook string) {
	n := mustTestNode(t)
	n.mustIPv6(t)
	podA := n.mustPod(t, "vetha", netip.MustParseAddr("10.99.0.21"))
	podB := n.mustPod(t, "vethb", netip.MustParseAddr("10.99.0.22"))
	n.mustPod6(t, podA, netip.MustParseAddr("fd00:99::21"))
	n.mustPod6(t, podB, netip.MustParseAddr("fd00:99::22"))

	dir := mustPinDir(t)
	d := mustOpen(t, Options{PinDir: dir, PodHook: hook, HostStack: &HostStack{
		ServiceCIDRs: []netip.Prefix{serviceCIDR, service6},
		CIDRs:        []netip.Prefix{hostCIDR6},
		NodeAddrs:    []netip.Addr{nodeIP, node6},
	}})
	mustInNetNS(t, n.ns, func() error {
		return errors.Join(
			d.AttachPod(n.endpoint(podA)),
			d.AttachPod(n.endpoint(podB)),
			d.AttachENI(n.eni.Attrs().Index),
		)
	})
	if ep, ok, err := d.Endpoint(podA.ip6); err != nil || !ok || ep.HostIfindex != podA.host.Attrs().Index {
		t.Fatalf("Endpoint(%s) = %+v, %v, %v; want pod A's veth", podA.ip6, ep, ok, err)
	}

	mustServeUDPEcho(t, podB.ns, netip.AddrPortFrom(podB.ip6, 7))
	mustServeTCPEcho(t, podB.ns, netip.AddrPortFrom(podB.ip6, 8080))
	for _, a := range []netip.Addr{remote6, onLink6, hostOnly6} {
		mustServeUDPEcho(t, n.vpc, netip.AddrPortFrom(a, 7))
	}
	mustServeUDPEcho(t, n.ns, netip.AddrPortFrom(node6, 7))

	t.Run("pod to pod redirects into the peer", func(t *testing.T) {
		before := mustCounters(t, d)
		mustExchange(t, podA.ns, "udp6", netip.AddrPortFrom(podB.ip6, 7))
		mustExchange(t, podA.ns, "tcp6", netip.AddrPortFrom(podB.ip6, 8080))
		after := mustCounters(t, d)
		grew(t, "IPv6.FromPod.RedirectPeer", before.IPv6.FromPod.RedirectPeer, after.IPv6.FromPod.RedirectPeer, 6, after.IPv6.FromPod)
		if after.FromPod.RedirectPeer != before.FromPod.RedirectPeer {
			t.Errorf("IPv4 FromPod.RedirectPeer moved on IPv6 traffic: %d to %d", before.FromPod.RedirectPeer, after.FromPod.RedirectPeer)
		}
		time.Sleep(300 * time.Millisecond)
	})

	for _, tc := range []struct {
		name string
		dst  netip.Addr
	}{{"pod to vpc via the gateway", remote6}, {"pod to vpc on link", onLink6}} {
		t.Run(tc.name, func(t *testing.T) {
			before := mustCounters(t, d)
			mustExchange(t, podA.ns, "udp6", netip.AddrPortFrom(tc.dst, 7))
			after := mustCounters(t, d)
			grew(t, "IPv6.FromPod.RedirectNeigh", before.IPv6.FromPod.RedirectNeigh, after.IPv6.FromPod.RedirectNeigh, 1, after.IPv6.FromPod)
			grew(t, "IPv6.FromENI.RedirectPeer", before.IPv6.FromENI.RedirectPeer, after.IPv6.FromENI.RedirectPeer, 1, after.IPv6.FromENI)
		})
	}

	t.Run("bulk tcp to the vpc stays on the fast path", func(t *testing.T) {
		sink := netip.AddrPortFrom(remote6, 9000)
		mustServeTCPSink(t, n.vpc, sink)
		before := mustCounters(t, d)
		mustSend(t, podA.ns, sink, 0, 4<<20)
		after := mustCounters(t, d)
		if got := after.IPv6.FromPod.FIBFragNeeded - before.IPv6.FromPod.FIBFragNeeded; got != 0 {
			t.Errorf("IPv6.FromPod.FIBFragNeeded grew by %d during a bulk transfer, want 0 (%+v)", got, after.IPv6.FromPod)
		}
		grew(t, "IPv6.FromPod.RedirectNeigh", before.IPv6.FromPod.RedirectNeigh, after.IPv6.FromPod.RedirectNeigh, 10, after.IPv6.FromPod)
		time.Sleep(300 * time.Millisecond)
	})

	hostCases := []struct {
		name  string
		dst   netip.Addr
		count func(HookCounters) uint64
	}{
		{"node address goes through the host stack", node6, func(c HookCounters) uint64 { return c.PassNodeAddr }},
		{"host-stack cidr goes through the host stack", hostOnly6, func(c HookCounters) uint64 { return c.PassHostCIDR }},
	}
	for _, tc := range hostCases {
		t.Run(tc.name, func(t *testing.T) {
			before := mustCounters(t, d)
			mustExchange(t, podA.ns, "udp6", netip.AddrPortFrom(tc.dst, 7))
			after := mustCounters(t, d)
			grew(t, "the reason's IPv6 counter", tc.count(before.IPv6.FromPod), tc.count(after.IPv6.FromPod), 1, after.IPv6.FromPod)
			if got := after.IPv6.FromPod.RedirectNeigh - before.IPv6.FromPod.RedirectNeigh; got != 0 {
				t.Errorf("IPv6.FromPod.RedirectNeigh grew by %d for a host-stack destination", got)
			}
		})
	}

	t.Run("ipv6 service goes through the host stack and its dnat", func(t *testing.T) {
		n.mustNft(t, `table ip6 vtest6 {
	chain pre {
		type nat hook prerouting priority dstnat; policy accept;
		ip6 daddr `+serviceIP6.String()+` tcp dport 80 counter dnat to [`+podB.ip6.String()+`]:8080
	}
}
`)
		before := mustCounters(t, d)
		mustExchange(t, podA.ns, "tcp6", netip.AddrPortFrom(serviceIP6, 80))
		after := mustCounters(t, d)
		grew(t, "IPv6.FromPod.PassService", before.IPv6.FromPod.PassService, after.IPv6.FromPod.PassService, 1, after.IPv6.FromPod)
		grew(t, "IPv6.FromPod.PassHostFlow", before.IPv6.FromPod.PassHostFlow, after.IPv6.FromPod.PassHostFlow, 1, after.IPv6.FromPod)
		m := regexp.MustCompile(`counter packets (\d+)`).FindStringSubmatch(n.nftList(t, "list", "chain", "ip6", "vtest6", "pre"))
		if m == nil {
			t.Fatal("no counter in the dnat rule")
		}
		if hits, _ := strconv.Atoi(m[1]); hits < 1 {
			t.Errorf("dnat rule hit %d times, want >= 1", hits)
		}
		time.Sleep(300 * time.Millisecond)
	})

	t.Run("a pod sending with another pod's ipv6 is dropped", func(t *testing.T) {
		before := mustCounters(t, d)
		mustInNetNS(t, podA.ns, func() error {
			dl := net.Dialer{
				LocalAddr: &net.UDPAddr{IP: podB.ip6.AsSlice()},
				Control: func(_, _ string, c syscall.RawConn) error {
					var serr error
					err := c.Control(func(fd uintptr) {
						serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_FREEBIND, 1)
					})
					return errors.Join(err, serr)
				},
			}
			c, err := dl.Dial("udp6", netip.AddrPortFrom(remote6, 7).String())
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Write([]byte("spoofed"))
			return err
		})
		time.Sleep(100 * time.Millisecond)
		after := mustCounters(t, d)
		grew(t, "IPv6.FromPod.DropSpoofed", before.IPv6.FromPod.DropSpoofed, after.IPv6.FromPod.DropSpoofed, 1, after.IPv6.FromPod)
	})

	t.Run("packet too big reaches the pod and fragments pass through the host", func(t *testing.T) {
		// The ENI's path is narrower than the pod's link: the first large
		// datagram fails the FIB's MTU check, goes to the host, which
		// answers the pod with an ICMPv6 packet too big; the pod then
		// fragments, and fragments (an extension header) are the host's.
		for _, l := range []netlink.Link{n.eni, mustLink(t, n.vpcH, "vpc0")} {
			h := n.h
			if l.Attrs().Name == "vpc0" {
				h = n.vpcH
			}
			must(t, "mtu", h.LinkSetMTU(l, 1400))
		}
		before := mustCounters(t, d)
		var c net.Conn
		mustInNetNS(t, podA.ns, func() (err error) {
			c, err = net.Dial("udp6", netip.AddrPortFrom(remote6, 7).String())
			return err
		})
		defer c.Close()
		msg := make([]byte, 1450)
		copy(msg, "veni-"+randHex(8))
		var echoed bool
		for attempt := 0; attempt < 5 && !echoed; attempt++ {
			if _, err := c.Write(msg); err != nil && !errors.Is(err, unix.EMSGSIZE) {
				t.Fatalf("send: %v", err)
			}
			_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			buf := make([]byte, 2048)
			if k, err := c.Read(buf); err == nil && k == len(msg) && string(buf[:k]) == string(msg) {
				echoed = true
			}
		}
		after := mustCounters(t, d)
		if !echoed {
			t.Errorf("no echo of a %d-byte datagram across a 1400-byte path (%+v)", len(msg), after.IPv6.FromPod)
		}
		grew(t, "IPv6.FromPod.FIBFragNeeded", before.IPv6.FromPod.FIBFragNeeded, after.IPv6.FromPod.FIBFragNeeded, 1, after.IPv6.FromPod)
		grew(t, "IPv6.FromPod.PassFragment", before.IPv6.FromPod.PassFragment, after.IPv6.FromPod.PassFragment, 1, after.IPv6.FromPod)
	})

	t.Run("detaching the pod's ipv4 takes its ipv6 along", func(t *testing.T) {
		if err := d.DetachPod(podA.ip); err != nil {
			t.Fatalf("detach: %v", err)
		}
		if _, ok, err := d.Endpoint(podA.ip6); err != nil || ok {
			t.Fatalf("endpoint of %s after detaching %s: present=%v err=%v", podA.ip6, podA.ip, ok, err)
		}
		if _, ok, _ := d.Endpoint(podB.ip6); !ok {
			t.Fatalf("pod B's ipv6 endpoint went with pod A's")
		}
		before := mustCounters(t, d)
		mustExchange(t, podA.ns, "udp6", netip.AddrPortFrom(podB.ip6, 7))
		after := mustCounters(t, d)
		if got := after.IPv6.FromPod.RedirectPeer - before.IPv6.FromPod.RedirectPeer; got != 0 {
			t.Errorf("IPv6.FromPod.RedirectPeer grew by %d after detach: pod B's reply to a plain pod took the fast path", got)
		}
		grew(t, "IPv6.ToPod.Packets (the host delivers to pod B)", before.IPv6.ToPod.Packets, after.IPv6.ToPod.Packets, 1, after.IPv6.ToPod)
	})
}
