package fabric

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/veni-cni/veni/internal/testutil"
)

// The node side of the trunk tests (trunk_linux_test.go) tags and untags
// frames itself, with two tiny tc programs written with cilium/ebpf's asm
// package: the sim must not use veni's node-side datapath, which these
// tests exist to check. The "pod" namespaces behind a node are set up
// here too, as Terway's "filter" mode sets up a trunk pod.

// be16 is x in network byte order, as a ctx field or helper argument
// holds it on this machine.
func be16(x uint16) int32 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], x)
	return int32(binary.NativeEndian.Uint16(b[:]))
}

// Offsets in struct __sk_buff (ABI).
const (
	skbProtocol    = 16
	skbVLANPresent = 20
	skbVLANTCI     = 24
)

// pushProgram tags with vid every IPv4 or IPv6 frame (src's family)
// whose source is src (what Terway's "filter" mode does on the trunk NIC's
// egress).
func pushProgram(src netip.Addr, vid uint16) asm.Instructions {
	proto, off := uint16(unix.ETH_P_IP), int32(14+12) // the IPv4 source
	if src.Is6() {
		proto, off = unix.ETH_P_IPV6, 14+8 // the IPv6 source
	}
	b := src.AsSlice()
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R2, asm.R1, skbProtocol, asm.Word),
		asm.JNE.Imm32(asm.R2, be16(proto), "pass"),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, off),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, -16),
		asm.Mov.Imm(asm.R4, int32(len(b))),
		asm.FnSkbLoadBytes.Call(),
		asm.JNE.Imm(asm.R0, 0, "pass"),
	}
	for i := 0; i < len(b); i += 4 {
		insns = append(insns,
			asm.LoadMem(asm.R2, asm.RFP, int16(-16+i), asm.Word),
			asm.JNE.Imm32(asm.R2, int32(binary.NativeEndian.Uint32(b[i:i+4])), "pass"),
		)
	}
	return append(insns,
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, be16(unix.ETH_P_8021Q)),
		asm.Mov.Imm(asm.R3, int32(vid)),
		asm.FnSkbVlanPush.Call(),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("pass"), // TC_ACT_OK
		asm.Return(),
	)
}

// popProgram pops a tag of vid and counts it in count[0]; it drops frames
// tagged with any other VLAN ID and passes untagged ones.
func popProgram(vid uint16, count *ebpf.Map) asm.Instructions {
	return asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R2, asm.R1, skbVLANPresent, asm.Word),
		asm.JEq.Imm(asm.R2, 0, "pass"),
		asm.LoadMem(asm.R2, asm.R1, skbVLANTCI, asm.Word),
		asm.And.Imm(asm.R2, 0x0fff),
		asm.JNE.Imm(asm.R2, int32(vid), "drop"),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.FnSkbVlanPop.Call(),
		asm.JNE.Imm(asm.R0, 0, "drop"),
		asm.StoreImm(asm.RFP, -4, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, count.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "pass"),
		asm.Mov.Imm(asm.R1, 1),
		asm.StoreXAdd(asm.R0, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("pass"),
		asm.Return(),
		asm.Mov.Imm(asm.R0, 2).WithSymbol("drop"), // TC_ACT_SHOT
		asm.Return(),
	}
}

// nodeTagger is the node side of a trunk NIC: popProgram on its ingress,
// pushProgram (when set) on its egress.
type nodeTagger struct {
	h       *netlink.Handle
	ifindex int
	count   *ebpf.Map
}

func mustProgram(tb testing.TB, insns asm.Instructions) *ebpf.Program {
	tb.Helper()
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SchedCLS, License: "GPL", Instructions: insns})
	if err != nil {
		tb.Fatalf("load test tc program: %v", err)
	}
	tb.Cleanup(func() { p.Close() })
	return p
}

func (n *nodeTagger) filter(tb testing.TB, parent uint32, prog *ebpf.Program) {
	tb.Helper()
	f := &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{LinkIndex: n.ifindex, Parent: parent, Handle: 1, Priority: 1, Protocol: unix.ETH_P_ALL},
		Fd:          prog.FD(), Name: "vtest-tagger", DirectAction: true,
	}
	if err := n.h.FilterReplace(f); err != nil {
		tb.Fatalf("attach test tc program: %v", err)
	}
}

// mustNodeTagger puts popProgram(vid) on the ingress of dev in node n.
func mustNodeTagger(tb testing.TB, n Node, dev string, vid uint16) *nodeTagger {
	tb.Helper()
	h := mustHandle(tb, n.NetNS)
	link, err := h.LinkByName(dev)
	if err != nil {
		tb.Fatal(err)
	}
	count, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { count.Close() })
	t := &nodeTagger{h: h, ifindex: link.Attrs().Index, count: count}
	qdisc := &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: t.ifindex, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT},
		QdiscType:  "clsact",
	}
	if err := h.QdiscAdd(qdisc); err != nil {
		tb.Fatal(err)
	}
	t.filter(tb, netlink.HANDLE_MIN_INGRESS, mustProgram(tb, popProgram(vid, count)))
	return t
}

// tag makes the node tag frames from src with vid; vid 0 stops tagging.
func (n *nodeTagger) tag(tb testing.TB, src netip.Addr, vid uint16) {
	tb.Helper()
	if vid == 0 {
		f := &netlink.BpfFilter{FilterAttrs: netlink.FilterAttrs{LinkIndex: n.ifindex, Parent: netlink.HANDLE_MIN_EGRESS, Handle: 1, Priority: 1, Protocol: unix.ETH_P_ALL}}
		if err := n.h.FilterDel(f); err != nil && !errors.Is(err, unix.ENOENT) {
			tb.Fatal(err)
		}
		return
	}
	n.filter(tb, netlink.HANDLE_MIN_EGRESS, mustProgram(tb, pushProgram(src, vid)))
}

// popped is how many frames arrived tagged with the tagger's VLAN ID.
func (n *nodeTagger) popped(tb testing.TB) uint64 {
	tb.Helper()
	var v uint64
	if err := n.count.Lookup(uint32(0), &v); err != nil {
		tb.Fatal(err)
	}
	return v
}

// mustPod makes a "pod" namespace behind node-1 holding ip, as a trunk
// pod in Terway's filter mode: a veth to node-1, a default route via
// 169.254.1.1; node-1 routes ip to the veth and what ip sends by table
// (the trunk NIC's).
func (s *sgCloud) mustPod(t *testing.T, ip netip.Addr, table int) string {
	t.Helper()
	podNS, podH := testutil.NewNetNS(t)
	nh := mustHandle(t, s.n1.NetNS)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "vpod"}, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(podH))}
	if err := nh.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	host, err := nh.LinkByName("vpod")
	if err != nil {
		t.Fatal(err)
	}
	if err := nh.LinkSetUp(host); err != nil {
		t.Fatal(err)
	}
	ph := mustHandle(t, podNS)
	eth0, err := ph.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []func() error{
		func() error { return ph.AddrAdd(eth0, &netlink.Addr{IPNet: hostNet(ip)}) },
		func() error { return ph.LinkSetUp(eth0) },
		func() error { return setUp(ph, "lo") },
		func() error {
			return ph.NeighSet(&netlink.Neigh{LinkIndex: eth0.Attrs().Index, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT,
				IP: net.IPv4(169, 254, 1, 1), HardwareAddr: host.Attrs().HardwareAddr})
		},
		func() error {
			return ph.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Dst: hostNet(netip.MustParseAddr("169.254.1.1")), Scope: netlink.SCOPE_LINK})
		},
		func() error {
			return ph.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: net.IPv4(169, 254, 1, 1)})
		},
		func() error {
			return nh.RouteAdd(&netlink.Route{LinkIndex: host.Attrs().Index, Dst: hostNet(ip), Scope: netlink.SCOPE_LINK})
		},
		func() error {
			r := netlink.NewRule()
			r.Src, r.Table = hostNet(ip), table
			return nh.RuleAdd(r)
		},
		func() error {
			return writeSysctls(s.n1.NetNSPath, []sysctl{{"net/ipv4/ip_forward", "1"}, {"net/ipv4/conf/all/rp_filter", "0"}})
		},
	} {
		if err := step(); err != nil {
			t.Fatalf("pod %s: %v", ip, err)
		}
	}
	return podNS
}

// mustPodAddr gives the pod one more address, routed like its first.
func (s *sgCloud) mustPodAddr(t *testing.T, podNS string, ip netip.Addr, table int) {
	t.Helper()
	ph, nh := mustHandle(t, podNS), mustHandle(t, s.n1.NetNS)
	eth0, err := ph.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	host, err := nh.LinkByName("vpod")
	if err != nil {
		t.Fatal(err)
	}
	if err := ph.AddrAdd(eth0, &netlink.Addr{IPNet: hostNet(ip)}); err != nil {
		t.Fatal(err)
	}
	if err := nh.RouteAdd(&netlink.Route{LinkIndex: host.Attrs().Index, Dst: hostNet(ip), Scope: netlink.SCOPE_LINK}); err != nil {
		t.Fatal(err)
	}
	r := netlink.NewRule()
	r.Src, r.Table = hostNet(ip), table
	if err := nh.RuleAdd(r); err != nil {
		t.Fatal(err)
	}
}

// tNode names a bare namespace as a Node for mustDial.
func tNode(nsName string) Node {
	return Node{Name: nsName, NetNS: nsName, NetNSPath: NetNSPath(nsName)}
}

// mustPod6 gives the pod an IPv6 address, routed like its IPv4 one (via
// fe80::1, the node's veth).
func (s *sgCloud) mustPod6(t *testing.T, podNS string, ip netip.Addr, table int) {
	t.Helper()
	ph, nh := mustHandle(t, podNS), mustHandle(t, s.n1.NetNS)
	eth0, err := ph.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	host, err := nh.LinkByName("vpod")
	if err != nil {
		t.Fatal(err)
	}
	gw := netip.MustParseAddr("fe80::1")
	for _, step := range []func() error{
		func() error {
			return ph.AddrAdd(eth0, &netlink.Addr{IPNet: hostNet(ip), Flags: unix.IFA_F_NODAD})
		},
		func() error {
			return ph.NeighSet(&netlink.Neigh{LinkIndex: eth0.Attrs().Index, Family: netlink.FAMILY_V6, State: netlink.NUD_PERMANENT,
				IP: gw.AsSlice(), HardwareAddr: host.Attrs().HardwareAddr})
		},
		func() error {
			return ph.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: gw.AsSlice(), Family: netlink.FAMILY_V6})
		},
		func() error {
			return nh.RouteAdd(&netlink.Route{LinkIndex: host.Attrs().Index, Dst: hostNet(ip), Scope: netlink.SCOPE_LINK})
		},
		func() error {
			r := netlink.NewRule()
			r.Family, r.Src, r.Table = netlink.FAMILY_V6, hostNet(ip), table
			return nh.RuleAdd(r)
		},
		func() error {
			return writeSysctls(s.n1.NetNSPath, []sysctl{{"net/ipv6/conf/all/forwarding", "1"}})
		},
	} {
		if err := step(); err != nil {
			t.Fatalf("pod %s: %v", ip, err)
		}
	}
}
