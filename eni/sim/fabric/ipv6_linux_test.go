package fabric

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/veni-cni/veni/eni/sim"
)

// testGW6 is vsw-sim-a's IPv6 gateway, as the metadata's ipv6-gateway
// gives it.
var testGW6 = netip.MustParseAddr("fd00:ac1e:1:0:ffff:ffff:ffff:fffd")

// mustSimOn runs the cloud model with f as its fabric and returns an
// unchanged SDK client talking to it over loopback.
func mustSimOn(t *testing.T, f *Fabric) (*sim.Cloud, *ecs.Client) {
	t.Helper()
	return mustSimWith(t, f, nil)
}

// mustSimWith is mustSimOn with the cloud's config changed by edit first.
func mustSimWith(t *testing.T, f *Fabric, edit func(*sim.Config)) (*sim.Cloud, *ecs.Client) {
	t.Helper()
	cfg := sim.DefaultConfig()
	cfg.AttachDelay, cfg.DetachDelay = 10*time.Millisecond, 10*time.Millisecond
	cfg.Credentials = map[string]string{"LTAIipv6": "ipv6-secret"}
	cfg.Fabric = f
	if edit != nil {
		edit(&cfg)
	}
	cloud, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cloud.Close() })
	srv := httptest.NewServer(cloud.APIHandler())
	t.Cleanup(srv.Close)
	client, err := ecs.NewClientWithAccessKey("cn-hangzhou", "LTAIipv6", "ipv6-secret")
	if err != nil {
		t.Fatal(err)
	}
	client.Domain = strings.TrimPrefix(srv.URL, "http://")
	client.SetNoProxy("127.0.0.1")
	t.Cleanup(client.Shutdown)
	return cloud, client
}

func mustAssignIPv6(t *testing.T, client *ecs.Client, eniID string, count int) []netip.Addr {
	t.Helper()
	req := ecs.CreateAssignIpv6AddressesRequest()
	req.NetworkInterfaceId = eniID
	req.Ipv6AddressCount = requests.NewInteger(count)
	resp, err := client.AssignIpv6Addresses(req)
	if err != nil {
		t.Fatalf("assign %d ipv6 to %s: %v", count, eniID, err)
	}
	var out []netip.Addr
	for _, s := range resp.Ipv6Sets.Ipv6Address {
		out = append(out, netip.MustParseAddr(s))
	}
	if len(out) != count {
		t.Fatalf("assigned %v, want %d addresses", out, count)
	}
	return out
}

// configure6 does what node software does with an ENI's IPv6 address: the
// address (nodad: the VPC, not DAD, keeps addresses unique) with prefix
// length bits on eth0, and a default route via the vSwitch's gateway.
func configure6(t *testing.T, n Node, bits int, addrs ...netip.Addr) {
	t.Helper()
	h := mustHandle(t, n.NetNS)
	eth0, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(bits, 128)}, Flags: unix.IFA_F_NODAD}
		if err := h.AddrAdd(eth0, addr); err != nil {
			t.Fatalf("%s: add %s: %v", n.Name, addr.IPNet, err)
		}
	}
	route := &netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: testGW6.AsSlice(), Family: netlink.FAMILY_V6}
	if bits == 128 {
		route.Flags = int(netlink.FLAG_ONLINK) // the gateway is not in a /128
	}
	if err := h.RouteAdd(route); err != nil {
		t.Fatalf("%s: default route via %s: %v", n.Name, testGW6, err)
	}
}

// ping6 sends ICMPv6 echo requests from src in nsName to dst until one is
// answered or timeout passes (there is no ping binary on every machine).
func ping6(nsName string, src, dst netip.Addr, timeout time.Duration) error {
	var c net.PacketConn
	err := ns.WithNetNSPath(NetNSPath(nsName), func(ns.NetNS) error {
		var err error
		c, err = net.ListenPacket("ip6:ipv6-icmp", src.String())
		return err
	})
	if err != nil {
		return err
	}
	defer c.Close()
	id := uint16(time.Now().UnixNano())
	deadline := time.Now().Add(timeout)
	for seq := uint16(1); time.Now().Before(deadline); seq++ {
		// Type 128 echo request; the kernel fills in the checksum.
		req := []byte{128, 0, 0, 0, 0, 0, 0, 0, 'v', 'e', 'n', 'i'}
		binary.BigEndian.PutUint16(req[4:], id)
		binary.BigEndian.PutUint16(req[6:], seq)
		if _, err := c.WriteTo(req, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
			return err
		}
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		buf := make([]byte, 1500)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				break // timed out: send again
			}
			if n >= 8 && buf[0] == 129 && binary.BigEndian.Uint16(buf[4:]) == id && from.(*net.IPAddr).IP.Equal(dst.AsSlice()) {
				return nil
			}
		}
	}
	return errors.New("no echo reply")
}

// udpSink records the sources of the datagrams it receives.
type udpSink struct {
	addr netip.AddrPort
	from chan netip.Addr
}

func mustUDPSink(t *testing.T, nsName string, addr netip.AddrPort) *udpSink {
	t.Helper()
	var c net.PacketConn
	err := ns.WithNetNSPath(NetNSPath(nsName), func(ns.NetNS) error {
		var err error
		c, err = net.ListenPacket("udp", addr.String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s := &udpSink{addr: addr, from: make(chan netip.Addr, 64)}
	go func() {
		buf := make([]byte, 64)
		for {
			_, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			select {
			case s.from <- from.(*net.UDPAddr).AddrPort().Addr().Unmap():
			default:
			}
		}
	}()
	return s
}

// reaches sends a few datagrams from src in nsName to the sink and reports
// whether one arrived within timeout. One-way, so that a dropped answer
// cannot pass for a dropped request: it shows what the VPC forwards.
func (s *udpSink) reaches(t *testing.T, nsName string, src netip.Addr, timeout time.Duration) bool {
	t.Helper()
	for len(s.from) > 0 {
		<-s.from
	}
	var c *net.UDPConn
	err := ns.WithNetNSPath(NetNSPath(nsName), func(ns.NetNS) error {
		var err error
		c, err = net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), net.UDPAddrFromAddrPort(s.addr))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deadline := time.After(timeout)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		_, _ = c.Write([]byte("veni"))
		select {
		case from := <-s.from:
			if from == src {
				return true
			}
		case <-tick.C:
		case <-deadline:
			return false
		}
	}
}

// Ensure the VPC routes IPv6 to the ENI holding the address and drops
// spoofed IPv6 sources, through the whole chain: the unchanged SDK assigns
// IPv6 addresses in the sim, the sim tells this fabric, nodes configure
// them as node software would, packets follow. node-1 puts its addresses
// in the /64 (peers on-link: proxy NDP answers for them); node-2 uses a
// /128 and reaches everything through the gateway.
func TestFabric_IPv6_RoutedAndAntiSpoofing(t *testing.T) {
	f := mustFabric(t)
	n1 := mustAddNode(t, f, "node-1", "i-1")
	n2 := mustAddNode(t, f, "node-2", "i-2")
	cloud, client := mustSimOn(t, f)
	var insts []sim.Instance
	for _, id := range []string{"i-1", "i-2"} {
		inst, err := cloud.AddInstance(sim.InstanceSpec{ID: id, Type: "ecs.g7.large", VSwitchID: "vsw-sim-a"})
		if err != nil {
			t.Fatal(err)
		}
		insts = append(insts, inst)
	}
	a := mustAssignIPv6(t, client, insts[0].PrimaryENIID, 2) // a[0] used, a[1] unassigned later
	b := mustAssignIPv6(t, client, insts[1].PrimaryENIID, 2) // b[0] used, b[1] spoofed by node-1
	spoof := netip.MustParseAddr("fd00:ac1e:1::99")          // assigned to nobody
	configure6(t, n1, 64, a[0], a[1], b[1], spoof)
	configure6(t, n2, 128, b[0])

	mustServeTCP(t, n2.NetNS, netip.AddrPortFrom(b[0], 7000).String())
	mustServeTCP(t, n1.NetNS, netip.AddrPortFrom(a[1], 7000).String())
	mustServeTCP(t, f.VPCNetNS(), netip.AddrPortFrom(testGW6, 7001).String())

	type step struct {
		name     string
		from     Node
		src, dst netip.Addr
		port     int
		wantOK   bool
	}
	run := func(t *testing.T, steps []step) {
		t.Helper()
		for _, st := range steps {
			t.Run(st.name, func(t *testing.T) {
				timeout := 5 * time.Second // generous on a loaded machine
				if !st.wantOK {
					timeout = 1500 * time.Millisecond
				}
				dst := netip.AddrPortFrom(st.dst, uint16(st.port)).String()
				err := dialFrom(st.from.NetNS, st.src.String(), dst, timeout)
				if st.wantOK && err != nil {
					t.Fatalf("%s -> %s: %v, want connected", st.src, dst, err)
				}
				if !st.wantOK && err == nil {
					t.Fatalf("%s -> %s connected, want dropped", st.src, dst)
				}
			})
		}
	}
	run(t, []step{
		{"on-link peer", n1, a[0], b[0], 7000, true},
		{"peer via gateway", n2, b[0], a[1], 7000, true},
		{"gateway itself", n1, a[0], testGW6, 7001, true},
	})
	sinkB := mustUDPSink(t, n2.NetNS, netip.AddrPortFrom(b[0], 7100))
	sinkA := mustUDPSink(t, n1.NetNS, netip.AddrPortFrom(a[1], 7100))
	oneWay := func(name string, from Node, src netip.Addr, sink *udpSink, want bool) {
		t.Run(name, func(t *testing.T) {
			timeout := 5 * time.Second
			if !want {
				timeout = time.Second
			}
			if got := sink.reaches(t, from.NetNS, src, timeout); got != want {
				t.Fatalf("%s -> %s arrived = %v, want %v", src, sink.addr, got, want)
			}
		})
	}
	oneWay("assigned source arrives", n1, a[0], sinkB, true)
	oneWay("unassigned source dropped", n1, spoof, sinkB, false)
	oneWay("other eni's address dropped", n1, b[1], sinkB, false)
	oneWay("to the address before unassign", n2, b[0], sinkA, true)
	t.Run("ping6", func(t *testing.T) {
		if err := ping6(n1.NetNS, a[0], b[0], 5*time.Second); err != nil {
			t.Fatalf("ping6 %s -> %s: %v", a[0], b[0], err)
		}
		if err := ping6(n2.NetNS, b[0], testGW6, 5*time.Second); err != nil {
			t.Fatalf("ping6 %s -> gateway %s: %v", b[0], testGW6, err)
		}
		if err := ping6(n1.NetNS, spoof, b[0], time.Second); err == nil {
			t.Fatalf("ping6 from unassigned %s answered, want dropped", spoof)
		}
	})

	unassign := ecs.CreateUnassignIpv6AddressesRequest()
	unassign.NetworkInterfaceId = insts[0].PrimaryENIID
	unassign.Ipv6Address = &[]string{a[1].String()}
	if _, err := client.UnassignIpv6Addresses(unassign); err != nil {
		t.Fatal(err)
	}
	oneWay("unassigned address receives nothing", n2, b[0], sinkA, false)
	oneWay("unassigned address sends nothing", n1, a[1], sinkB, false)
	run(t, []step{
		{"assigned address still works", n1, a[0], b[0], 7000, true},
	})
}

// Ensure an ENI's VPC link has proxy entries for its gateway and its
// peers' addresses (not its own), and that detaching an ENI takes its
// source rules and its peers' proxy entries for it along.
func TestFabric_IPv6_ProxiesAndRulesFollowENIs(t *testing.T) {
	f := mustFabric(t)
	mustAddNode(t, f, "node-1", "i-1")
	mustAddNode(t, f, "node-2", "i-2")
	a1, b1 := netip.MustParseAddr("fd00:ac1e:1::a1"), netip.MustParseAddr("fd00:ac1e:1::b1")
	link := func(inst, eniID, macStr, ip string, v6 netip.Addr) sim.ENILink {
		l := primaryLink(t, inst, eniID, macStr, testVswA, ip)
		l.IPs = append(l.IPs, v6)
		l.IPv6CIDR, l.Gateway6 = testVswA6, testGW6
		return l
	}
	mustAttach(t, f, link("i-1", "eni-p1", "00:16:3e:00:01:01", "172.30.1.10", a1))
	mustAttach(t, f, link("i-2", "eni-p2", "00:16:3e:00:02:01", "172.30.1.11", b1))
	vpc := mustHandle(t, f.VPCNetNS())

	proxies := func(eniID string) []string {
		t.Helper()
		l, err := vpc.LinkByName(LinkName(eniID))
		if err != nil {
			t.Fatal(err)
		}
		ns, err := vpc.NeighProxyList(l.Attrs().Index, netlink.FAMILY_V6)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, n := range ns {
			if n.LinkIndex == l.Attrs().Index {
				out = append(out, n.IP.String())
			}
		}
		return out
	}
	srcRules := func(eniID string) []string {
		t.Helper()
		rules, err := vpc.RuleList(netlink.FAMILY_V6)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range rules {
			if r.IifName == LinkName(eniID) && r.Priority == ruleSrcPriority {
				out = append(out, r.Src.String())
			}
		}
		return out
	}
	check := func(what string, got []string, want ...string) {
		t.Helper()
		if fmt.Sprint(sorted(got)) != fmt.Sprint(sorted(want)) {
			t.Fatalf("%s = %v, want %v", what, got, want)
		}
	}
	check("proxies of eni-p1", proxies("eni-p1"), testGW6.String(), b1.String())
	check("proxies of eni-p2", proxies("eni-p2"), testGW6.String(), a1.String())
	check("source rules of eni-p1", srcRules("eni-p1"), a1.String()+"/128")

	if err := f.DetachENI("i-2", "eni-p2"); err != nil {
		t.Fatal(err)
	}
	check("proxies of eni-p1 after eni-p2 left", proxies("eni-p1"), testGW6.String())
	check("source rules of detached eni-p2", srcRules("eni-p2"))
	if err := f.SetENIAddresses("i-1", "eni-p1", []netip.Addr{netip.MustParseAddr("172.30.1.10")}); err != nil {
		t.Fatal(err)
	}
	check("source rules of eni-p1 without ipv6", srcRules("eni-p1"))
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}
