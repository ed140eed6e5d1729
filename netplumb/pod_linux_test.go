package netplumb

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/veni-cni/veni/internal/testutil"
)

var (
	podA = netip.MustParseAddr("10.0.1.10")
	podB = netip.MustParseAddr("10.0.1.11")
)

func TestSetupPod_Datapath(t *testing.T) {
	topo := mustTopology(t)
	topo.mustENI(t)
	eni := topo.mustEnsureENI(t)
	cfgA, resA := topo.mustPod(t, eni, "aaaa", podA)
	cfgB, _ := topo.mustPod(t, eni, "bbbb", podB)
	mustEchoServer(t, cfgA.ContainerNetNS, podA)
	mustEchoServer(t, cfgB.ContainerNetNS, podB)
	mustEchoServer(t, topo.vpc, behindVPC)

	t.Run("result", func(t *testing.T) {
		host, err := linkByName(topo.nodeH, HostVethName("aaaa", "eth0"))
		if err != nil {
			t.Fatal(err)
		}
		podH := mustHandle(t, cfgA.ContainerNetNS)
		pod, err := linkByName(podH, "eth0")
		if err != nil {
			t.Fatal(err)
		}
		want := PodResult{
			Host:   Interface{Name: host.Attrs().Name, Index: host.Attrs().Index, MAC: host.Attrs().HardwareAddr},
			Pod:    Interface{Name: "eth0", Index: pod.Attrs().Index, MAC: pod.Attrs().HardwareAddr},
			Routes: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")},
		}
		if fmt.Sprint(resA) != fmt.Sprint(want) {
			t.Fatalf("SetupPod = %+v, want %+v", resA, want)
		}
		if host.Attrs().MTU != eni.MTU || pod.Attrs().MTU != eni.MTU {
			t.Fatalf("veth mtu host %d pod %d, want the ENI's %d", host.Attrs().MTU, pod.Attrs().MTU, eni.MTU)
		}
	})

	t.Run("rules", func(t *testing.T) {
		got := podRuleStrings(t, topo.nodeH)
		want := []string{
			fmt.Sprintf("2048 from %s/32 lookup %d", podA, eni.Table),
			fmt.Sprintf("2048 from %s/32 lookup %d", podB, eni.Table),
			fmt.Sprintf("512 to %s/32 lookup 254", podA),
			fmt.Sprintf("512 to %s/32 lookup 254", podB),
		}
		if !equalStrings(got, want) {
			t.Fatalf("rules = %q, want %q", got, want)
		}
	})

	t.Run("pod routes and neighbour", func(t *testing.T) {
		podH := mustHandle(t, cfgA.ContainerNetNS)
		got := tableRoutes(t, podH, unix.RT_TABLE_MAIN)
		idx := resA.Pod.Index
		want := []string{
			fmt.Sprintf("0.0.0.0/0 via 169.254.1.1 dev %d scope 0", idx),
			fmt.Sprintf("169.254.1.1/32 dev %d scope %d", idx, netlink.SCOPE_LINK),
		}
		if !equalStrings(got, want) {
			t.Fatalf("pod routes = %q, want %q", got, want)
		}
		neighs, err := neighList(podH, idx, netlink.FAMILY_V4)
		if err != nil {
			t.Fatal(err)
		}
		if len(neighs) != 1 || neighs[0].State != netlink.NUD_PERMANENT || neighs[0].HardwareAddr.String() != resA.Host.MAC.String() {
			t.Fatalf("pod neighbours = %+v, want 169.254.1.1 permanent at %s", neighs, resA.Host.MAC)
		}
	})

	t.Run("host routes", func(t *testing.T) {
		got := tableRoutes(t, topo.nodeH, unix.RT_TABLE_MAIN)
		for _, want := range []string{
			fmt.Sprintf("%s/32 dev %d scope %d", podA, resA.Host.Index, netlink.SCOPE_LINK),
		} {
			if !containsString(got, want) {
				t.Fatalf("main table %q lacks %q", got, want)
			}
		}
	})

	t.Run("pod to pod on the node", func(t *testing.T) {
		mustRoundTrip(t, cfgA.ContainerNetNS, podA, podB)
	})

	t.Run("pod to the vpc leaves through its ENI", func(t *testing.T) {
		eniBefore := rxPackets(t, topo.vpcH, vpcENIName)
		primBefore := rxPackets(t, topo.vpcH, vpcPrimName)
		const n = 5
		for range n {
			mustRoundTrip(t, cfgA.ContainerNetNS, podA, behindVPC)
		}
		eniDelta := rxPackets(t, topo.vpcH, vpcENIName) - eniBefore
		primDelta := rxPackets(t, topo.vpcH, vpcPrimName) - primBefore
		if eniDelta < n || primDelta >= n {
			t.Fatalf("vpc received %d packets from the ENI and %d from eth0, want >= %d and < %d", eniDelta, primDelta, n, n)
		}
		// The replies reached the pod through the VPC's permanent
		// neighbour entry: the node answers no ARP for pod addresses
		// (no proxy_arp, arp_ignore=1), and the VPC asked for none.
		vpcENI, err := linkByName(topo.vpcH, vpcENIName)
		mustNoErr(t, err)
		neighs, err := neighList(topo.vpcH, vpcENI.Attrs().Index, netlink.FAMILY_V4)
		mustNoErr(t, err)
		for _, nb := range neighs {
			if nb.IP.Equal(podA.AsSlice()) && nb.State != netlink.NUD_PERMANENT {
				t.Fatalf("vpc neighbour of %s is %+v, want only the permanent entry", podA, nb)
			}
		}
	})

	t.Run("strict rp_filter on the node", func(t *testing.T) {
		// conf/all is the node owner's; pod traffic must survive strict
		// mode because the reverse-path lookup hits the pod's from-rule.
		mustSysctls(t, topo.node, [2]string{"net/ipv4/conf/all/rp_filter", "1"})
		t.Cleanup(func() { mustSysctls(t, topo.node, [2]string{"net/ipv4/conf/all/rp_filter", "0"}) })
		mustRoundTrip(t, cfgA.ContainerNetNS, podA, behindVPC)
		mustRoundTrip(t, cfgB.ContainerNetNS, podB, podA)
	})

	t.Run("check passes", func(t *testing.T) {
		for _, cfg := range []PodConfig{cfgA, cfgB} {
			if err := CheckPod(t.Context(), cfg); err != nil {
				t.Fatalf("CheckPod %s: %v", cfg.ContainerID, err)
			}
		}
	})
}

func TestSetupPod_InterfaceExists(t *testing.T) {
	topo := mustTopology(t)
	topo.mustENI(t)
	eni := topo.mustEnsureENI(t)
	cfg, _ := topo.mustPod(t, eni, "aaaa", podA)

	tests := []struct {
		name   string
		mutate func(*PodConfig)
	}{
		{name: "same attachment again", mutate: func(*PodConfig) {}},
		{name: "another container, same netns and ifname", mutate: func(c *PodConfig) { c.ContainerID = "cccc"; c.IP = podB }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			again := cfg
			tt.mutate(&again)
			_, err := SetupPod(t.Context(), again)
			if !errors.Is(err, ErrPodInterfaceExists) {
				t.Fatalf("SetupPod = %v, want ErrPodInterfaceExists", err)
			}
			if err := CheckPod(t.Context(), cfg); err != nil {
				t.Fatalf("the failed ADD damaged the first pod: %v", err)
			}
			if _, err := linkByName(topo.nodeH, HostVethName("cccc", "eth0")); !errors.Is(err, ErrLinkNotFound) {
				t.Fatalf("failed ADD left a host veth: %v", err)
			}
		})
	}
}

func TestSetupPod_ReplacesLeftoverHostVeth(t *testing.T) {
	topo := mustTopology(t)
	topo.mustENI(t)
	eni := topo.mustEnsureENI(t)
	// A leftover host veth with the name this attachment derives, its
	// peer in some other namespace: SetupPod must replace it.
	stray := mustNetNS(t)
	strayNS, err := openNSHandle(stray)
	if err != nil {
		t.Fatal(err)
	}
	defer strayNS.Close()
	old := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: HostVethName("aaaa", "eth0")},
		PeerName:      "eth0",
		PeerNamespace: netlink.NsFd(int(strayNS)),
	}
	if err := topo.nodeH.LinkAdd(old); err != nil {
		t.Fatal(err)
	}
	cfg, _ := topo.mustPod(t, eni, "aaaa", podA)
	if err := CheckPod(t.Context(), cfg); err != nil {
		t.Fatalf("CheckPod: %v", err)
	}
}

func TestTeardownPod_Idempotent(t *testing.T) {
	tests := []struct {
		name   string
		before func(t *testing.T, cfg *PodConfig)
	}{
		{name: "twice", before: func(*testing.T, *PodConfig) {}},
		{name: "netns unmounted", before: func(t *testing.T, cfg *PodConfig) {
			// Destroying the namespace takes the veth pair with it; the
			// runtime then sends DEL with the stale path.
			mustNoErr(t, unix.Unmount(cfg.ContainerNetNS, unix.MNT_DETACH))
		}},
		{name: "netns removed", before: func(t *testing.T, cfg *PodConfig) {
			mustNoErr(t, netns.DeleteNamed(filepath.Base(cfg.ContainerNetNS)))
		}},
		{name: "no netns path", before: func(_ *testing.T, cfg *PodConfig) { cfg.ContainerNetNS = "" }},
		{name: "address unknown", before: func(_ *testing.T, cfg *PodConfig) { cfg.IP = netip.Addr{} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			topo := mustTopology(t)
			topo.mustENI(t)
			eni := topo.mustEnsureENI(t)
			podNS := mustDisposableNetNS(t)
			cfg := PodConfig{ContainerID: "aaaa", IfName: "eth0", ContainerNetNS: podNS, IP: podA, ENI: eni}
			if _, err := SetupPod(t.Context(), cfg); err != nil {
				t.Fatal(err)
			}
			del := cfg
			tt.before(t, &del)
			for i := range 2 {
				if err := TeardownPod(t.Context(), del); err != nil {
					t.Fatalf("TeardownPod run %d: %v", i, err)
				}
			}
			assertPodGone(t, topo, cfg)
		})
	}
}

func TestTeardownPod_AddressReused(t *testing.T) {
	topo := mustTopology(t)
	topo.mustENI(t)
	eni := topo.mustEnsureENI(t)
	oldCfg, _ := topo.mustPod(t, eni, "old", podA)
	// The IP went back to the pool and to a new pod before the old pod's
	// last DEL arrived.
	newCfg, _ := topo.mustPod(t, eni, "new", podA)
	if err := TeardownPod(t.Context(), oldCfg); err != nil {
		t.Fatal(err)
	}
	if err := CheckPod(t.Context(), newCfg); err != nil {
		t.Fatalf("late DEL of the old pod broke the new one: %v", err)
	}
	mustEchoServer(t, topo.vpc, behindVPC)
	mustRoundTrip(t, newCfg.ContainerNetNS, podA, behindVPC)
}

func TestCheckPod_DetectsMissing(t *testing.T) {
	topo := mustTopology(t)
	topo.mustENI(t)
	eni := topo.mustEnsureENI(t)
	tests := []struct {
		name    string
		break_  func(t *testing.T, cfg PodConfig, res PodResult)
		wantErr error
	}{
		{name: "host route", wantErr: ErrHostRouteMissing, break_: func(t *testing.T, cfg PodConfig, res PodResult) {
			mustNoErr(t, topo.nodeH.RouteDel(hostRoute(res.Host.Index, cfg.IP)))
		}},
		{name: "from rule", wantErr: ErrRuleMissing, break_: func(t *testing.T, cfg PodConfig, _ PodResult) {
			mustNoErr(t, topo.nodeH.RuleDel(podRules(cfg.IP, cfg.ENI.Table)[1]))
		}},
		{name: "to rule", wantErr: ErrRuleMissing, break_: func(t *testing.T, cfg PodConfig, _ PodResult) {
			mustNoErr(t, topo.nodeH.RuleDel(podRules(cfg.IP, cfg.ENI.Table)[0]))
		}},
		{name: "pod default route", wantErr: ErrPodRouteMissing, break_: func(t *testing.T, cfg PodConfig, res PodResult) {
			h := mustHandle(t, cfg.ContainerNetNS)
			mustNoErr(t, h.RouteDel(&netlink.Route{LinkIndex: res.Pod.Index, Gw: PodGateway.AsSlice()}))
		}},
		{name: "pod neighbour", wantErr: ErrPodNeighborMissing, break_: func(t *testing.T, cfg PodConfig, res PodResult) {
			h := mustHandle(t, cfg.ContainerNetNS)
			mustNoErr(t, h.NeighDel(&netlink.Neigh{LinkIndex: res.Pod.Index, Family: netlink.FAMILY_V4, IP: PodGateway.AsSlice()}))
		}},
		{name: "pod address", wantErr: ErrPodAddressMissing, break_: func(t *testing.T, cfg PodConfig, res PodResult) {
			h := mustHandle(t, cfg.ContainerNetNS)
			l, err := h.LinkByIndex(res.Pod.Index)
			mustNoErr(t, err)
			mustNoErr(t, h.AddrDel(l, &netlink.Addr{IPNet: prefixToIPNet(netip.PrefixFrom(cfg.IP, 32))}))
		}},
		{name: "host veth", wantErr: ErrHostVethMissing, break_: func(t *testing.T, _ PodConfig, res PodResult) {
			l, err := topo.nodeH.LinkByIndex(res.Host.Index)
			mustNoErr(t, err)
			mustNoErr(t, topo.nodeH.LinkDel(l))
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ip := netip.AddrFrom4([4]byte{10, 0, 1, byte(100 + i)})
			cfg, res := topo.mustPod(t, eni, fmt.Sprintf("check%d", i), ip)
			if err := CheckPod(t.Context(), cfg); err != nil {
				t.Fatalf("CheckPod before breaking: %v", err)
			}
			tt.break_(t, cfg, res)
			if err := CheckPod(t.Context(), cfg); !errors.Is(err, tt.wantErr) {
				t.Fatalf("CheckPod = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestSetupPod_MissingNetNS(t *testing.T) {
	testutil.RequireRoot(t)
	topo := mustTopology(t)
	topo.mustENI(t)
	eni := topo.mustEnsureENI(t)
	cfg := PodConfig{ContainerID: "aaaa", IfName: "eth0", ContainerNetNS: "/run/netns/veni-does-not-exist", IP: podA, ENI: eni}
	if _, err := SetupPod(t.Context(), cfg); !errors.Is(err, ErrNetNSNotFound) {
		t.Fatalf("SetupPod = %v, want ErrNetNSNotFound", err)
	}
	if err := CheckPod(t.Context(), cfg); !errors.Is(err, ErrNetNSNotFound) {
		t.Fatalf("CheckPod = %v, want ErrNetNSNotFound", err)
	}
}

// assertPodGone fails unless no link, route or rule of the pod remains.
func assertPodGone(t *testing.T, topo *topology, cfg PodConfig) {
	t.Helper()
	if _, err := linkByName(topo.nodeH, HostVethName(cfg.ContainerID, cfg.IfName)); !errors.Is(err, ErrLinkNotFound) {
		t.Fatalf("host veth still there: %v", err)
	}
	if rules := podRuleStrings(t, topo.nodeH); len(rules) != 0 {
		t.Fatalf("pod rules left: %q", rules)
	}
	for _, r := range tableRoutes(t, topo.nodeH, unix.RT_TABLE_MAIN) {
		if r[:len(cfg.IP.String())+3] == cfg.IP.String()+"/32" {
			t.Fatalf("pod route left: %q", r)
		}
	}
	if _, err := openHandle(cfg.ContainerNetNS); err == nil {
		h := mustHandle(t, cfg.ContainerNetNS)
		if _, err := linkByName(h, cfg.IfName); !errors.Is(err, ErrLinkNotFound) {
			t.Fatalf("pod interface still there: %v", err)
		}
	}
}

// podRuleStrings lists the node's rules at veni's priorities as
// "prio from|to prefix lookup table", sorted.
func podRuleStrings(tb testing.TB, h *netlink.Handle) []string {
	tb.Helper()
	rules, err := ruleList(h)
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, r := range rules {
		if r.Priority != PrioToPod && r.Priority != PrioFromPod {
			continue
		}
		s := fmt.Sprint(r.Priority)
		if r.Src != nil {
			s += " from " + r.Src.String()
		}
		if r.Dst != nil {
			s += " to " + r.Dst.String()
		}
		out = append(out, s+fmt.Sprintf(" lookup %d", r.Table))
	}
	sort.Strings(out)
	return out
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func mustNoErr(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

func TestSetupPod_UndoOnFailure(t *testing.T) {
	topo := mustTopology(t)
	topo.mustENI(t)
	eni := topo.mustEnsureENI(t)
	// A pod namespace that already has a default route (another network
	// plumbed it first): adding ours fails after the veth exists.
	podNS := mustNetNS(t)
	podH := mustHandle(t, podNS)
	other := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "net1"}, PeerName: "net1peer"}
	mustNoErr(t, podH.LinkAdd(other))
	mustNoErr(t, podH.LinkSetUp(other))
	mustAddr(t, podH, other, netip.MustParsePrefix("192.168.7.2/24"))
	mustNoErr(t, podH.RouteAdd(&netlink.Route{LinkIndex: other.Attrs().Index, Gw: netip.MustParseAddr("192.168.7.1").AsSlice()}))

	cfg := PodConfig{ContainerID: "aaaa", IfName: "eth0", ContainerNetNS: podNS, IP: podA, ENI: eni}
	if _, err := SetupPod(t.Context(), cfg); err == nil {
		t.Fatal("SetupPod succeeded over an existing default route")
	}
	assertPodGone(t, topo, cfg)
}

// CHECK also verifies the ENI side a pod depends on: its table and the
// pod's "from" rule into it.
func TestCheckPod_ENISide(t *testing.T) {
	tests := []struct {
		name    string
		break_  func(t *testing.T, topo *topology, cfg PodConfig)
		wantErr error
		wantMsg string
	}{
		{name: "subnet route", wantErr: ErrENIRouteMissing, wantMsg: "10.0.1.0/24", break_: func(t *testing.T, topo *topology, cfg PodConfig) {
			mustNoErr(t, topo.nodeH.RouteDel(&netlink.Route{LinkIndex: cfg.ENI.Index, Dst: prefixToIPNet(eniCIDR), Scope: netlink.SCOPE_LINK, Table: cfg.ENI.Table}))
		}},
		{name: "default route", wantErr: ErrENIRouteMissing, wantMsg: "default via 10.0.1.253", break_: func(t *testing.T, topo *topology, cfg PodConfig) {
			mustNoErr(t, topo.nodeH.RouteDel(&netlink.Route{LinkIndex: cfg.ENI.Index, Dst: prefixToIPNet(netip.MustParsePrefix("0.0.0.0/0")), Gw: eniGW.AsSlice(), Table: cfg.ENI.Table}))
		}},
		{name: "from rule into another table", wantErr: ErrRuleMissing, wantMsg: fmt.Sprintf("lookup %d", eniTable), break_: func(t *testing.T, topo *topology, cfg PodConfig) {
			rules, err := ruleList(topo.nodeH)
			mustNoErr(t, err)
			_, err = ensureRule(topo.nodeH, rules, podRules(cfg.IP, 4242)[1])
			mustNoErr(t, err)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			topo := mustTopology(t)
			topo.mustENI(t)
			eni := topo.mustEnsureENI(t)
			cfg, _ := topo.mustPod(t, eni, "aaaa", podA)
			if err := CheckPod(t.Context(), cfg); err != nil {
				t.Fatalf("CheckPod before breaking: %v", err)
			}
			tt.break_(t, topo, cfg)
			err := CheckPod(t.Context(), cfg)
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("CheckPod = %v, want %v naming %q", err, tt.wantErr, tt.wantMsg)
			}
			// EnsureENI (the next ADD, the daemon's pass) repairs the table.
			if tt.wantErr == ErrENIRouteMissing {
				topo.mustEnsureENI(t)
				if err := CheckPod(t.Context(), cfg); err != nil {
					t.Fatalf("CheckPod after EnsureENI: %v", err)
				}
			}
		})
	}
}

func TestSetupPod_MTU(t *testing.T) {
	topo := mustTopology(t)
	topo.mustENI(t)
	eni := topo.mustEnsureENI(t) // mtu 1400
	tests := []struct {
		name    string
		mtu     int
		wantMTU int
		wantErr error
	}{
		{name: "the eni's", mtu: 0, wantMTU: 1400},
		{name: "smaller", mtu: 1300, wantMTU: 1300},
		{name: "larger is refused", mtu: 9000, wantErr: ErrMTU},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ip := netip.AddrFrom4([4]byte{10, 0, 1, byte(50 + i)})
			cfg := PodConfig{ContainerID: fmt.Sprintf("mtu%d", i), IfName: "eth0", ContainerNetNS: mustNetNS(t), IP: ip, ENI: eni, MTU: tt.mtu}
			res, err := SetupPod(t.Context(), cfg)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), "9000") || !strings.Contains(err.Error(), "1400") {
					t.Fatalf("SetupPod = %v, want %v naming 9000 and 1400", err, tt.wantErr)
				}
				assertPodGone(t, topo, cfg)
				return
			}
			mustNoErr(t, err)
			t.Cleanup(func() { _ = TeardownPod(context.Background(), cfg) })
			host, err := topo.nodeH.LinkByIndex(res.Host.Index)
			mustNoErr(t, err)
			pod, err := mustHandle(t, cfg.ContainerNetNS).LinkByIndex(res.Pod.Index)
			mustNoErr(t, err)
			if host.Attrs().MTU != tt.wantMTU || pod.Attrs().MTU != tt.wantMTU {
				t.Fatalf("mtu host %d pod %d, want %d", host.Attrs().MTU, pod.Attrs().MTU, tt.wantMTU)
			}
		})
	}
}

// Ensure BeforeUp runs with the host end of a pair whose ends are both
// still down (the pod cannot send yet), and that its error fails the setup
// and leaves nothing behind.
func TestSetupPod_BeforeUp(t *testing.T) {
	topo := mustTopology(t)
	topo.mustENI(t)
	eni := topo.mustEnsureENI(t)
	podNS := mustNetNS(t)
	podH := mustHandle(t, podNS)
	var seen Interface
	cfg := PodConfig{ContainerID: "bbbb", IfName: "eth0", ContainerNetNS: podNS, IP: podA, ENI: eni,
		BeforeUp: func(host Interface) error {
			seen = host
			hl, err := topo.nodeH.LinkByIndex(host.Index)
			if err != nil {
				return err
			}
			pl, err := podH.LinkByName("eth0")
			if err != nil {
				return err
			}
			if hl.Attrs().Flags&unix.IFF_UP != 0 || pl.Attrs().Flags&unix.IFF_UP != 0 {
				t.Errorf("BeforeUp: host up %t, pod up %t; want both down",
					hl.Attrs().Flags&unix.IFF_UP != 0, pl.Attrs().Flags&unix.IFF_UP != 0)
			}
			return nil
		}}
	res, err := SetupPod(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if seen.Index == 0 || seen.Index != res.Host.Index || seen.Name != res.Host.Name {
		t.Errorf("BeforeUp saw %+v, SetupPod made %+v", seen, res.Host)
	}
	mustNoErr(t, TeardownPod(t.Context(), cfg))

	podNS2 := mustNetNS(t)
	failing := PodConfig{ContainerID: "cccc", IfName: "eth0", ContainerNetNS: podNS2, IP: podB, ENI: eni,
		BeforeUp: func(Interface) error { return errors.New("policy enforcer refused") }}
	if _, err := SetupPod(t.Context(), failing); err == nil || !strings.Contains(err.Error(), "policy enforcer refused") {
		t.Fatalf("SetupPod with a failing BeforeUp: %v", err)
	}
	assertPodGone(t, topo, failing)
}
