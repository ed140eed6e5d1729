package vlan

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/veni-cni/veni/internal/testutil"
)

// inNS runs fn on a locked thread switched into h; a thread that cannot
// switch back dies with its goroutine.
func inNS(tb testing.TB, h netns.NsHandle, fn func()) {
	tb.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			tb.Errorf("get netns: %v", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(h); err != nil {
			tb.Errorf("enter netns: %v", err)
			return
		}
		fn()
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
	}()
	<-done
}

func mustPinDir(tb testing.TB) string {
	tb.Helper()
	dir, err := os.MkdirTemp("/sys/fs/bpf", "veni-vlan-test-")
	if err != nil {
		testutil.Skipf(tb, "no bpffs at /sys/fs/bpf: %v", err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "node")
}

// trunkPair is a node namespace whose link "trunk0" (10.77.0.1/24) stands
// in for the trunk ENI, and a VPC namespace on its other end ("vpc0",
// 10.77.0.254/24) routing 10.77.1.0/24 to the node. Pod addresses live on
// the node's lo.
type trunkPair struct {
	node, vpc        netns.NsHandle
	trunk, vpcLink   netlink.Link
	nodeNL, vpcNL    *netlink.Handle
	trunkMAC, vpcMAC net.HardwareAddr
}

func newTrunkPair(t *testing.T, podIPs ...string) *trunkPair {
	t.Helper()
	testutil.SkipOnOldKernel(t, "6.6", "TCX")
	nodeName, node := testutil.NewNetNS(t)
	_, vpc := testutil.NewNetNS(t)
	_ = nodeName
	p := &trunkPair{node: node, vpc: vpc}
	var err error
	if p.nodeNL, err = netlink.NewHandleAt(node); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.nodeNL.Close)
	if p.vpcNL, err = netlink.NewHandleAt(vpc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.vpcNL.Close)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "trunk0", Namespace: netlink.NsFd(node)}, PeerName: "vpc0", PeerNamespace: netlink.NsFd(vpc)}
	if err := p.nodeNL.LinkAdd(veth); err != nil {
		t.Fatalf("add veth: %v", err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	p.trunk, err = p.nodeNL.LinkByName("trunk0")
	must(err)
	p.vpcLink, err = p.vpcNL.LinkByName("vpc0")
	must(err)
	p.trunkMAC, p.vpcMAC = p.trunk.Attrs().HardwareAddr, p.vpcLink.Attrs().HardwareAddr
	addr := func(h *netlink.Handle, l netlink.Link, cidr string) {
		a, err := netlink.ParseAddr(cidr)
		must(err)
		must(h.AddrAdd(l, a))
	}
	lo, err := p.nodeNL.LinkByName("lo")
	must(err)
	vlo, err := p.vpcNL.LinkByName("lo")
	must(err)
	for _, l := range []struct {
		h *netlink.Handle
		l netlink.Link
	}{{p.nodeNL, lo}, {p.nodeNL, p.trunk}, {p.vpcNL, vlo}, {p.vpcNL, p.vpcLink}} {
		must(l.h.LinkSetUp(l.l))
	}
	addr(p.nodeNL, p.trunk, "10.77.0.1/24")
	addr(p.vpcNL, p.vpcLink, "10.77.0.254/24")
	for _, ip := range podIPs {
		addr(p.nodeNL, lo, ip+"/32")
	}
	_, dst, _ := net.ParseCIDR("10.77.1.0/24")
	must(p.vpcNL.RouteAdd(&netlink.Route{LinkIndex: p.vpcLink.Attrs().Index, Dst: dst, Gw: net.ParseIP("10.77.0.1")}))
	// Permanent neighbours both ways: the test is about data frames.
	must(p.nodeNL.NeighAdd(&netlink.Neigh{LinkIndex: p.trunk.Attrs().Index, Family: unix.AF_INET, State: netlink.NUD_PERMANENT, IP: net.ParseIP("10.77.0.254"), HardwareAddr: p.vpcMAC}))
	must(p.vpcNL.NeighAdd(&netlink.Neigh{LinkIndex: p.vpcLink.Attrs().Index, Family: unix.AF_INET, State: netlink.NUD_PERMANENT, IP: net.ParseIP("10.77.0.1"), HardwareAddr: p.trunkMAC}))
	return p
}

func mustOpen(t *testing.T, p *trunkPair) *Tagger {
	t.Helper()
	dir := mustPinDir(t)
	tg, err := Open(dir)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { tg.Close() })
	var aerr error
	inNS(t, p.node, func() { aerr = tg.Attach(p.trunk.Attrs().Index) })
	if aerr != nil {
		t.Fatalf("attach: %v", aerr)
	}
	return tg
}

// capture is an AF_PACKET socket on the VPC end that reports each frame's
// VLAN tag from the packet's auxdata (the tag travels beside the frame).
type capture struct{ fd int }

func newCapture(t *testing.T, p *trunkPair) *capture {
	t.Helper()
	var (
		fd  int
		err error
	)
	inNS(t, p.vpc, func() {
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return
		}
		if err = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
			return
		}
		err = unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: p.vpcLink.Attrs().Index})
	})
	if err != nil {
		t.Fatalf("capture socket: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	tv := unix.NsecToTimeval(int64(200 * time.Millisecond))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	return &capture{fd: fd}
}

type frame struct {
	src, dst netip.Addr
	dport    uint16
	vid      int // 0: untagged
}

// next returns the next UDP/IPv4 frame, or false after deadline.
func (c *capture) next(deadline time.Time) (frame, bool) {
	buf := make([]byte, 2048)
	oob := make([]byte, 256)
	for time.Now().Before(deadline) {
		n, oobn, _, _, err := unix.Recvmsg(c.fd, buf, oob, 0)
		if err != nil {
			continue
		}
		var f frame
		msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		for _, m := range msgs {
			if m.Header.Level == unix.SOL_PACKET && m.Header.Type == unix.PACKET_AUXDATA && len(m.Data) >= int(unsafe.Sizeof(unix.TpacketAuxdata{})) {
				aux := (*unix.TpacketAuxdata)(unsafe.Pointer(&m.Data[0]))
				if aux.Status&unix.TP_STATUS_VLAN_VALID != 0 {
					f.vid = int(aux.Vlan_tci & 0xfff)
				}
			}
		}
		b := buf[:n]
		if len(b) < 14+20+8 || binary.BigEndian.Uint16(b[12:]) != unix.ETH_P_IP || b[14+9] != unix.IPPROTO_UDP {
			continue
		}
		f.src, _ = netip.AddrFromSlice(b[14+12 : 14+16])
		f.dst, _ = netip.AddrFromSlice(b[14+16 : 14+20])
		ihl := int(b[14]&0xf) * 4
		f.dport = binary.BigEndian.Uint16(b[14+ihl+2:])
		return f, true
	}
	return frame{}, false
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// sendFrom sends one UDP datagram from src in the node namespace.
func sendFrom(t *testing.T, p *trunkPair, src, dst string, dport int) {
	t.Helper()
	var err error
	inNS(t, p.node, func() {
		var c *net.UDPConn
		c, err = net.DialUDP("udp4", &net.UDPAddr{IP: net.ParseIP(src)}, &net.UDPAddr{IP: net.ParseIP(dst), Port: dport})
		if err != nil {
			return
		}
		defer c.Close()
		_, err = c.Write([]byte("veni"))
	})
	if err != nil {
		t.Fatalf("send from %s: %v", src, err)
	}
}

// wantFrame waits for the frame from src to port dport and checks its tag.
func (c *capture) wantFrame(t *testing.T, src string, dport uint16, vid int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		f, ok := c.next(deadline)
		if !ok {
			t.Fatalf("no frame from %s to port %d reached the VPC end", src, dport)
		}
		if f.src.String() != src || f.dport != dport {
			continue
		}
		if f.vid != vid {
			t.Fatalf("frame from %s left the trunk with vlan %d, want %d", src, f.vid, vid)
		}
		return
	}
}

// Ensure a member's packets leave the trunk tagged with its VLAN ID and
// other pods' untagged, and that forgetting the member stops tagging.
func TestTagger_Egress_TagsMembersOnly(t *testing.T) {
	p := newTrunkPair(t, "10.77.1.5", "10.77.1.6")
	tg := mustOpen(t, p)
	if err := tg.SetMember(netip.MustParseAddr("10.77.1.5"), 7); err != nil {
		t.Fatal(err)
	}
	c := newCapture(t, p)
	sendFrom(t, p, "10.77.1.5", "10.77.0.254", 9001)
	c.wantFrame(t, "10.77.1.5", 9001, 7)
	sendFrom(t, p, "10.77.1.6", "10.77.0.254", 9002)
	c.wantFrame(t, "10.77.1.6", 9002, 0)
	if err := tg.ForgetMember(netip.MustParseAddr("10.77.1.5")); err != nil {
		t.Fatal(err)
	}
	sendFrom(t, p, "10.77.1.5", "10.77.0.254", 9003)
	c.wantFrame(t, "10.77.1.5", 9003, 0)
	cnt, err := tg.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if cnt.Tagged != 1 {
		t.Errorf("tagged counter %d, want 1", cnt.Tagged)
	}
}

// udpFrame builds an Ethernet frame (802.1Q-tagged when vid > 0) with a
// UDP/IPv4 datagram.
func udpFrame(dstMAC, srcMAC net.HardwareAddr, src, dst netip.Addr, dport uint16, vid int, payload string) []byte {
	b := append([]byte{}, dstMAC...)
	b = append(b, srcMAC...)
	if vid > 0 {
		b = binary.BigEndian.AppendUint16(b, 0x8100)
		b = binary.BigEndian.AppendUint16(b, uint16(vid))
	}
	b = binary.BigEndian.AppendUint16(b, unix.ETH_P_IP)
	ip := make([]byte, 20)
	ip[0], ip[8], ip[9] = 0x45, 64, unix.IPPROTO_UDP
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+len(payload)))
	s, d := src.As4(), dst.As4()
	copy(ip[12:], s[:])
	copy(ip[16:], d[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	b = append(b, ip...)
	udp := make([]byte, 8)
	binary.BigEndian.PutUint16(udp[0:], 40000)
	binary.BigEndian.PutUint16(udp[2:], dport)
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(payload))) // checksum 0: none
	b = append(b, udp...)
	return append(b, payload...)
}

// Ensure frames tagged with a member's VLAN ID reach the member untagged,
// and that frames with another VLAN ID, or none, for a member's address
// are dropped, while untagged frames for other pods pass.
func TestTagger_Ingress_UntagsForTheMember(t *testing.T) {
	p := newTrunkPair(t, "10.77.1.5", "10.77.1.6")
	tg := mustOpen(t, p)
	member, shared := netip.MustParseAddr("10.77.1.5"), netip.MustParseAddr("10.77.1.6")
	if err := tg.SetMember(member, 7); err != nil {
		t.Fatal(err)
	}
	if err := tg.SetMember(netip.MustParseAddr("10.77.1.9"), 8); err != nil {
		t.Fatal(err)
	}
	listen := func(ip string) *net.UDPConn {
		var (
			c   *net.UDPConn
			err error
		)
		inNS(t, p.node, func() { c, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ip), Port: 7777}) })
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	mc, sc := listen("10.77.1.5"), listen("10.77.1.6")
	var (
		fd  int
		err error
	)
	inNS(t, p.vpc, func() { fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0) })
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	vpcIP := netip.MustParseAddr("10.77.0.254")
	send := func(dst netip.Addr, vid int, payload string) {
		f := udpFrame(p.trunkMAC, p.vpcMAC, vpcIP, dst, 7777, vid, payload)
		if err := unix.Sendto(fd, f, 0, &unix.SockaddrLinklayer{Ifindex: p.vpcLink.Attrs().Index, Halen: 6}); err != nil {
			t.Fatalf("send frame: %v", err)
		}
	}
	send(member, 8, "wrong-vlan")
	send(member, 0, "untagged")
	send(shared, 7, "member-vlan-for-shared")
	send(member, 7, "ok")
	send(shared, 0, "shared-ok")
	recv := func(c *net.UDPConn) []string {
		var got []string
		buf := make([]byte, 100)
		for {
			_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			n, err := c.Read(buf)
			if err != nil {
				return got
			}
			got = append(got, string(buf[:n]))
		}
	}
	if got := recv(mc); len(got) != 1 || got[0] != "ok" {
		t.Errorf("member received %q, want only the frame tagged with its vlan", got)
	}
	if got := recv(sc); len(got) != 1 || got[0] != "shared-ok" {
		t.Errorf("shared pod received %q, want only the untagged frame", got)
	}
	cnt, err := tg.Counters()
	if err != nil {
		t.Fatal(err)
	}
	want := Counters{Untagged: 1, DropWrongVLAN: 2, DropNotTagged: 1}
	if cnt != want {
		t.Errorf("counters %+v, want %+v", cnt, want)
	}
	members, err := tg.Members()
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != 2 || members[member] != 7 {
		t.Errorf("members %v", members)
	}
	if err := ForgetPinned(tg.dir, member); err != nil {
		t.Fatal(err)
	}
	if got, err := PinnedMembers(tg.dir); err != nil || len(got) != 1 || got[member] != 0 {
		t.Errorf("after ForgetPinned: %v, %v", got, err)
	}
}

// Ensure Attach is idempotent, a second Open shares the pinned map, and
// Detach takes the programs off (member packets then leave untagged).
func TestTagger_AttachTwice_Detach(t *testing.T) {
	p := newTrunkPair(t, "10.77.1.5")
	tg := mustOpen(t, p)
	var err error
	linkID := func() link.ID {
		l, err := link.LoadPinnedLink(tg.linkPath(p.trunk.Attrs().Index, "in"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		info, err := l.Info()
		if err != nil {
			t.Fatal(err)
		}
		return info.ID
	}
	first := linkID()
	inNS(t, p.node, func() { err = tg.Attach(p.trunk.Attrs().Index) })
	if err != nil {
		t.Fatalf("attach again: %v", err)
	}
	again, err := Open(tg.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	inNS(t, p.node, func() { err = again.Attach(p.trunk.Attrs().Index) })
	if err != nil {
		t.Fatalf("attach from a second load: %v", err)
	}
	if linkID() != first {
		t.Error("attach replaced a link that already carried the same program")
	}
	if err := again.SetMember(netip.MustParseAddr("10.77.1.5"), 4094); err != nil {
		t.Fatal(err)
	}
	if !Loaded(tg.dir) {
		t.Error("Loaded says no pins")
	}
	c := newCapture(t, p)
	sendFrom(t, p, "10.77.1.5", "10.77.0.254", 9101)
	c.wantFrame(t, "10.77.1.5", 9101, 4094)
	if err := tg.Detach(p.trunk.Attrs().Index); err != nil {
		t.Fatal(err)
	}
	sendFrom(t, p, "10.77.1.5", "10.77.0.254", 9102)
	c.wantFrame(t, "10.77.1.5", 9102, 0)
	for _, bad := range []int{0, 4095} {
		if err := tg.SetMember(netip.MustParseAddr("10.77.1.5"), bad); err == nil {
			t.Errorf("vlan %d accepted", bad)
		}
	}
}
