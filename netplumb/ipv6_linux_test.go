package netplumb

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The test VPC's IPv6: the ENI's vSwitch /64 with its gateway (the VPC's
// end of the ENI answers for it), and an address behind the VPC router.
var (
	eniCIDR6   = netip.MustParsePrefix("fd00:1::/64")
	eniGW6     = netip.MustParseAddr("fd00:1::ffff:ffff:ffff:fffd")
	behindVPC6 = netip.MustParseAddr("fd00:9::9")
	podA6      = netip.MustParseAddr("fd00:1::a")
	podB6      = netip.MustParseAddr("fd00:1::b")
)

// mustVPCSide6 gives the VPC IPv6: forwarding, the gateway on the ENI's
// VPC end (nodad, so it answers the node's first solicitation) and
// behindVPC6 on its lo.
func (t *topology) mustVPCSide6(tb testing.TB) {
	tb.Helper()
	mustSysctls(tb, t.vpc,
		[2]string{"net/ipv6/conf/all/forwarding", "1"},
		[2]string{"net/ipv6/conf/all/disable_ipv6", "0"},
		[2]string{"net/ipv6/conf/" + vpcENIName + "/disable_ipv6", "0"},
	)
	l, err := linkByName(t.vpcH, vpcENIName)
	if err != nil {
		tb.Fatal(err)
	}
	gw := &netlink.Addr{IPNet: prefixToIPNet(netip.PrefixFrom(eniGW6, 64)), Flags: unix.IFA_F_NODAD}
	if err := t.vpcH.AddrAdd(l, gw); err != nil {
		tb.Fatalf("vpc gateway %s: %v", eniGW6, err)
	}
	lo, err := linkByName(t.vpcH, "lo")
	if err != nil {
		tb.Fatal(err)
	}
	mustAddr(tb, t.vpcH, lo, netip.PrefixFrom(behindVPC6, 128))
}

// mustAssign6 makes the VPC deliver an IPv6 to the ENI: a /128 route and
// a permanent neighbour entry, as the simulated VPC does.
func (t *topology) mustAssign6(tb testing.TB, ip netip.Addr) {
	tb.Helper()
	l, err := linkByName(t.vpcH, vpcENIName)
	if err != nil {
		tb.Fatal(err)
	}
	r := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: prefixToIPNet(netip.PrefixFrom(ip, 128))}
	if err := t.vpcH.RouteReplace(r); err != nil {
		tb.Fatalf("vpc route %s: %v", ip, err)
	}
	n := &netlink.Neigh{LinkIndex: l.Attrs().Index, Family: netlink.FAMILY_V6, State: netlink.NUD_PERMANENT, IP: ip.AsSlice(), HardwareAddr: eniMAC}
	if err := t.vpcH.NeighSet(n); err != nil {
		tb.Fatalf("vpc neighbour %s: %v", ip, err)
	}
}

// mustDualPod plumbs a dual-stack pod (an IPv6-only one when ip is the
// zero Addr); it is torn down at cleanup.
func (t *topology) mustDualPod(tb testing.TB, eni ENILink, id string, ip, ip6 netip.Addr) (PodConfig, PodResult) {
	tb.Helper()
	if ip.IsValid() {
		t.mustAssign(tb, ip)
	}
	t.mustAssign6(tb, ip6)
	cfg := PodConfig{ContainerID: id, IfName: "eth0", ContainerNetNS: mustNetNS(tb), IP: ip, IP6: ip6, ENI: eni}
	res, err := SetupPod(tb.Context(), cfg)
	if err != nil {
		tb.Fatalf("SetupPod %s: %v", id, err)
	}
	tb.Cleanup(func() {
		if err := TeardownPod(context.Background(), cfg); err != nil {
			tb.Errorf("TeardownPod %s: %v", id, err)
		}
	})
	return cfg, res
}

func readSysctl(tb testing.TB, path, name string) string {
	tb.Helper()
	var v string
	err := inNetNS(path, func() error {
		b, err := os.ReadFile(filepath.Join("/proc/sys", name))
		v = strings.TrimSpace(string(b))
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// Ensure a dual-stack pod gets both addresses and both default routes, its
// IPv6 usable at once (no DAD) and deaf to router advertisements; the host
// routes and source-routes both families through the ENI's table; IPv6
// flows pod to pod and pod to the VPC with its source kept; and teardown
// leaves no IPv6 rule or route behind.
func TestSetupPod_DualStack(t *testing.T) {
	topo := mustTopology(t)
	topo.mustENI(t)
	topo.mustVPCSide6(t)
	cfg := topo.eniConfig()
	cfg.IPv6CIDR, cfg.Gateway6 = eniCIDR6, eniGW6
	eni, err := EnsureENI(t.Context(), cfg)
	if err != nil {
		t.Fatalf("EnsureENI: %v", err)
	}
	cfgA, resA := topo.mustDualPod(t, eni, "aaaa", podA, podA6)
	cfgB, _ := topo.mustDualPod(t, eni, "bbbb", podB, podB6)
	for _, s := range []struct {
		ns   string
		addr netip.Addr
	}{{cfgA.ContainerNetNS, podA}, {cfgA.ContainerNetNS, podA6}, {cfgB.ContainerNetNS, podB6}, {topo.vpc, behindVPC}, {topo.vpc, behindVPC6}} {
		mustEchoServer(t, s.ns, s.addr)
	}

	t.Run("result", func(t *testing.T) {
		want := []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
		if fmt.Sprint(resA.Routes) != fmt.Sprint(want) {
			t.Fatalf("routes %v, want %v", resA.Routes, want)
		}
	})

	t.Run("pod side", func(t *testing.T) {
		podH := mustHandle(t, cfgA.ContainerNetNS)
		addrs, err := podH.AddrList(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: resA.Pod.Index}}, netlink.FAMILY_V6)
		if err != nil {
			t.Fatal(err)
		}
		var found bool
		for _, a := range addrs {
			if a.IP.Equal(podA6.AsSlice()) {
				found = true
				ones, _ := a.Mask.Size()
				if ones != 128 || a.Flags&unix.IFA_F_NODAD == 0 || a.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) != 0 {
					t.Fatalf("pod address %s flags %#x, want a /128 with nodad, not tentative", a.IPNet, a.Flags)
				}
			}
		}
		if !found {
			t.Fatalf("pod addresses %v lack %s", addrs, podA6)
		}
		routes, err := routeListFamily(podH, netlink.FAMILY_V6, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		if err != nil {
			t.Fatal(err)
		}
		var def bool
		for _, r := range routes {
			def = def || (r.Dst == nil || r.Dst.String() == "::/0") && r.Gw.Equal(PodGateway6.AsSlice()) && r.LinkIndex == resA.Pod.Index
		}
		if !def {
			t.Fatalf("pod ipv6 routes %+v lack default via %s", routes, PodGateway6)
		}
		neighs, err := podH.NeighList(resA.Pod.Index, netlink.FAMILY_V6)
		if err != nil {
			t.Fatal(err)
		}
		var gw bool
		for _, n := range neighs {
			gw = gw || n.IP.Equal(PodGateway6.AsSlice()) && n.State == netlink.NUD_PERMANENT && n.HardwareAddr.String() == resA.Host.MAC.String()
		}
		if !gw {
			t.Fatalf("pod ipv6 neighbours %+v lack %s permanent at %s", neighs, PodGateway6, resA.Host.MAC)
		}
		if v := readSysctl(t, cfgA.ContainerNetNS, "net/ipv6/conf/eth0/accept_ra"); v != "0" {
			t.Fatalf("pod accept_ra = %s, want 0", v)
		}
	})

	t.Run("check", func(t *testing.T) {
		// A pod of its own, whose IPv6 pieces are taken away one by one.
		cfgC, resC := topo.mustDualPod(t, eni, "dddd", netip.MustParseAddr("10.0.1.12"), netip.MustParseAddr("fd00:1::c"))
		if err := CheckPod(t.Context(), cfgC); err != nil {
			t.Fatalf("CheckPod of a whole dual-stack pod: %v", err)
		}
		podH := mustHandle(t, cfgC.ContainerNetNS)
		link := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: resC.Pod.Index}}
		if err := podH.NeighDel(&netlink.Neigh{LinkIndex: resC.Pod.Index, Family: netlink.FAMILY_V6, IP: PodGateway6.AsSlice()}); err != nil {
			t.Fatal(err)
		}
		if err := CheckPod(t.Context(), cfgC); !errors.Is(err, ErrPodNeighborMissing) {
			t.Fatalf("CheckPod without fe80::1's entry: %v, want %v", err, ErrPodNeighborMissing)
		}
		def := &netlink.Route{LinkIndex: resC.Pod.Index, Dst: prefixToIPNet(netip.MustParsePrefix("::/0")), Gw: PodGateway6.AsSlice()}
		if err := podH.RouteDel(def); err != nil {
			t.Fatal(err)
		}
		if err := CheckPod(t.Context(), cfgC); !errors.Is(err, ErrPodRouteMissing) {
			t.Fatalf("CheckPod without the IPv6 default route: %v, want %v", err, ErrPodRouteMissing)
		}
		if err := podH.AddrDel(link, &netlink.Addr{IPNet: prefixToIPNet(netip.MustParsePrefix("fd00:1::c/128"))}); err != nil {
			t.Fatal(err)
		}
		if err := CheckPod(t.Context(), cfgC); !errors.Is(err, ErrPodAddressMissing) {
			t.Fatalf("CheckPod without the IPv6 address: %v, want %v", err, ErrPodAddressMissing)
		}
	})

	t.Run("host side", func(t *testing.T) {
		rules := podRuleStrings6(t, topo.nodeH)
		for _, want := range []string{
			fmt.Sprintf("512 to %s/128 lookup 254", podA6),
			fmt.Sprintf("2048 from %s/128 lookup %d", podA6, eni.Table),
		} {
			if !containsString(rules, want) {
				t.Fatalf("ipv6 rules %q lack %q", rules, want)
			}
		}
		routes, err := routeListFamily(topo.nodeH, netlink.FAMILY_V6, &netlink.Route{Table: eni.Table}, netlink.RT_FILTER_TABLE)
		if err != nil {
			t.Fatal(err)
		}
		var def, subnet bool
		for _, r := range routes {
			def = def || (r.Dst == nil || r.Dst.String() == "::/0") && r.Gw.Equal(eniGW6.AsSlice())
			// Via the gateway, not on-link: a peer in a delegated /80
			// answers no neighbour solicitation.
			subnet = subnet || r.Dst != nil && r.Dst.String() == eniCIDR6.String() && r.Gw.Equal(eniGW6.AsSlice())
		}
		if !def || !subnet {
			t.Fatalf("eni table %d ipv6 routes %+v lack default and %s via %s", eni.Table, routes, eniCIDR6, eniGW6)
		}
	})

	t.Run("pod to pod ipv6", func(t *testing.T) { mustRoundTrip(t, cfgB.ContainerNetNS, podB6, podA6) })
	t.Run("pod to vpc ipv6", func(t *testing.T) { mustRoundTrip(t, cfgA.ContainerNetNS, podA6, behindVPC6) })
	t.Run("pod to vpc ipv4", func(t *testing.T) { mustRoundTrip(t, cfgA.ContainerNetNS, podA, behindVPC) })

	t.Run("teardown", func(t *testing.T) {
		// By address, as podnet.Release does, and by the veth alone.
		if err := TeardownPod(t.Context(), cfgA); err != nil {
			t.Fatal(err)
		}
		if err := TeardownPod(t.Context(), PodConfig{ContainerID: cfgB.ContainerID, IfName: "eth0", ContainerNetNS: cfgB.ContainerNetNS, ENI: eni}); err != nil {
			t.Fatal(err)
		}
		if rules := podRuleStrings6(t, topo.nodeH); len(rules) != 0 {
			t.Fatalf("ipv6 rules left: %q", rules)
		}
		routes, err := routeListFamily(topo.nodeH, netlink.FAMILY_V6, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range routes {
			if r.Dst != nil && (r.Dst.IP.Equal(podA6.AsSlice()) || r.Dst.IP.Equal(podB6.AsSlice())) {
				t.Fatalf("host route left: %s", r.Dst)
			}
		}
	})
}

// Ensure a pod IPv6 on an ENI without IPv6 is refused before anything is
// made.
func TestSetupPod_IPv6WithoutENIIPv6(t *testing.T) {
	topo := mustTopology(t)
	topo.mustENI(t)
	eni := topo.mustEnsureENI(t)
	cfg := PodConfig{ContainerID: "cccc", IfName: "eth0", ContainerNetNS: mustNetNS(t), IP: podA, IP6: podA6, ENI: eni}
	_, err := SetupPod(t.Context(), cfg)
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("SetupPod = %v, want ErrInvalidConfig", err)
	}
	if _, err := linkByName(topo.nodeH, HostVethName("cccc", "eth0")); err == nil {
		t.Fatal("host veth made for a refused pod")
	}
}

// podRuleStrings6 lists the node's IPv6 rules at veni's pod priorities as
// "prio selector lookup table".
func podRuleStrings6(tb testing.TB, h *netlink.Handle) []string {
	tb.Helper()
	rules, err := h.RuleList(netlink.FAMILY_V6)
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, r := range rules {
		switch {
		case r.Priority == PrioToPod && r.Dst != nil:
			out = append(out, fmt.Sprintf("%d to %s lookup %d", r.Priority, r.Dst, r.Table))
		case r.Priority == PrioFromPod && r.Src != nil:
			out = append(out, fmt.Sprintf("%d from %s lookup %d", r.Priority, r.Src, r.Table))
		}
	}
	return out
}

// Ensure an IPv6-only pod (ip_stack ipv6: IP6 alone) gets its /128, the
// fe80::1 default route and no IPv4 at all (no address, no route, no rule
// on the node), passes CheckPod, reaches another IPv6-only pod and the VPC
// with its source kept, and leaves nothing behind at teardown.
func TestSetupPod_IPv6Only(t *testing.T) {
	topo := mustTopology(t)
	topo.mustENI(t)
	topo.mustVPCSide6(t)
	cfg := topo.eniConfig()
	cfg.IPv6CIDR, cfg.Gateway6 = eniCIDR6, eniGW6
	eni, err := EnsureENI(t.Context(), cfg)
	if err != nil {
		t.Fatalf("EnsureENI: %v", err)
	}
	rules4Before := podRuleStrings4(t, topo.nodeH)
	cfgA, resA := topo.mustDualPod(t, eni, "v6aa", netip.Addr{}, podA6)
	cfgB, _ := topo.mustDualPod(t, eni, "v6bb", netip.Addr{}, podB6)
	for _, s := range []struct {
		ns   string
		addr netip.Addr
	}{{cfgA.ContainerNetNS, podA6}, {cfgB.ContainerNetNS, podB6}, {topo.vpc, behindVPC6}} {
		mustEchoServer(t, s.ns, s.addr)
	}
	if want := []netip.Prefix{netip.MustParsePrefix("::/0")}; fmt.Sprint(resA.Routes) != fmt.Sprint(want) {
		t.Fatalf("routes %v, want %v", resA.Routes, want)
	}
	podH := mustHandle(t, cfgA.ContainerNetNS)
	link := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: resA.Pod.Index}}
	if addrs, err := podH.AddrList(link, netlink.FAMILY_V4); err != nil || len(addrs) != 0 {
		t.Fatalf("pod ipv4 addresses %v (%v), want none", addrs, err)
	}
	if routes, err := routeListFamily(podH, netlink.FAMILY_V4, &netlink.Route{LinkIndex: resA.Pod.Index}, netlink.RT_FILTER_OIF); err != nil || len(routes) != 0 {
		t.Fatalf("pod ipv4 routes %+v (%v), want none", routes, err)
	}
	if got := podRuleStrings4(t, topo.nodeH); fmt.Sprint(got) != fmt.Sprint(rules4Before) {
		t.Fatalf("node ipv4 rules %q, want unchanged %q", got, rules4Before)
	}
	if v := readSysctl(t, cfgA.ContainerNetNS, "net/ipv6/conf/eth0/accept_ra"); v != "0" {
		t.Fatalf("pod accept_ra = %s, want 0", v)
	}
	if err := CheckPod(t.Context(), cfgA); err != nil {
		t.Fatalf("CheckPod of an IPv6-only pod: %v", err)
	}
	mustRoundTrip(t, cfgB.ContainerNetNS, podB6, podA6)
	mustRoundTrip(t, cfgA.ContainerNetNS, podA6, behindVPC6)

	if err := podH.RouteDel(&netlink.Route{LinkIndex: resA.Pod.Index, Dst: prefixToIPNet(netip.MustParsePrefix("::/0")), Gw: PodGateway6.AsSlice()}); err != nil {
		t.Fatal(err)
	}
	if err := CheckPod(t.Context(), cfgA); !errors.Is(err, ErrPodRouteMissing) {
		t.Fatalf("CheckPod without the IPv6 default route: %v, want %v", err, ErrPodRouteMissing)
	}
	if err := TeardownPod(t.Context(), cfgA); err != nil {
		t.Fatal(err)
	}
	if err := TeardownPod(t.Context(), PodConfig{ContainerID: cfgB.ContainerID, IfName: "eth0", ContainerNetNS: cfgB.ContainerNetNS, ENI: eni}); err != nil {
		t.Fatal(err)
	}
	if rules := podRuleStrings6(t, topo.nodeH); len(rules) != 0 {
		t.Fatalf("ipv6 rules left: %q", rules)
	}
}

// podRuleStrings4 is podRuleStrings6 for IPv4.
func podRuleStrings4(tb testing.TB, h *netlink.Handle) []string {
	tb.Helper()
	rules, err := h.RuleList(netlink.FAMILY_V4)
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, r := range rules {
		if r.Priority == PrioToPod || r.Priority == PrioFromPod {
			out = append(out, fmt.Sprintf("%d %v %v lookup %d", r.Priority, r.Src, r.Dst, r.Table))
		}
	}
	return out
}
