package enforce

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/veni-cni/veni/ebpf/fastpath"
	"github.com/veni-cni/veni/internal/testutil"
	"github.com/veni-cni/veni/policy"
)

// The IPv6 side of the traffic tests' node, wired as netplumb wires a
// dual-stack pod (netplumb/ipv6_linux.go): the pod's address as a /128
// (nodad), default via fe80::1 with a permanent neighbour entry for the
// host veth's MAC, accept_dad=0 on both veth ends; the node routes the
// /128 to the host veth and forwards IPv6. The pod never resolves its
// gateway, but the node resolves the pod: neighbour discovery crosses the
// policy hooks.
var (
	trafficNodeIP6 = netip.MustParseAddr("fd77::10")
	podGateway6    = netip.MustParseAddr("fe80::1")
)

func prefix128(a netip.Addr) *net.IPNet {
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(128, 128)}
}

// mustDualStack gives the node an IPv6 address and forwarding.
func (n *trafficNode) mustDualStack(tb testing.TB) {
	tb.Helper()
	mustSysctl(tb, n.ns, "net/ipv6/conf/all/forwarding", "1")
	mustSysctl(tb, n.ns, "net/ipv6/conf/eth1/accept_dad", "0")
	must(tb, "eni addr6", n.h.AddrAdd(n.eni, &netlink.Addr{IPNet: &net.IPNet{IP: trafficNodeIP6.AsSlice(), Mask: net.CIDRMask(64, 128)}, Flags: 0x02 /* IFA_F_NODAD */}))
}

// mustAddIPv6 adds ip6 to pod p as netplumb does.
func (n *trafficNode) mustAddIPv6(tb testing.TB, p *trafficPod, ip6 netip.Addr) {
	tb.Helper()
	ph := mustHandle(tb, p.ns)
	eth0 := mustLink(tb, ph, "eth0")
	mustSysctl(tb, p.ns, "net/ipv6/conf/eth0/accept_ra", "0")
	mustSysctl(tb, p.ns, "net/ipv6/conf/eth0/accept_dad", "0")
	mustSysctl(tb, n.ns, "net/ipv6/conf/"+p.host.Attrs().Name+"/accept_dad", "0")
	must(tb, "pod addr6", ph.AddrAdd(eth0, &netlink.Addr{IPNet: prefix128(ip6), Flags: 0x02 /* IFA_F_NODAD */}))
	must(tb, "pod gateway6 neigh", ph.NeighAdd(&netlink.Neigh{
		LinkIndex: eth0.Attrs().Index, Family: netlink.FAMILY_V6, State: netlink.NUD_PERMANENT,
		IP: podGateway6.AsSlice(), HardwareAddr: p.host.Attrs().HardwareAddr,
	}))
	must(tb, "pod default6 route", ph.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: podGateway6.AsSlice()}))
	must(tb, "host route6", n.h.RouteAdd(&netlink.Route{LinkIndex: p.host.Attrs().Index, Dst: prefix128(ip6)}))
}

// TestTraffic_IPv6 sends real IPv6 packets between dual-stack pods through
// the host stack with the policy programs on their host veths: the same
// policy decides IPv6 as IPv4, replies pass, the node's own packets get
// in, neighbour discovery works with both directions isolated, and a
// packet too big reaches an ingress-isolated sender (path MTU discovery).
func TestTraffic_IPv6(t *testing.T) {
	testTraffic6(t, "", false)
}

// TestTraffic_IPv6FastPath is TestTraffic_IPv6 with the fast path on the
// pods: their IPv6 is redirected into the peer, and the fast path's own
// ingress check (veni_policy_check6) gives the same verdicts and drops.
func TestTraffic_IPv6FastPath(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.SkipOnOldKernel(t, "6.8", "the fast path (tcx and bpf_fib_lookup with a table id)")
	if err := fastpath.Supported(); err != nil {
		t.Fatalf("kernel >= 6.8 but: %v", err)
	}
	for _, hook := range []string{fastpath.PodHookTC, fastpath.PodHookTCX} {
		t.Run(hook, func(t *testing.T) { testTraffic6(t, hook, true) })
	}
}

func testTraffic6(t *testing.T, hook string, fast bool) {
	n := mustTrafficNode(t)
	n.mustDualStack(t)
	a := n.mustPod(t, "v6a", netip.MustParseAddr("10.77.1.1"))
	b := n.mustPod(t, "v6b", netip.MustParseAddr("10.77.1.2"))
	c := n.mustPod(t, "v6c", netip.MustParseAddr("10.77.1.3"))
	a6, b6, c6 := netip.MustParseAddr("fd77:1::1"), netip.MustParseAddr("fd77:1::2"), netip.MustParseAddr("fd77:1::3")
	n.mustAddIPv6(t, a, a6)
	n.mustAddIPv6(t, b, b6)
	n.mustAddIPv6(t, c, c6)
	dir := mustPinDir(t)
	e := mustOpen(t, Options{PinDir: dir, PodHook: hook})
	var d *fastpath.Datapath
	if fast {
		var err error
		d, err = fastpath.Open(fastpath.Options{PinDir: dir, PodHook: hook, HostStack: &fastpath.HostStack{
			NodeAddrs: []netip.Addr{trafficNodeIP, trafficNodeIP6},
		}})
		if err != nil {
			t.Fatalf("fast path open: %v", err)
		}
		t.Cleanup(func() { d.Close() })
	}
	mustInNetNS(t, n.ns, func() error {
		errs := []error{e.AttachEndpoint(a.key()), e.AttachEndpoint(b.key()), e.AttachEndpoint(c.key())}
		if d != nil {
			for p, ip6 := range map[*trafficPod]netip.Addr{a: a6, b: b6, c: c6} {
				ep := n.fastpathEndpoint(p)
				ep.IP6 = ip6
				errs = append(errs, d.AttachPod(ep))
			}
		}
		return errors.Join(errs...)
	})
	for _, p := range []*trafficPod{a, b, c} {
		for _, ip := range []netip.Addr{p.ip, map[*trafficPod]netip.Addr{a: a6, b: b6, c: c6}[p]} {
			mustServeTCPEcho(t, p.ns, netip.AddrPortFrom(ip, 8080))
			mustServeTCPEcho(t, p.ns, netip.AddrPortFrom(ip, 8081))
			mustServeUDPEcho(t, p.ns, netip.AddrPortFrom(ip, 53))
		}
	}

	// b: ingress from a only, TCP 8080 and UDP 53, over both families;
	// egress isolated, nothing allowed (its replies and its neighbour
	// advertisements must still leave). a: ingress isolated, nothing
	// allowed (replies and errors about its flows must still arrive).
	allowA := []policy.PortRule{port(policy.ProtoTCP, 8080, 8080), port(policy.ProtoUDP, 53, 53)}
	rsB := ruleset(entries(
		policy.CIDREntry{Prefix: netip.PrefixFrom(a.ip, 32), Rules: allowA},
		policy.CIDREntry{Prefix: netip.PrefixFrom(a6, 128), Rules: allowA},
	), entries())
	rsB.IPs = []netip.Addr{b.ip, b6}
	mustSet(t, e, b.key(), rsB)
	rsA := ruleset(entries(), nil)
	rsA.IPs = []netip.Addr{a.ip, a6}
	mustSet(t, e, a.key(), rsA)

	pass := func(what string, from *trafficPod, network string, dst netip.AddrPort) {
		t.Helper()
		ns := n.ns
		if from != nil {
			ns = from.ns
		}
		if err := exchange(ns, network, dst, okTimeout); err != nil {
			t.Errorf("%s: %v", what, err)
		}
	}
	deny := func(what string, from *trafficPod, network string, dst netip.AddrPort) {
		t.Helper()
		if err := exchange(from.ns, network, dst, denyTimeout); err == nil {
			t.Errorf("%s: got through", what)
		}
	}
	for _, fam := range []struct {
		name   string
		a, b   netip.Addr
		tcp    string
		udp    string
		cAddr  netip.Addr
		bOther netip.Addr
	}{
		{"ipv4", a.ip, b.ip, "tcp4", "udp4", c.ip, b.ip},
		{"ipv6", a6, b6, "tcp6", "udp6", c6, b6},
	} {
		before := fastpathCounters(t, d)
		pass(fam.name+": a to b's allowed tcp port (b answers from its isolated egress)", a, fam.tcp, netip.AddrPortFrom(fam.b, 8080))
		pass(fam.name+": a to b's allowed udp port, the reply into isolated a", a, fam.udp, netip.AddrPortFrom(fam.b, 53))
		mid := fastpathCounters(t, d)
		deny(fam.name+": a to b's other port", a, fam.tcp, netip.AddrPortFrom(fam.b, 8081))
		deny(fam.name+": c to b", c, fam.tcp, netip.AddrPortFrom(fam.b, 8080))
		if d != nil {
			hc := func(c fastpath.Counters) fastpath.HookCounters {
				if fam.name == "ipv6" {
					return c.IPv6.FromPod
				}
				return c.FromPod
			}
			after := fastpathCounters(t, d)
			if got := hc(mid).RedirectPeer - hc(before).RedirectPeer; got < 4 {
				t.Errorf("%s: allowed pod-to-pod packets did not take the fast path: RedirectPeer +%d", fam.name, got)
			}
			if got := hc(after).DropPolicy - hc(mid).DropPolicy; got < 2 {
				t.Errorf("%s: the fast path's ingress check dropped %d packets, want the denied SYNs", fam.name, got)
			}
		}
		deny(fam.name+": b opens to c (b's egress isolated)", b, fam.tcp, netip.AddrPortFrom(fam.cAddr, 8080))
		deny(fam.name+": c opens to a (a's ingress isolated)", c, fam.tcp, netip.AddrPortFrom(fam.a, 8080))
		pass(fam.name+": the node probes b's other port", nil, fam.tcp, netip.AddrPortFrom(fam.bOther, 8081))
		pass(fam.name+": a to c (a's egress is open)", a, fam.tcp, netip.AddrPortFrom(fam.cAddr, 8080))
	}

	// The node resolved b's IPv6 address through b's isolated hooks: its
	// neighbour entry has b's MAC.
	neighs, err := n.h.NeighList(b.host.Attrs().Index, netlink.FAMILY_V6)
	must(t, "neighbours", err)
	found := false
	for _, nb := range neighs {
		if nb.IP.Equal(b6.AsSlice()) {
			found = nb.HardwareAddr.String() == b.podMAC.String() && nb.State&netlink.NUD_FAILED == 0
			if !found {
				t.Errorf("node's neighbour entry of %s: %s state %#x, want %s", b6, nb.HardwareAddr, nb.State, b.podMAC)
			}
		}
	}
	if !found {
		t.Errorf("node has no neighbour entry of %s: %+v", b6, neighs)
	}

	// Packet too big: b's link takes 1280 bytes, a sends a bigger UDP
	// datagram to b; the node answers a with a packet too big, which must
	// get through a's isolated ingress for a to learn the path MTU. (The
	// fast path delivers into b's end of the veth, past the host end's
	// MTU, for either family: no packet too big to wait for.)
	if fast {
		return
	}
	must(t, "b's host veth mtu", n.h.LinkSetMTU(b.host, 1280))
	mustInNetNS(t, a.ns, func() error {
		conn, err := net.DialUDP("udp6", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(b6, 53)))
		if err != nil {
			return err
		}
		defer conn.Close()
		_, err = conn.Write(make([]byte, 1400))
		return err
	})
	ah := mustHandle(t, a.ns)
	deadline := time.Now().Add(okTimeout)
	for {
		routes, err := ah.RouteGet(b6.AsSlice())
		must(t, "route get", err)
		if len(routes) > 0 && routes[0].MTU == 1280 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("a's path MTU to %s: %+v, want 1280 (the packet too big did not arrive)", b6, routes)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
}
