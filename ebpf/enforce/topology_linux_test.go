package enforce

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/veni-cni/veni/ebpf/fastpath"
	"github.com/veni-cni/veni/internal/testutil"
)

// The real-traffic tests' node: its own namespace with an "ENI" (a link
// holding the node's address, table 1001 routing through it) and pods
// wired the way netplumb wires them: a veth pair, eth0 with ip/32 and a
// default route via 169.254.1.1 (a permanent neighbour: the host veth's
// MAC), a /32 route on the host side. Every address lives in namespaces
// the test creates, and they are deleted when it ends, even on failure.
var (
	trafficNodeIP = netip.MustParseAddr("10.77.0.10")
	podGateway    = netip.MustParseAddr("169.254.1.1")
)

const trafficENITable = 1001

type trafficNode struct {
	ns  netns.NsHandle
	h   *netlink.Handle
	eni netlink.Link
}

type trafficPod struct {
	ns     netns.NsHandle
	ip     netip.Addr
	host   netlink.Link
	podMAC net.HardwareAddr
}

func must(tb testing.TB, what string, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatalf("%s: %v", what, err)
	}
}

func mustHandle(tb testing.TB, ns netns.NsHandle) *netlink.Handle {
	tb.Helper()
	h, err := netlink.NewHandleAt(ns)
	must(tb, "netlink handle", err)
	tb.Cleanup(h.Close)
	return h
}

func mustLink(tb testing.TB, h *netlink.Handle, name string) netlink.Link {
	tb.Helper()
	l, err := h.LinkByName(name)
	must(tb, "link "+name, err)
	return l
}

func prefix32(a netip.Addr) *net.IPNet {
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(32, 32)}
}

func mustTrafficNode(tb testing.TB) *trafficNode {
	tb.Helper()
	testutil.RequireRoot(tb)
	n := &trafficNode{}
	_, n.ns = testutil.NewNetNS(tb)
	n.h = mustHandle(tb, n.ns)
	// A veth whose peer stays in the node (no dummy module on every kernel).
	must(tb, "add eni", n.h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth1"}, PeerName: "eth1p"}))
	n.eni = mustLink(tb, n.h, "eth1")
	must(tb, "eni peer up", n.h.LinkSetUp(mustLink(tb, n.h, "eth1p")))
	must(tb, "eni addr", n.h.AddrAdd(n.eni, &netlink.Addr{IPNet: &net.IPNet{IP: trafficNodeIP.AsSlice(), Mask: net.CIDRMask(24, 32)}}))
	must(tb, "eni up", n.h.LinkSetUp(n.eni))
	must(tb, "node lo up", n.h.LinkSetUp(mustLink(tb, n.h, "lo")))
	must(tb, "eni table", n.h.RouteAdd(&netlink.Route{
		LinkIndex: n.eni.Attrs().Index, Dst: &net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)},
		Scope: netlink.SCOPE_LINK, Table: trafficENITable,
	}))
	mustSysctl(tb, n.ns, "net/ipv4/ip_forward", "1")
	return n
}

func (n *trafficNode) mustPod(tb testing.TB, hostName string, ip netip.Addr) *trafficPod {
	tb.Helper()
	p := &trafficPod{ip: ip}
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
	must(tb, "pod default route", ph.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: podGateway.AsSlice()}))
	must(tb, "pod gateway neigh", ph.NeighAdd(&netlink.Neigh{
		LinkIndex: eth0.Attrs().Index, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT,
		IP: podGateway.AsSlice(), HardwareAddr: p.host.Attrs().HardwareAddr,
	}))
	must(tb, "host veth up", n.h.LinkSetUp(p.host))
	must(tb, "host route", n.h.RouteAdd(&netlink.Route{
		LinkIndex: p.host.Attrs().Index, Dst: prefix32(ip), Scope: netlink.SCOPE_LINK,
	}))
	return p
}

func (p *trafficPod) key() EndpointKey {
	return EndpointKey{Ifindex: p.host.Attrs().Index, IP: p.ip}
}

func (n *trafficNode) fastpathEndpoint(p *trafficPod) fastpath.Endpoint {
	return fastpath.Endpoint{
		IP:          p.ip,
		HostIfindex: p.host.Attrs().Index,
		HostMAC:     p.host.Attrs().HardwareAddr,
		PodMAC:      p.podMAC,
		ENIIfindex:  n.eni.Attrs().Index,
		ENITable:    trafficENITable,
	}
}

// inNetNS runs fn on a locked OS thread inside ns. When the thread cannot
// be moved back it stays locked, so Go discards it with the goroutine.
func inNetNS(ns netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("get netns: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter netns: %w", err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("restore netns: %w (terminating OS thread)", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

func mustInNetNS(tb testing.TB, ns netns.NsHandle, fn func() error) {
	tb.Helper()
	if err := inNetNS(ns, fn); err != nil {
		tb.Fatal(err)
	}
}

func mustSysctl(tb testing.TB, ns netns.NsHandle, key, value string) {
	tb.Helper()
	mustInNetNS(tb, ns, func() error {
		return os.WriteFile(filepath.Join("/proc/sys", key), []byte(value), 0o644)
	})
}

// mustServeTCPEcho echoes TCP connections on addr inside ns until cleanup.
func mustServeTCPEcho(tb testing.TB, ns netns.NsHandle, addr netip.AddrPort) {
	tb.Helper()
	var ln net.Listener
	mustInNetNS(tb, ns, func() (err error) {
		ln, err = net.Listen(family("tcp", addr.Addr()), addr.String())
		return err
	})
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(30 * time.Second))
				_, _ = io.Copy(c, c)
			}()
		}
	}()
}

// mustServeUDPEcho echoes datagrams on addr inside ns until cleanup.
func mustServeUDPEcho(tb testing.TB, ns netns.NsHandle, addr netip.AddrPort) {
	tb.Helper()
	var pc net.PacketConn
	mustInNetNS(tb, ns, func() (err error) {
		pc, err = net.ListenPacket(family("udp", addr.Addr()), addr.String())
		return err
	})
	tb.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], from)
		}
	}()
}

// family returns network ("tcp", "udp") of a's family: "tcp4", "udp6".
func family(network string, a netip.Addr) string {
	if a.Is4() {
		return network + "4"
	}
	return network + "6"
}

// dial connects from ns to dst over network within timeout.
func dial(ns netns.NsHandle, network string, dst netip.AddrPort, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := inNetNS(ns, func() (err error) {
		d := net.Dialer{Timeout: timeout}
		c, err = d.Dial(network, dst.String())
		return err
	})
	return c, err
}

// roundTrip writes a message on c and checks it comes back within
// timeout.
func roundTrip(c net.Conn, timeout time.Duration) error {
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	msg := "veni-" + randHex(8)
	if _, err := c.Write([]byte(msg)); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return fmt.Errorf("echo: %w", err)
	}
	if string(buf) != msg {
		return fmt.Errorf("echo %q, want %q", buf, msg)
	}
	return nil
}

// exchange dials dst from ns and round-trips one message (UDP: a few
// tries, the first datagram may die while a neighbour resolves).
func exchange(ns netns.NsHandle, network string, dst netip.AddrPort, timeout time.Duration) error {
	tries := 1
	if network == "udp4" || network == "udp6" {
		tries = 3
	}
	var last error
	for i := 0; i < tries; i++ {
		c, err := dial(ns, network, dst, timeout)
		if err != nil {
			last = err
			continue
		}
		last = roundTrip(c, timeout)
		c.Close()
		if last == nil {
			return nil
		}
	}
	return fmt.Errorf("%s %s: %w", network, dst, last)
}
