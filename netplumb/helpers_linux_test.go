package netplumb

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/veni-cni/veni/internal/testutil"
)

// The test VPC: the node's primary ENI (eth0) is on 10.0.0.0/24, the
// secondary ENI under test (eth1) on 10.0.1.0/24, and 10.0.9.9 stands for
// an address behind the VPC router. Every address lives in namespaces the
// test creates; nothing is routed out of them.
var (
	primaryMAC  = net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x00, 0x10}
	eniMAC      = net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x01, 0x01}
	nodeIP      = netip.MustParsePrefix("10.0.0.10/24")
	primaryGW   = netip.MustParsePrefix("10.0.0.253/24")
	eniCIDR     = netip.MustParsePrefix("10.0.1.0/24")
	eniGW       = netip.MustParseAddr("10.0.1.253")
	behindVPC   = netip.MustParseAddr("10.0.9.9")
	echoPort    = 7007
	vpcENIName  = "vpc-eth1"
	vpcPrimName = "vpc-eth0"
	eniTable    = 1077
)

// topology is a node and a VPC namespace wired like the simulated VPC: each
// ENI is a veth pair, node end in the node, VPC end in the VPC.
type topology struct {
	node, vpc   string // netns paths
	nodeH, vpcH *netlink.Handle
}

func nsPath(name string) string { return filepath.Join("/run/netns", name) }

func mustHandle(tb testing.TB, path string) *netlink.Handle {
	tb.Helper()
	h, err := openHandle(path)
	if err != nil {
		tb.Fatalf("netlink handle in %s: %v", path, err)
	}
	tb.Cleanup(h.Close)
	return h
}

func mustSysctls(tb testing.TB, path string, kv ...[2]string) {
	tb.Helper()
	if err := inNetNS(path, func() error { return setSysctls(kv...) }); err != nil {
		tb.Fatalf("sysctls in %s: %v", path, err)
	}
}

func mustNetNS(tb testing.TB) string {
	tb.Helper()
	name, _ := testutil.NewNetNS(tb)
	path := nsPath(name)
	// IPv6 autoconfiguration chatter would blur the packet counters.
	mustSysctls(tb, path, [2]string{"net/ipv6/conf/all/disable_ipv6", "1"}, [2]string{"net/ipv6/conf/default/disable_ipv6", "1"})
	h := mustHandle(tb, path)
	lo, err := linkByName(h, "lo")
	if err != nil {
		tb.Fatal(err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		tb.Fatalf("lo up: %v", err)
	}
	return path
}

// mustDisposableNetNS is a pod namespace the test itself may unmount or
// delete, the way a runtime destroys a sandbox; cleanup removes whatever is
// left. (testutil.NewNetNS fails its cleanup on a namespace already gone.)
func mustDisposableNetNS(tb testing.TB) string {
	tb.Helper()
	testutil.RequireRoot(tb)
	name := fmt.Sprintf("vtest-pod-%d-%d", os.Getpid(), time.Now().UnixNano()%1e9)
	err := func() error {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		orig, err := netns.Get()
		if err != nil {
			return err
		}
		defer orig.Close()
		h, err := netns.NewNamed(name)
		if err != nil {
			return err
		}
		h.Close()
		if err := netns.Set(orig); err != nil {
			panic(fmt.Sprintf("cannot restore netns after creating %s: %v", name, err))
		}
		return nil
	}()
	if err != nil {
		tb.Fatalf("create netns %s: %v", name, err)
	}
	path := nsPath(name)
	tb.Cleanup(func() {
		_ = unix.Unmount(path, unix.MNT_DETACH)
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			tb.Errorf("remove %s: %v", path, err)
		}
	})
	return path
}

// mustTopology builds the node and VPC namespaces with the primary ENI
// configured (node IP and default route, as on a real node) and the VPC
// answering on the gateways and on behindVPC. The secondary ENI is added by
// addENI.
func mustTopology(tb testing.TB) *topology {
	tb.Helper()
	t := &topology{node: mustNetNS(tb), vpc: mustNetNS(tb)}
	t.nodeH = mustHandle(tb, t.node)
	t.vpcH = mustHandle(tb, t.vpc)
	mustSysctls(tb, t.vpc, [2]string{"net/ipv4/conf/all/rp_filter", "0"}, [2]string{"net/ipv4/conf/default/rp_filter", "0"})

	lo, err := linkByName(t.vpcH, "lo")
	if err != nil {
		tb.Fatal(err)
	}
	mustAddr(tb, t.vpcH, lo, netip.PrefixFrom(behindVPC, 32))

	if err := t.addENILink(vpcPrimName, "eth0", primaryMAC); err != nil {
		tb.Fatal(err)
	}
	vpcPrim, err := linkByName(t.vpcH, vpcPrimName)
	if err != nil {
		tb.Fatal(err)
	}
	mustAddr(tb, t.vpcH, vpcPrim, primaryGW)
	eth0, err := linkByName(t.nodeH, "eth0")
	if err != nil {
		tb.Fatal(err)
	}
	mustAddr(tb, t.nodeH, eth0, nodeIP)
	if err := t.nodeH.LinkSetUp(eth0); err != nil {
		tb.Fatal(err)
	}
	def := &netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: primaryGW.Addr().AsSlice()}
	if err := t.nodeH.RouteAdd(def); err != nil {
		tb.Fatalf("node default route: %v", err)
	}
	return t
}

// addENILink creates an ENI the way the fabric attaches one: a veth pair
// whose node end has the ENI's MAC and is left down and unconfigured. It
// opens its own handle so it can run on another goroutine.
func (t *topology) addENILink(vpcName, nodeName string, mac net.HardwareAddr) error {
	vpcH, err := openHandle(t.vpc)
	if err != nil {
		return err
	}
	defer vpcH.Close()
	nodeNS, err := openNSHandle(t.node)
	if err != nil {
		return err
	}
	defer nodeNS.Close()
	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: vpcName},
		PeerName:         nodeName,
		PeerHardwareAddr: mac,
		PeerNamespace:    netlink.NsFd(int(nodeNS)),
	}
	if err := vpcH.LinkAdd(veth); err != nil {
		return fmt.Errorf("add eni veth %s: %w", vpcName, err)
	}
	if err := vpcH.LinkSetUp(veth); err != nil {
		return fmt.Errorf("set %s up: %w", vpcName, err)
	}
	return nil
}

// mustENI adds the secondary ENI and its VPC side: the gateway address and
// proxy_arp (the VPC answers the node's ARP for its gateway), like the
// simulated VPC.
func (t *topology) mustENI(tb testing.TB) {
	tb.Helper()
	if err := t.addENILink(vpcENIName, "eth1", eniMAC); err != nil {
		tb.Fatal(err)
	}
	t.mustVPCSide(tb)
}

func (t *topology) mustVPCSide(tb testing.TB) {
	tb.Helper()
	l, err := linkByName(t.vpcH, vpcENIName)
	if err != nil {
		tb.Fatal(err)
	}
	mustAddr(tb, t.vpcH, l, netip.PrefixFrom(eniGW, 32))
	mustSysctls(tb, t.vpc, [2]string{"net/ipv4/conf/" + vpcENIName + "/proxy_arp", "1"})
}

// mustAssign makes the VPC deliver ip to the ENI, as the simulated VPC's
// SetENIAddresses does: a /32 route and a permanent neighbour entry with
// the ENI's MAC, so the VPC never ARPs toward the node.
func (t *topology) mustAssign(tb testing.TB, ip netip.Addr) {
	tb.Helper()
	l, err := linkByName(t.vpcH, vpcENIName)
	if err != nil {
		tb.Fatal(err)
	}
	r := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: prefixToIPNet(netip.PrefixFrom(ip, 32)), Scope: netlink.SCOPE_LINK}
	if err := t.vpcH.RouteReplace(r); err != nil {
		tb.Fatalf("vpc route %s: %v", ip, err)
	}
	n := &netlink.Neigh{LinkIndex: l.Attrs().Index, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT, IP: ip.AsSlice(), HardwareAddr: eniMAC}
	if err := t.vpcH.NeighSet(n); err != nil {
		tb.Fatalf("vpc neighbour %s: %v", ip, err)
	}
}

func (t *topology) eniConfig() ENIConfig {
	return ENIConfig{MAC: eniMAC, VSwitchCIDR: eniCIDR, Gateway: eniGW, MTU: 1400, Table: eniTable, NetNS: t.node}
}

func (t *topology) mustEnsureENI(tb testing.TB) ENILink {
	tb.Helper()
	ctx, cancel := context.WithTimeout(tb.Context(), 5*time.Second)
	defer cancel()
	eni, err := EnsureENI(ctx, t.eniConfig())
	if err != nil {
		tb.Fatalf("EnsureENI: %v", err)
	}
	return eni
}

func mustAddr(tb testing.TB, h *netlink.Handle, l netlink.Link, p netip.Prefix) {
	tb.Helper()
	if err := h.AddrAdd(l, &netlink.Addr{IPNet: prefixToIPNet(p)}); err != nil {
		tb.Fatalf("add %s to %s: %v", p, l.Attrs().Name, err)
	}
}

func rxPackets(tb testing.TB, h *netlink.Handle, name string) uint64 {
	tb.Helper()
	l, err := linkByName(h, name)
	if err != nil {
		tb.Fatal(err)
	}
	return l.Attrs().Statistics.RxPackets
}

// mustEchoServer answers UDP datagrams on addr inside the namespace. The
// socket is made inside Do (so it belongs to the namespace); the goroutine
// serving it starts outside Do, which a socket does not mind.
func mustEchoServer(tb testing.TB, path string, addr netip.Addr) {
	tb.Helper()
	var conn *net.UDPConn
	err := inNetNS(path, func() error {
		var err error
		conn, err = net.ListenUDP(udpNet(addr), net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, uint16(echoPort))))
		return err
	})
	if err != nil {
		tb.Fatalf("echo server on %s: %v", addr, err)
	}
	tb.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			// Echo the sender's address so the client sees it was not
			// rewritten on the way.
			reply := append(buf[:n:n], []byte(" from "+from.Addr().String())...)
			_, _ = conn.WriteToUDPAddrPort(reply, from)
		}
	}()
}

// udpNet is "udp4" or "udp6", by a's family.
func udpNet(a netip.Addr) string {
	if a.Is4() {
		return "udp4"
	}
	return "udp6"
}

// roundTrip sends a datagram from the namespace to dst's echo server and
// waits for the answer, retrying while the first packets wait for ARP. It
// returns the source address the server saw.
func roundTrip(path string, dst netip.Addr) (string, error) {
	var conn *net.UDPConn
	err := inNetNS(path, func() error {
		var err error
		conn, err = net.DialUDP(udpNet(dst), nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, uint16(echoPort))))
		return err
	})
	if err != nil {
		return "", fmt.Errorf("dial %s: %w", dst, err)
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
	return "", fmt.Errorf("no echo from %s: %w", dst, lastErr)
}

// mustPod creates a pod namespace, lets the VPC route ip to the ENI and
// plumbs the pod. The pod is torn down at cleanup.
func (t *topology) mustPod(tb testing.TB, eni ENILink, id string, ip netip.Addr) (PodConfig, PodResult) {
	tb.Helper()
	t.mustAssign(tb, ip)
	cfg := PodConfig{ContainerID: id, IfName: "eth0", ContainerNetNS: mustNetNS(tb), IP: ip, ENI: eni}
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

func mustRoundTrip(tb testing.TB, path string, src, dst netip.Addr) {
	tb.Helper()
	got, err := roundTrip(path, dst)
	if err != nil {
		tb.Fatalf("%s -> %s: %v", src, dst, err)
	}
	if want := "ping from " + src.String(); got != want {
		tb.Fatalf("%s -> %s: echo %q, want %q", src, dst, got, want)
	}
}
