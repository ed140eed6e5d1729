package netplumb

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// A second ENI on another vSwitch, for pods with two interfaces.
var (
	eni2MAC     = net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x02, 0x01}
	eni2CIDR    = netip.MustParsePrefix("10.0.2.0/24")
	eni2GW      = netip.MustParseAddr("10.0.2.253")
	eni2Table   = 1078
	vpcENI2Name = "vpc-eth2"
	podA2       = netip.MustParseAddr("10.0.2.10")
)

// mustSecondENI attaches and ensures a second ENI (eth2, 10.0.2.0/24).
func (t *topology) mustSecondENI(tb testing.TB) ENILink {
	tb.Helper()
	mustNoErr(tb, t.addENILink(vpcENI2Name, "eth2", eni2MAC))
	l, err := linkByName(t.vpcH, vpcENI2Name)
	mustNoErr(tb, err)
	mustAddr(tb, t.vpcH, l, netip.PrefixFrom(eni2GW, 32))
	mustSysctls(tb, t.vpc, [2]string{"net/ipv4/conf/" + vpcENI2Name + "/proxy_arp", "1"})
	eni, err := EnsureENI(tb.Context(), ENIConfig{MAC: eni2MAC, VSwitchCIDR: eni2CIDR, Gateway: eni2GW, MTU: 1400, Table: eni2Table, NetNS: t.node})
	mustNoErr(tb, err)
	return eni
}

// mustAssignOn makes the VPC deliver ip to the ENI behind vpcLink.
func (t *topology) mustAssignOn(tb testing.TB, vpcLink string, mac net.HardwareAddr, ip netip.Addr) {
	tb.Helper()
	l, err := linkByName(t.vpcH, vpcLink)
	mustNoErr(tb, err)
	mustNoErr(tb, t.vpcH.RouteReplace(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: prefixToIPNet(netip.PrefixFrom(ip, 32)), Scope: netlink.SCOPE_LINK}))
	mustNoErr(tb, t.vpcH.NeighSet(&netlink.Neigh{LinkIndex: l.Attrs().Index, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT, IP: ip.AsSlice(), HardwareAddr: mac}))
}

// roundTripFrom is roundTrip from a given source address of the namespace.
func roundTripFrom(path string, src, dst netip.Addr) (string, error) {
	var conn *net.UDPConn
	err := inNetNS(path, func() error {
		var err error
		conn, err = net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, uint16(echoPort))))
		return err
	})
	if err != nil {
		return "", fmt.Errorf("dial %s from %s: %w", dst, src, err)
	}
	defer conn.Close()
	buf := make([]byte, 1500)
	var lastErr error
	for range 10 {
		if _, err := conn.Write([]byte("ping")); err != nil {
			lastErr = err
			time.Sleep(200 * time.Millisecond)
			continue
		}
		_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		n, err := conn.Read(buf)
		if err == nil {
			return string(buf[:n]), nil
		}
		lastErr = err
	}
	return "", fmt.Errorf("no echo from %s to %s: %w", dst, src, lastErr)
}

// A pod with eth0 on one ENI and eth1 (a second network, as Multus adds)
// on another: eth0 owns the default route, eth1 routes its vSwitch and
// answers from its own address through its own ENI, whichever ADD came
// first.
func TestSetupPod_SecondInterface(t *testing.T) {
	for _, order := range [][]string{{"eth0", "eth1"}, {"eth1", "eth0"}} {
		t.Run(order[0]+" first", func(t *testing.T) {
			topo := mustTopology(t)
			topo.mustENI(t)
			eni1 := topo.mustEnsureENI(t)
			eni2 := topo.mustSecondENI(t)
			topo.mustAssign(t, podA)
			topo.mustAssignOn(t, vpcENI2Name, eni2MAC, podA2)
			podNS := mustNetNS(t)
			cfgs := map[string]PodConfig{
				"eth0": {ContainerID: "multi", IfName: "eth0", ContainerNetNS: podNS, IP: podA, ENI: eni1},
				"eth1": {ContainerID: "multi", IfName: "eth1", ContainerNetNS: podNS, IP: podA2, ENI: eni2},
			}
			results := map[string]PodResult{}
			for _, ifName := range order {
				cfg := cfgs[ifName]
				res, err := SetupPod(t.Context(), cfg)
				if err != nil {
					t.Fatalf("SetupPod %s: %v", ifName, err)
				}
				results[ifName] = res
				t.Cleanup(func() { _ = TeardownPod(context.Background(), cfg) })
			}
			wantRoutes := map[string][]netip.Prefix{"eth0": {netip.MustParsePrefix("0.0.0.0/0")}, "eth1": {eni2CIDR}}
			for ifName, res := range results {
				if !slices.Equal(res.Routes, wantRoutes[ifName]) {
					t.Errorf("%s: result routes %v, want %v", ifName, res.Routes, wantRoutes[ifName])
				}
				if err := CheckPod(t.Context(), cfgs[ifName]); err != nil {
					t.Errorf("CheckPod %s: %v", ifName, err)
				}
			}

			mustEchoServer(t, topo.vpc, behindVPC)
			mustEchoServer(t, podNS, podA)
			mustEchoServer(t, podNS, podA2)
			eni1Before := rxPackets(t, topo.vpcH, vpcENIName)
			eni2Before := rxPackets(t, topo.vpcH, vpcENI2Name)
			for _, src := range []netip.Addr{podA, podA2} {
				got, err := roundTripFrom(podNS, src, behindVPC)
				if err != nil || got != "ping from "+src.String() {
					t.Fatalf("pod %s -> %s: %q, %v", src, behindVPC, got, err)
				}
				// And the VPC reaches each address.
				got, err = roundTripFrom(topo.vpc, behindVPC, src)
				if err != nil || got != "ping from "+behindVPC.String() {
					t.Fatalf("vpc -> pod %s: %q, %v", src, got, err)
				}
			}
			if rxPackets(t, topo.vpcH, vpcENIName) == eni1Before || rxPackets(t, topo.vpcH, vpcENI2Name) == eni2Before {
				t.Fatal("traffic did not use both ENIs")
			}

			// Tearing down eth1 alone leaves eth0 working and no rule of
			// eth1 behind in the pod.
			mustNoErr(t, TeardownPod(t.Context(), cfgs["eth1"]))
			podH := mustHandle(t, podNS)
			rules, err := ruleList(podH)
			mustNoErr(t, err)
			for _, r := range rules {
				if r.Priority == PrioPodSource {
					t.Fatalf("pod rule left after eth1's DEL: %s", ruleString(&r))
				}
			}
			if err := CheckPod(t.Context(), cfgs["eth0"]); err != nil {
				t.Fatalf("CheckPod eth0 after eth1's DEL: %v", err)
			}
		})
	}
}

// udpSink collects the source addresses of datagrams sent to addr inside
// the namespace.
func udpSink(tb testing.TB, path string, addr netip.AddrPort) <-chan netip.Addr {
	tb.Helper()
	var conn *net.UDPConn
	mustNoErr(tb, inNetNS(path, func() error {
		var err error
		conn, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(addr))
		return err
	}))
	tb.Cleanup(func() { conn.Close() })
	out := make(chan netip.Addr, 64)
	go func() {
		buf := make([]byte, 1500)
		for {
			_, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			select {
			case out <- from.Addr():
			default:
			}
		}
	}()
	return out
}

// sendFrom sends a few datagrams from src inside the namespace, adding src
// to dev first when the namespace does not have it (how a pod would spoof).
func sendFrom(tb testing.TB, path, dev string, src netip.Addr, dst netip.AddrPort) {
	tb.Helper()
	h := mustHandle(tb, path)
	l, err := linkByName(h, dev)
	mustNoErr(tb, err)
	addrs, err := addrList(h, l)
	mustNoErr(tb, err)
	if !containsAddr(addrs, prefixToIPNet(netip.PrefixFrom(src, 32)).String()) {
		mustNoErr(tb, h.AddrAdd(l, &netlink.Addr{IPNet: prefixToIPNet(netip.PrefixFrom(src, 32))}))
	}
	var conn *net.UDPConn
	mustNoErr(tb, inNetNS(path, func() error {
		var err error
		conn, err = net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), net.UDPAddrFromAddrPort(dst))
		return err
	}))
	defer conn.Close()
	for range 5 {
		_, _ = conn.Write([]byte("spoof?"))
		time.Sleep(20 * time.Millisecond)
	}
}

// A pod that sends with a neighbour's address (or any address not its
// own) is dropped on the node by the host veth's strict rp_filter; its own
// address still passes.
func TestSetupPod_SpoofedSourceDropped(t *testing.T) {
	topo := mustTopology(t)
	topo.mustENI(t)
	eni := topo.mustEnsureENI(t)
	cfgA, _ := topo.mustPod(t, eni, "aaaa", podA)
	topo.mustPod(t, eni, "bbbb", podB)
	unassigned := netip.MustParseAddr("10.0.1.99")
	topo.mustAssign(t, unassigned) // the VPC would even accept it from the ENI
	sink := netip.AddrPortFrom(behindVPC, 7100)
	got := udpSink(t, topo.vpc, sink)

	for _, tc := range []struct {
		name   string
		src    netip.Addr
		wantIn bool
	}{
		{"own address", podA, true},
		{"neighbour's address", podB, false},
		{"another eni address", unassigned, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for len(got) > 0 {
				<-got
			}
			sendFrom(t, cfgA.ContainerNetNS, "eth0", tc.src, sink)
			seen := false
			timeout := time.After(time.Second)
		wait:
			for {
				select {
				case a := <-got:
					if a == tc.src {
						seen = true
						break wait
					}
				case <-timeout:
					break wait
				}
			}
			if seen != tc.wantIn {
				t.Fatalf("datagram from %s reached the vpc: %v, want %v", tc.src, seen, tc.wantIn)
			}
		})
	}
	var rp string
	mustNoErr(t, inNetNS(topo.node, func() error {
		var err error
		rp, err = Sysctl("net/ipv4/conf/" + HostVethName("aaaa", "eth0") + "/rp_filter")
		return err
	}))
	if rp != "1" {
		t.Fatalf("host veth rp_filter = %s, want 1", rp)
	}
}
