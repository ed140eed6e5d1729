package fabric

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/veni-cni/veni/eni/sim"
	"github.com/veni-cni/veni/internal/testutil"
)

var (
	testVPC  = netip.MustParsePrefix("172.30.0.0/16")
	testVswA = netip.MustParsePrefix("172.30.1.0/24")
	testVswB = netip.MustParsePrefix("172.30.2.0/24")
	// testVswA6 is vsw-sim-a's IPv6 block in sim.DefaultConfig.
	testVswA6 = netip.MustParsePrefix("fd00:ac1e:1::/64")
)

// mustFabric builds a fabric under a unique name, torn down (and checked to
// leave nothing behind) when the test ends, even when it fails.
func mustFabric(tb testing.TB) *Fabric {
	tb.Helper()
	testutil.RequireRoot(tb)
	var b [3]byte
	_, _ = rand.Read(b[:])
	name := "vt-" + hex.EncodeToString(b[:])
	f, err := New(Options{Name: name, VPCCIDR: testVPC, VSwitches: []netip.Prefix{testVswA, testVswB}, IPv6CIDRs: []netip.Prefix{testVswA6}})
	if err != nil {
		_ = Cleanup(name)
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() {
		if err := f.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
		_ = Cleanup(name)
	})
	return f
}

func mustAddNode(tb testing.TB, f *Fabric, name, instanceID string) Node {
	tb.Helper()
	n, err := f.AddNode(name, instanceID)
	if err != nil {
		tb.Fatalf("AddNode(%s): %v", name, err)
	}
	return n
}

func mustAttach(tb testing.TB, f *Fabric, l sim.ENILink) {
	tb.Helper()
	if err := f.AttachENI(l); err != nil {
		tb.Fatalf("AttachENI(%s): %v", l.ENIID, err)
	}
}

// mustHandle opens a netlink handle in the named namespace.
func mustHandle(tb testing.TB, nsName string) *netlink.Handle {
	tb.Helper()
	nsh, err := netns.GetFromPath(NetNSPath(nsName))
	if err != nil {
		tb.Fatalf("open netns %s: %v", nsName, err)
	}
	defer nsh.Close()
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		tb.Fatalf("netlink handle in %s: %v", nsName, err)
	}
	tb.Cleanup(h.Close)
	return h
}

func mac(tb testing.TB, s string) net.HardwareAddr {
	tb.Helper()
	m, err := net.ParseMAC(s)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func primaryLink(tb testing.TB, instance, eniID, macStr string, vsw netip.Prefix, ip string) sim.ENILink {
	return sim.ENILink{
		InstanceID: instance, ENIID: eniID, MAC: mac(tb, macStr), Primary: true,
		VSwitchCIDR: vsw, Gateway: sim.GatewayOf(vsw), IPs: []netip.Addr{netip.MustParseAddr(ip)},
	}
}

func readSysctl(tb testing.TB, nsName, key string) string {
	tb.Helper()
	var v []byte
	err := ns.WithNetNSPath(NetNSPath(nsName), func(ns.NetNS) error {
		var err error
		v, err = os.ReadFile(filepath.Join("/proc/sys", key))
		return err
	})
	if err != nil {
		tb.Fatalf("read %s in %s: %v", key, nsName, err)
	}
	return strings.TrimSpace(string(v))
}

func TestFabric_AttachENI_LinkInNode(t *testing.T) {
	f := mustFabric(t)
	n := mustAddNode(t, f, "node-1", "i-1")
	mustAttach(t, f, primaryLink(t, "i-1", "eni-primary-1", "00:16:3e:00:00:01", testVswA, "172.30.1.10"))
	secondary := sim.ENILink{InstanceID: "i-1", ENIID: "eni-second-1", MAC: mac(t, "00:16:3e:00:00:02"), DeviceIndex: 1,
		VSwitchCIDR: testVswA, Gateway: sim.GatewayOf(testVswA), IPs: []netip.Addr{netip.MustParseAddr("172.30.1.11")}}
	mustAttach(t, f, secondary)
	// Attaching twice re-applies instead of failing, as the cloud may retry.
	mustAttach(t, f, secondary)

	node := mustHandle(t, n.NetNS)
	cases := []struct {
		ifName   string
		mac      string
		wantUp   bool
		wantAddr string // "" for no IPv4 address
	}{
		{"eth0", "00:16:3e:00:00:01", true, "172.30.1.10/24"},
		{"eth1", "00:16:3e:00:00:02", false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.ifName, func(t *testing.T) {
			l, err := node.LinkByName(tc.ifName)
			if err != nil {
				t.Fatalf("%s not in node: %v", tc.ifName, err)
			}
			if l.Attrs().HardwareAddr.String() != tc.mac {
				t.Fatalf("%s mac = %s, want %s", tc.ifName, l.Attrs().HardwareAddr, tc.mac)
			}
			if up := l.Attrs().Flags&net.FlagUp != 0; up != tc.wantUp {
				t.Fatalf("%s up = %v, want %v", tc.ifName, up, tc.wantUp)
			}
			addrs, err := node.AddrList(l, netlink.FAMILY_V4)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, a := range addrs {
				got = append(got, a.IPNet.String())
			}
			if tc.wantAddr == "" && len(got) != 0 || tc.wantAddr != "" && !slices.Equal(got, []string{tc.wantAddr}) {
				t.Fatalf("%s addresses = %v, want %q", tc.ifName, got, tc.wantAddr)
			}
		})
	}
	t.Run("default route via gateway", func(t *testing.T) {
		routes, err := node.RouteList(nil, netlink.FAMILY_V4)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(routes, func(r netlink.Route) bool {
			return (r.Dst == nil || r.Dst.IP.IsUnspecified()) && r.Gw.String() == "172.30.1.253"
		}) {
			t.Fatalf("no default route via 172.30.1.253 in %v", routes)
		}
	})
	t.Run("vpc side", func(t *testing.T) {
		vpc := mustHandle(t, f.VPCNetNS())
		l, err := vpc.LinkByName(LinkName("eni-second-1"))
		if err != nil {
			t.Fatal(err)
		}
		if want := linkAlias(f.Name(), "eni-second-1"); l.Attrs().Alias != want {
			t.Fatalf("alias = %q, want %q", l.Attrs().Alias, want)
		}
		for key, want := range map[string]string{"rp_filter": "1", "proxy_arp": "1"} {
			if got := readSysctl(t, f.VPCNetNS(), "net/ipv4/conf/"+l.Attrs().Name+"/"+key); got != want {
				t.Errorf("%s = %s, want %s", key, got, want)
			}
		}
	})
}

func TestFabric_AttachENI_UnknownInstance(t *testing.T) {
	f := mustFabric(t)
	err := f.AttachENI(primaryLink(t, "i-nope", "eni-x", "00:16:3e:00:00:09", testVswA, "172.30.1.9"))
	if !errors.Is(err, ErrUnknownInstance) {
		t.Fatalf("err = %v, want ErrUnknownInstance", err)
	}
}

// twoNodes builds node-1 (vsw-a) with a secondary ENI on eth1 that the
// test configures as node software would, with source routing for two
// addresses .20 and .30 through it, and node-2 (vsw-b) serving TCP.
func twoNodes(t *testing.T) (f *Fabric, n1, n2 Node) {
	t.Helper()
	f = mustFabric(t)
	n1 = mustAddNode(t, f, "node-1", "i-1")
	n2 = mustAddNode(t, f, "node-2", "i-2")
	mustAttach(t, f, primaryLink(t, "i-1", "eni-p1", "00:16:3e:00:01:01", testVswA, "172.30.1.10"))
	mustAttach(t, f, primaryLink(t, "i-2", "eni-p2", "00:16:3e:00:02:01", testVswB, "172.30.2.10"))
	mustAttach(t, f, sim.ENILink{InstanceID: "i-1", ENIID: "eni-s1", MAC: mac(t, "00:16:3e:00:01:02"), DeviceIndex: 1,
		VSwitchCIDR: testVswA, Gateway: sim.GatewayOf(testVswA)})

	h := mustHandle(t, n1.NetNS)
	eth1, err := h.LinkByName("eth1")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"172.30.1.20/32", "172.30.1.30/32"} {
		addr, _ := netlink.ParseAddr(a)
		if err := h.AddrAdd(eth1, addr); err != nil {
			t.Fatal(err)
		}
		rule := netlink.NewRule()
		rule.Src = addr.IPNet
		rule.Table = 100
		if err := h.RuleAdd(rule); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.LinkSetUp(eth1); err != nil {
		t.Fatal(err)
	}
	gw := sim.GatewayOf(testVswA)
	if err := h.RouteAdd(&netlink.Route{LinkIndex: eth1.Attrs().Index, Gw: gw.AsSlice(), Table: 100, Flags: int(netlink.FLAG_ONLINK)}); err != nil {
		t.Fatal(err)
	}
	return f, n1, n2
}

// mustServeTCP accepts connections in nsName on addr and closes them.
func mustServeTCP(tb testing.TB, nsName, addr string) {
	tb.Helper()
	l, err := listenIn(NetNSPath(nsName), "tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("ok"))
			c.Close()
		}
	}()
}

// dialFrom connects from src inside nsName to dst and reads the greeting.
// A dropped SYN shows as a timeout, so the timeout bounds the negative
// cases' run time; positive ones pass in milliseconds.
func dialFrom(nsName, src, dst string, timeout time.Duration) error {
	return ns.WithNetNSPath(NetNSPath(nsName), func(ns.NetNS) error {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		c, err := d.DialContext(ctx, "tcp", dst)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(time.Second))
		buf := make([]byte, 2)
		_, err = c.Read(buf)
		return err
	})
}

func TestFabric_SetENIAddresses_AntiSpoofing(t *testing.T) {
	f, n1, n2 := twoNodes(t)
	mustServeTCP(t, n2.NetNS, "172.30.2.10:7000")
	mustServeTCP(t, f.VPCNetNS(), "100.100.100.200:7001")

	steps := []struct {
		name     string
		assigned []string // addresses of eni-s1 set before the dial
		src, dst string
		wantOK   bool
	}{
		{"primary to other vswitch", nil, "172.30.1.10", "172.30.2.10:7000", true},
		{"primary to metadata", nil, "172.30.1.10", "100.100.100.200:7001", true},
		{"unassigned secondary dropped", nil, "172.30.1.20", "172.30.2.10:7000", false},
		{"assigned secondary crosses", []string{"172.30.1.20"}, "172.30.1.20", "172.30.2.10:7000", true},
		{"other address still dropped", []string{"172.30.1.20"}, "172.30.1.30", "172.30.2.10:7000", false},
		{"primary ip spoofed from eth1", []string{"172.30.1.20"}, "172.30.1.30", "100.100.100.200:7001", false},
		{"reassigned address moves", []string{"172.30.1.30"}, "172.30.1.30", "172.30.2.10:7000", true},
		{"unassigned address stops", []string{"172.30.1.30"}, "172.30.1.20", "172.30.2.10:7000", false},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			var ips []netip.Addr
			for _, s := range st.assigned {
				ips = append(ips, netip.MustParseAddr(s))
			}
			if err := f.SetENIAddresses("i-1", "eni-s1", ips); err != nil {
				t.Fatal(err)
			}
			timeout := 5 * time.Second // generous on a loaded machine
			if !st.wantOK {
				timeout = 1500 * time.Millisecond
			}
			err := dialFrom(n1.NetNS, st.src, st.dst, timeout)
			if st.wantOK && err != nil {
				t.Fatalf("%s -> %s: %v, want connected", st.src, st.dst, err)
			}
			if !st.wantOK && err == nil {
				t.Fatalf("%s -> %s connected, want dropped", st.src, st.dst)
			}
		})
	}
}

func TestFabric_SameSubnet_ProxyARP(t *testing.T) {
	f := mustFabric(t)
	n1 := mustAddNode(t, f, "node-1", "i-1")
	n3 := mustAddNode(t, f, "node-3", "i-3")
	mustAttach(t, f, primaryLink(t, "i-1", "eni-p1", "00:16:3e:00:01:01", testVswA, "172.30.1.10"))
	mustAttach(t, f, primaryLink(t, "i-3", "eni-p3", "00:16:3e:00:03:01", testVswA, "172.30.1.12"))
	mustServeTCP(t, n3.NetNS, "172.30.1.12:7000")
	if err := dialFrom(n1.NetNS, "172.30.1.10", "172.30.1.12:7000", 5*time.Second); err != nil {
		t.Fatalf("same-subnet peer over proxy ARP: %v", err)
	}
}

func TestFabric_DetachENI_RemovesLink(t *testing.T) {
	f := mustFabric(t)
	n := mustAddNode(t, f, "node-1", "i-1")
	mustAttach(t, f, primaryLink(t, "i-1", "eni-p1", "00:16:3e:00:01:01", testVswA, "172.30.1.10"))
	mustAttach(t, f, sim.ENILink{InstanceID: "i-1", ENIID: "eni-s1", MAC: mac(t, "00:16:3e:00:01:02"), DeviceIndex: 1,
		VSwitchCIDR: testVswA, Gateway: sim.GatewayOf(testVswA), IPs: []netip.Addr{netip.MustParseAddr("172.30.1.20")}})
	for i := range 2 { // the second detach finds nothing and must succeed
		if err := f.DetachENI("i-1", "eni-s1"); err != nil {
			t.Fatalf("DetachENI #%d: %v", i+1, err)
		}
	}
	if _, err := mustHandle(t, n.NetNS).LinkByName("eth1"); err == nil {
		t.Fatal("eth1 still in node after detach")
	}
	vpc := mustHandle(t, f.VPCNetNS())
	if _, err := vpc.LinkByName(LinkName("eni-s1")); err == nil {
		t.Fatal("vpc side still present after detach")
	}
	routes, err := vpc.RouteGet(net.ParseIP("172.30.1.20"))
	if err == nil && len(routes) > 0 {
		t.Fatalf("vpc still routes 172.30.1.20: %v", routes)
	}
	if _, err := mustHandle(t, n.NetNS).LinkByName("eth0"); err != nil {
		t.Fatalf("primary eth0 gone with the secondary: %v", err)
	}
}

// leftovers lists what sim name still has on the machine.
func leftovers(tb testing.TB, name string) []string {
	tb.Helper()
	var out []string
	names, err := listNamedNS()
	if err != nil {
		tb.Fatal(err)
	}
	for _, n := range names {
		if strings.HasPrefix(n, name+"-") {
			out = append(out, "netns "+n)
		}
	}
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Type: unix.RTN_BLACKHOLE}, netlink.RT_FILTER_TYPE)
	if err != nil {
		tb.Fatal(err)
	}
	for _, r := range routes {
		if r.Priority == blackholeMetric(name) && r.Protocol == RouteProtocol {
			out = append(out, "route blackhole "+r.Dst.String())
		}
	}
	links, err := netlink.LinkList()
	if err != nil {
		tb.Fatal(err)
	}
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Alias, name+"/") {
			out = append(out, "link "+l.Attrs().Name)
		}
	}
	return out
}

func TestFabric_Close_LeavesNothing(t *testing.T) {
	cases := []struct {
		name     string
		teardown func(f *Fabric) error
	}{
		{"close", func(f *Fabric) error { return f.Close() }},
		{"cleanup after crash", func(f *Fabric) error { return Cleanup(f.Name()) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := mustFabric(t)
			mustAddNode(t, f, "node-1", "i-1")
			mustAttach(t, f, primaryLink(t, "i-1", "eni-p1", "00:16:3e:00:01:01", testVswA, "172.30.1.10"))
			got := leftovers(t, f.Name())
			for _, want := range []string{"netns " + f.VPCNetNS(), "netns " + f.Name() + "-node-1", "route blackhole 172.30.0.0/16", "route blackhole 100.100.0.0/16", "route blackhole fd00:ac1e:1::/64"} {
				if !slices.Contains(got, want) {
					t.Fatalf("while running: %q missing from %q", want, got)
				}
			}
			if err := tc.teardown(f); err != nil {
				t.Fatal(err)
			}
			if got := leftovers(t, f.Name()); len(got) != 0 {
				t.Fatalf("left behind: %q", got)
			}
			if err := f.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			if _, err := f.AddNode("node-2", "i-2"); !errors.Is(err, ErrClosed) {
				t.Fatalf("AddNode after Close: %v, want ErrClosed", err)
			}
			if err := f.AttachENI(primaryLink(t, "i-1", "eni-p9", "00:16:3e:00:09:01", testVswA, "172.30.1.19")); !errors.Is(err, ErrClosed) {
				t.Fatalf("AttachENI after Close: %v, want ErrClosed", err)
			}
		})
	}
}

func TestNew_ExistingName(t *testing.T) {
	f := mustFabric(t)
	_, err := New(Options{Name: f.Name(), VPCCIDR: testVPC})
	if !errors.Is(err, ErrExists) {
		t.Fatalf("second New(%s) err = %v, want ErrExists", f.Name(), err)
	}
	if got := leftovers(t, f.Name()); !slices.Contains(got, "netns "+f.VPCNetNS()) {
		t.Fatalf("failed New tore down the running fabric: %q", got)
	}
}

// Every address assigned to an ENI has a permanent neighbour entry with the
// ENI's MAC in the VPC, added and removed with the address: the VPC never
// ARPs toward a node, as the cloud's SDN never does.
func TestFabric_SetENIAddresses_Neighbours(t *testing.T) {
	f := mustFabric(t)
	mustAddNode(t, f, "node-1", "i-1")
	mustAttach(t, f, primaryLink(t, "i-1", "eni-p1", "00:16:3e:00:01:01", testVswA, "172.30.1.10"))
	eniMAC := "00:16:3e:00:01:02"
	mustAttach(t, f, sim.ENILink{InstanceID: "i-1", ENIID: "eni-s1", MAC: mac(t, eniMAC), DeviceIndex: 1,
		VSwitchCIDR: testVswA, Gateway: sim.GatewayOf(testVswA), IPs: []netip.Addr{netip.MustParseAddr("172.30.1.20")}})
	vpc := mustHandle(t, f.VPCNetNS())
	link, err := vpc.LinkByName(LinkName("eni-s1"))
	if err != nil {
		t.Fatal(err)
	}
	permanent := func() []string {
		t.Helper()
		neighs, err := vpc.NeighList(link.Attrs().Index, netlink.FAMILY_V4)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, n := range neighs {
			if n.State&netlink.NUD_PERMANENT != 0 {
				out = append(out, n.IP.String()+" "+n.HardwareAddr.String())
			}
		}
		slices.Sort(out)
		return out
	}
	steps := []struct {
		name string
		ips  []string
	}{
		{"attached", []string{"172.30.1.20"}},
		{"assigned two more", []string{"172.30.1.20", "172.30.1.21", "172.30.1.22"}},
		{"unassigned one", []string{"172.30.1.20", "172.30.1.22"}},
		{"none left", nil},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			var ips []netip.Addr
			var want []string
			for _, s := range st.ips {
				ips = append(ips, netip.MustParseAddr(s))
				want = append(want, s+" "+eniMAC)
			}
			if st.name != "attached" {
				if err := f.SetENIAddresses("i-1", "eni-s1", ips); err != nil {
					t.Fatal(err)
				}
			}
			if got := permanent(); !slices.Equal(got, want) {
				t.Fatalf("vpc permanent neighbours on %s = %q, want %q", link.Attrs().Name, got, want)
			}
		})
	}
}
