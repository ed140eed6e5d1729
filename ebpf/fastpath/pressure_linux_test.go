package fastpath

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/veni-cni/veni/internal/testutil"
)

// mustPodFlows returns the flow map of the pod at ip, closed at cleanup.
func mustPodFlows(tb testing.TB, d *Datapath, ip netip.Addr) *ebpf.Map {
	tb.Helper()
	var m *ebpf.Map
	if err := d.family(ip).flows.Lookup(addrKey(ip), &m); err != nil {
		tb.Fatalf("flow map of %s: %v", ip, err)
	}
	tb.Cleanup(func() { m.Close() })
	return m
}

func countEntries(tb testing.TB, m *ebpf.Map) int {
	tb.Helper()
	var (
		k fastpathFlowKey
		v uint32
		n int
	)
	iter := m.Iterate()
	for iter.Next(&k, &v) {
		n++
	}
	if err := iter.Err(); err != nil {
		tb.Fatal(err)
	}
	return n
}

// injector writes raw Ethernet frames out of a pod's eth0, as the pod's
// own stack would send them: the way to send tens of thousands of distinct
// flows in a fraction of a second, and to send what a socket would not.
type injector struct {
	fd       int
	ifindex  int
	src, dst net.HardwareAddr
}

func mustInjector(tb testing.TB, n *testNode, p *testPod) *injector {
	tb.Helper()
	in := &injector{src: p.podMAC, dst: p.host.Attrs().HardwareAddr}
	mustInNetNS(tb, p.ns, func() error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		in.ifindex = l.Attrs().Index
		in.fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		return err
	})
	tb.Cleanup(func() { unix.Close(in.fd) })
	return in
}

// send writes one IPv4 packet of proto (UDP, or TCP with SYN) from
// src:sport to dst:dport.
func (in *injector) send(tb testing.TB, proto uint8, src, dst netip.Addr, sport, dport uint16) {
	tb.Helper()
	l4len := 8
	if proto == unix.IPPROTO_TCP {
		l4len = 20
	}
	b := make([]byte, 14+20+l4len)
	copy(b[0:6], in.dst)
	copy(b[6:12], in.src)
	binary.BigEndian.PutUint16(b[12:], unix.ETH_P_IP)
	ip := b[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+l4len))
	ip[8] = 64
	ip[9] = proto
	s4, d4 := src.As4(), dst.As4()
	copy(ip[12:16], s4[:])
	copy(ip[16:20], d4[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	l4 := b[34:]
	binary.BigEndian.PutUint16(l4[0:], sport)
	binary.BigEndian.PutUint16(l4[2:], dport)
	if proto == unix.IPPROTO_TCP {
		l4[12] = 5 << 4
		l4[13] = 0x02 // SYN
	} else {
		binary.BigEndian.PutUint16(l4[4:], uint16(l4len))
	}
	sa := &unix.SockaddrLinklayer{Ifindex: in.ifindex, Halen: 6}
	copy(sa.Addr[:], in.dst)
	if err := unix.Sendto(in.fd, b, 0, sa); err != nil {
		tb.Fatalf("inject: %v", err)
	}
}

// One pod that opens flow after flow through the host stack evicts only
// its own remembered flows: another pod's stay (defect 13). With one map
// shared by all pods (65536 flows), the flood below evicted the victim's
// entry, and the replies of its NATed flow would then skip the host's
// conntrack.
func TestDatapath_FlowFlood_LeavesOtherPodsFlows(t *testing.T) {
	testutil.SkipOnOldKernel(t, "6.8", "bpf_fib_lookup with a table id")
	n := mustTestNode(t)
	flooder := n.mustPod(t, "vhflood", netip.MustParseAddr("10.99.0.31"))
	victim := n.mustPod(t, "vhvictim", netip.MustParseAddr("10.99.0.32"))
	d := mustOpen(t, Options{PinDir: mustPinDir(t), HostStack: &HostStack{NodeAddrs: []netip.Addr{nodeIP}}})
	mustInNetNS(t, n.ns, func() error {
		return errors.Join(d.AttachPod(n.endpoint(flooder)), d.AttachPod(n.endpoint(victim)))
	})

	// The victim's flow through the host: a packet to the node's address,
	// remembered in its map and, its reply not yet come, never looked up
	// again (an LRU gives looked-up entries a second chance; an idle NATed
	// flow has none).
	mustInjector(t, n, victim).send(t, unix.IPPROTO_UDP, victim.ip, nodeIP, 40000, 9)
	victimFlows := mustPodFlows(t, d, victim.ip)
	before := countEntries(t, victimFlows)
	if before != 1 {
		t.Fatalf("victim's flow map has %d entries, want 1", before)
	}

	// The flood: every UDP port and some TCP ones, far more flows than
	// one pod's map holds (and than the old shared map held).
	in := mustInjector(t, n, flooder)
	for port := 1; port <= 65535; port++ {
		in.send(t, unix.IPPROTO_UDP, flooder.ip, nodeIP, uint16(port), 9)
	}
	for port := 1; port <= 5000; port++ {
		in.send(t, unix.IPPROTO_TCP, flooder.ip, nodeIP, uint16(port), 9)
	}
	c := mustCounters(t, d)
	if c.FromPod.FlowsTracked < flowsPerPod {
		t.Fatalf("only %d flows tracked: the flood did not reach the program", c.FromPod.FlowsTracked)
	}
	if got := countEntries(t, victimFlows); got != before {
		t.Fatalf("victim's flow map has %d entries after the flood, want %d: another pod evicted them", got, before)
	}
	if got := countEntries(t, mustPodFlows(t, d, flooder.ip)); got > flowsPerPod {
		t.Fatalf("flooder remembers %d flows, more than its %d", got, flowsPerPod)
	}
}

// A pod that sends with another local pod's address is dropped by the
// program itself, even where the host's rp_filter would let it pass (this
// topology sets none); its own address still takes the fast path.
func TestDatapath_FromPod_DropsNeighbourSource(t *testing.T) {
	testutil.SkipOnOldKernel(t, "6.8", "bpf_fib_lookup with a table id")
	n := mustTestNode(t)
	spoofer := n.mustPod(t, "vhspoof", netip.MustParseAddr("10.99.0.41"))
	neighbour := n.mustPod(t, "vhneigh", netip.MustParseAddr("10.99.0.42"))
	d := mustOpen(t, Options{PinDir: mustPinDir(t)})
	mustInNetNS(t, n.ns, func() error {
		return errors.Join(d.AttachPod(n.endpoint(spoofer)), d.AttachPod(n.endpoint(neighbour)), d.AttachENI(n.eni.Attrs().Index))
	})
	vpc0 := mustLink(t, n.vpcH, "vpc0")
	in := mustInjector(t, n, spoofer)
	cases := []struct {
		name     string
		src      netip.Addr
		wantDrop bool
	}{
		{"own address", spoofer.ip, false},
		{"neighbour's address", neighbour.ip, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := mustCounters(t, d)
			rxBefore := rxPackets(t, n.vpcH, vpc0.Attrs().Name)
			const count = 20
			for i := range count {
				in.send(t, unix.IPPROTO_UDP, tc.src, remoteIP, uint16(30000+i), 9)
			}
			after := mustCounters(t, d)
			dropped := after.FromPod.DropSpoofed - before.FromPod.DropSpoofed
			reached := rxPackets(t, n.vpcH, vpc0.Attrs().Name) - rxBefore
			if tc.wantDrop && (dropped != count || reached != 0) {
				t.Fatalf("spoofed: %d dropped, %d reached the vpc; want %d and 0", dropped, reached, count)
			}
			if !tc.wantDrop && (dropped != 0 || reached < count) {
				t.Fatalf("own address: %d dropped, %d reached the vpc; want 0 and %d", dropped, reached, count)
			}
		})
	}
}

func rxPackets(tb testing.TB, h *netlink.Handle, name string) uint64 {
	tb.Helper()
	l := mustLink(tb, h, name)
	return l.Attrs().Statistics.RxPackets
}

// With the endpoint map full, AttachPod fails with ErrMapFull and leaves
// nothing of the pod behind; PlainPod then keeps it reachable from the
// fast-path pods through the host stack (the ENI table would have sent it
// out of the node), and a later AttachPod takes it over.
func TestDatapath_AttachPod_FullMapThenPlainPod(t *testing.T) {
	testutil.SkipOnOldKernel(t, "6.8", "bpf_fib_lookup with a table id")
	n := mustTestNode(t)
	fast := n.mustPod(t, "vhfast", netip.MustParseAddr("10.99.0.51"))
	plain := n.mustPod(t, "vhplain", netip.MustParseAddr("10.99.0.52"))
	d := mustOpen(t, Options{PinDir: mustPinDir(t), MaxPods: 1})
	var err error
	mustInNetNS(t, n.ns, func() error {
		if err := d.AttachPod(n.endpoint(fast)); err != nil {
			return err
		}
		err = d.AttachPod(n.endpoint(plain))
		return d.AttachENI(n.eni.Attrs().Index)
	})
	if !errors.Is(err, ErrMapFull) {
		t.Fatalf("AttachPod on a full map = %v, want ErrMapFull", err)
	}
	if _, ok, _ := d.Endpoint(plain.ip); ok {
		t.Fatal("the failed AttachPod left an endpoint")
	}
	var fm *ebpf.Map
	if err := d.objs.VeniPodFlows.Lookup(plain.ip.As4(), &fm); err == nil {
		fm.Close()
		t.Fatal("the failed AttachPod left a flow map")
	}
	if filters := vethFilters(t, n, plain.host); len(filters) != 0 {
		t.Fatalf("the failed AttachPod left filters %v", filters)
	}

	if err := d.PlainPod(plain.ip, plain.host.Attrs().Index); err != nil {
		t.Fatal(err)
	}
	mustServeUDPEcho(t, plain.ns, netip.AddrPortFrom(plain.ip, 7))
	before := mustCounters(t, d)
	mustExchange(t, fast.ns, "udp4", netip.AddrPortFrom(plain.ip, 7))
	after := mustCounters(t, d)
	if after.FromPod.PassPlainPod <= before.FromPod.PassPlainPod {
		t.Errorf("FromPod.PassPlainPod did not grow (%+v)", after.FromPod)
	}
	if after.FromPod.RedirectNeigh != before.FromPod.RedirectNeigh {
		t.Errorf("a packet for the plain pod was sent out of the ENI (%+v)", after.FromPod)
	}
	if hs, err := d.HostStackPrefixes(); err != nil || hs[netip.PrefixFrom(plain.ip, 32)] != "plain-pod" {
		t.Errorf("host stack %v (%v), want %s as plain-pod", hs, err, plain.ip)
	}
	// Configuration changes leave the record alone.
	if err := d.SetHostStack(HostStack{NodeAddrs: []netip.Addr{nodeIP}}); err != nil {
		t.Fatal(err)
	}
	if pp, err := d.PlainPods(); err != nil || len(pp) != 1 || pp[0].IP != plain.ip || pp[0].HostIfindex != plain.host.Attrs().Index {
		t.Fatalf("PlainPods = %+v, %v", pp, err)
	}

	// Room again: the pod gets the fast path, and its record goes.
	mustInNetNS(t, n.ns, func() error { return d.DetachPod(fast.ip) })
	mustInNetNS(t, n.ns, func() error { return d.AttachPod(n.endpoint(plain)) })
	if pp, err := d.PlainPods(); err != nil || len(pp) != 0 {
		t.Fatalf("PlainPods after AttachPod = %+v, %v", pp, err)
	}
}

// DetachPodOn removes an address's endpoint only for the host veth it was
// recorded with, or when that veth is gone: a late release of an old pod
// leaves the new owner of the address alone (defect 1).
func TestDatapath_DetachPodOn_KeepsNewOwner(t *testing.T) {
	n := mustTestNode(t)
	d := mustOpen(t, Options{PinDir: mustPinDir(t)})
	ip := netip.MustParseAddr("10.99.0.61")
	old := n.mustPod(t, "vhold", ip)
	mustInNetNS(t, n.ns, func() error { return d.AttachPod(n.endpoint(old)) })
	oldIfindex, oldMAC := old.host.Attrs().Index, old.host.Attrs().HardwareAddr
	// The old pod's veth goes (its DEL tore the links down), the address
	// goes to a new pod before the old pod's fast path is released.
	must(t, "delete old veth", n.h.LinkDel(old.host))
	newer := &testPod{ip: ip}
	_, newer.ns = testutil.NewNetNS(t)
	must(t, "new veth", n.h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "vhnew"}, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(newer.ns))}))
	newer.host = mustLink(t, n.h, "vhnew")
	newer.podMAC = mustLink(t, mustHandle(t, newer.ns), "eth0").Attrs().HardwareAddr
	mustInNetNS(t, n.ns, func() error { return d.AttachPod(n.endpoint(newer)) })

	steps := []struct {
		name        string
		ifindex     int
		mac         net.HardwareAddr
		wantRemoved bool
	}{
		{"old pod by its ifindex", oldIfindex, nil, false},
		{"old pod by ifindex and mac", oldIfindex, oldMAC, false},
		{"unknown veth", 0, nil, false},
		{"new pod's ifindex with the old mac", newer.host.Attrs().Index, oldMAC, false},
		{"new pod itself", newer.host.Attrs().Index, newer.host.Attrs().HardwareAddr, true},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			var removed bool
			mustInNetNS(t, n.ns, func() (err error) {
				removed, err = d.DetachPodOn(ip, st.ifindex, st.mac)
				return err
			})
			_, present, err := d.Endpoint(ip)
			if err != nil {
				t.Fatal(err)
			}
			if removed != st.wantRemoved || present == st.wantRemoved {
				t.Fatalf("DetachPodOn(%s, %d, %v) removed %v, endpoint present %v; want removed %v", ip, st.ifindex, st.mac, removed, present, st.wantRemoved)
			}
		})
	}

	t.Run("a gone veth's endpoint goes without naming it", func(t *testing.T) {
		mustInNetNS(t, n.ns, func() error { return d.AttachPod(n.endpoint(newer)) })
		must(t, "delete new veth", n.h.LinkDel(newer.host))
		var removed bool
		mustInNetNS(t, n.ns, func() (err error) {
			removed, err = d.DetachPodOn(ip, 0, nil)
			return err
		})
		if _, present, _ := d.Endpoint(ip); !removed || present {
			t.Fatalf("removed %v, present %v; want the dangling endpoint gone", removed, present)
		}
	})
}

// The Go copy of the inner map template must be what the object declares:
// the kernel refuses an inner map that differs.
func TestPodFlowsSpec_MatchesC(t *testing.T) {
	spec, err := loadFastpath()
	if err != nil {
		t.Fatal(err)
	}
	for outer, tmpl := range map[string]*ebpf.MapSpec{"veni_pod_flows": &podFlowsSpec, "veni_pod_flows6": &podFlows6Spec} {
		inner := spec.Maps[outer].InnerMap
		if inner == nil {
			t.Fatalf("%s has no inner map", outer)
		}
		if inner.Type != tmpl.Type || inner.KeySize != tmpl.KeySize || inner.ValueSize != tmpl.ValueSize ||
			inner.MaxEntries != tmpl.MaxEntries || inner.Flags != tmpl.Flags {
			t.Fatalf("%s: inner map %+v, Go template %+v", outer, inner, tmpl)
		}
	}
}

// Ensure a released address's flow map is kept, emptied and used again by
// the address's next pod (no write to the map of maps, whose RCU wait
// costs a CNI ADD most of its time on a busy node), that the next pod
// never sees the previous one's flows, and that PruneFlows removes the
// map once the node no longer has the address.
func TestDatapath_FlowMapReused(t *testing.T) {
	testutil.SkipOnOldKernel(t, "6.8", "bpf_fib_lookup with a table id")
	n := mustTestNode(t)
	ip := netip.MustParseAddr("10.99.0.61")
	first := n.mustPod(t, "vhreuse1", ip)
	d := mustOpen(t, Options{PinDir: mustPinDir(t)})
	mustInNetNS(t, n.ns, func() error { return d.AttachPod(n.endpoint(first)) })
	flows := mustPodFlows(t, d, ip)
	info, err := flows.Info()
	if err != nil {
		t.Fatal(err)
	}
	firstID, _ := info.ID()
	stale := fastpathFlowKey{Addr: ip.As4(), Port: htons(40999), Proto: 6}
	if err := flows.Put(stale, uint32(1)); err != nil {
		t.Fatal(err)
	}

	var removed bool
	mustInNetNS(t, n.ns, func() (err error) {
		removed, err = d.DetachPodOn(ip, first.host.Attrs().Index, first.host.Attrs().HardwareAddr)
		return err
	})
	if !removed {
		t.Fatal("DetachPodOn removed nothing")
	}
	if _, ok, _ := d.Endpoint(ip); ok {
		t.Fatal("the released pod's endpoint is still there")
	}

	// The address's next pod, on another veth (the first is gone, as
	// after a DEL); no traffic here, so a bare veth pair.
	must(t, "delete the first pod's veth", n.h.LinkDel(first.host))
	must(t, "add the next pod's veth", n.h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "vhreuse2"}, PeerName: "vhreuse2p"}))
	second := &testPod{ip: ip, host: mustLink(t, n.h, "vhreuse2"), podMAC: mustLink(t, n.h, "vhreuse2p").Attrs().HardwareAddr}
	mustInNetNS(t, n.ns, func() error { return d.AttachPod(n.endpoint(second)) })
	flows = mustPodFlows(t, d, ip)
	info, err = flows.Info()
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := info.ID(); id != firstID {
		t.Errorf("the next pod got flow map %d, want the kept %d", id, firstID)
	}
	if got := countEntries(t, flows); got != 0 {
		t.Fatalf("the next pod's flow map remembers %d flows of the previous pod", got)
	}

	// Prune: kept while the node has the address or a pod uses it.
	if n, err := d.PruneFlows(func(netip.Addr) bool { return false }); err != nil || n != 0 {
		t.Fatalf("PruneFlows with a live pod removed %d (%v), want 0", n, err)
	}
	mustInNetNS(t, n.ns, func() (err error) {
		_, err = d.DetachPodOn(ip, second.host.Attrs().Index, second.host.Attrs().HardwareAddr)
		return err
	})
	if n, err := d.PruneFlows(func(a netip.Addr) bool { return a == ip }); err != nil || n != 0 {
		t.Fatalf("PruneFlows of an address the node has removed %d (%v), want 0", n, err)
	}
	if n, err := d.PruneFlows(func(netip.Addr) bool { return false }); err != nil || n != 1 {
		t.Fatalf("PruneFlows of a released address removed %d (%v), want 1", n, err)
	}
	var fm *ebpf.Map
	if err := d.objs.VeniPodFlows.Lookup(ip.As4(), &fm); err == nil {
		fm.Close()
		t.Fatal("the pruned flow map is still there")
	}
}
