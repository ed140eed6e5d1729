package fabric

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"
	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"

	"github.com/veni-cni/veni/eni/sim"
	"github.com/veni-cni/veni/eni/sim/fabric/trunkbpf"
)

// mustTrunk creates a trunk ENI (default group, one secondary IP),
// attaches it to node-1 and configures its NIC as mustENI does. It
// returns the ENI, its addresses, the NIC and its routing table.
func (s *sgCloud) mustTrunk(t *testing.T) (id string, ips []string, dev string, table int) {
	t.Helper()
	create := ecs.CreateCreateNetworkInterfaceRequest()
	create.VSwitchId, create.InstanceType = "vsw-sim-a", "Trunk"
	create.SecurityGroupIds = &[]string{sim.DefaultSecurityGroupID}
	create.SecondaryPrivateIpAddressCount = requests.NewInteger(1)
	created, err := s.client.CreateNetworkInterface(create)
	if err != nil {
		t.Fatalf("create trunk: %v", err)
	}
	id = created.NetworkInterfaceId
	for _, set := range created.PrivateIpSets.PrivateIpSet {
		ips = append(ips, set.PrivateIpAddress)
	}
	attach := ecs.CreateAttachNetworkInterfaceRequest()
	attach.NetworkInterfaceId, attach.InstanceId = id, "i-1"
	if _, err := s.client.AttachNetworkInterface(attach); err != nil {
		t.Fatal(err)
	}
	s.waitStatus(t, id, "InUse")
	// InUse comes first, then the fabric's attach, as a NIC appears on a
	// real node some time after the API says InUse.
	waitFabric(t, s.f, "trunk "+id+" wired", func(f *Fabric) bool { return f.trunks[id] != nil })
	dev, table = s.devOf(t, id)
	h := mustHandle(t, s.n1.NetNS)
	link, err := h.LinkByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(link); err != nil {
		t.Fatal(err)
	}
	gw := sim.GatewayOf(testVswA)
	if err := h.RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Gw: gw.AsSlice(), Table: table, Flags: int(netlink.FLAG_ONLINK)}); err != nil {
		t.Fatal(err)
	}
	for _, ip := range ips {
		s.mustUse(t, s.n1, dev, table, ip)
	}
	return id, ips, dev, table
}

func (s *sgCloud) waitStatus(t *testing.T, id, status string) sim.ENISnapshot {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		for _, e := range s.cloud.Snapshot().ENIs {
			if e.ID == id && e.Status == status {
				return e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("eni %s never %s", id, status)
		}
	}
}

// waitFabric waits until cond holds of the fabric (read under its lock,
// so never in the middle of a Fabric call).
func waitFabric(t *testing.T, f *Fabric, what string, cond func(*Fabric) bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		f.mu.Lock()
		ok := cond(f)
		f.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("fabric: never %s", what)
		}
	}
}

// mustMember creates a member ENI in groups (its primary IP only) and
// attaches it to node-1 through trunk; it returns the ENI, its address
// and its VLAN ID (Attachment.DeviceIndex).
func (s *sgCloud) mustMember(t *testing.T, trunk string, groups ...string) (id string, ip netip.Addr, vid uint16) {
	t.Helper()
	create := ecs.CreateCreateNetworkInterfaceRequest()
	create.VSwitchId = "vsw-sim-a"
	create.SecurityGroupIds = &groups
	created, err := s.client.CreateNetworkInterface(create)
	if err != nil {
		t.Fatalf("create member in %v: %v", groups, err)
	}
	id = created.NetworkInterfaceId
	ip = netip.MustParseAddr(created.PrivateIpAddress)
	attach := ecs.CreateAttachNetworkInterfaceRequest()
	attach.NetworkInterfaceId, attach.InstanceId, attach.TrunkNetworkInstanceId = id, "i-1", trunk
	if _, err := s.client.AttachNetworkInterface(attach); err != nil {
		t.Fatalf("attach member %s through %s: %v", id, trunk, err)
	}
	s.waitStatus(t, id, "InUse")
	waitFabric(t, s.f, "member "+id+" carried", func(f *Fabric) bool { return f.members[id] != nil })
	describe := ecs.CreateDescribeNetworkInterfacesRequest()
	describe.NetworkInterfaceId = &[]string{id}
	resp, err := s.client.DescribeNetworkInterfaces(describe)
	if err != nil {
		t.Fatal(err)
	}
	d := resp.NetworkInterfaceSets.NetworkInterfaceSet[0]
	if d.Type != "Member" || d.Attachment.TrunkNetworkInterfaceId != trunk {
		t.Fatalf("member %s: type %q, trunk %q", id, d.Type, d.Attachment.TrunkNetworkInterfaceId)
	}
	return id, ip, uint16(d.Attachment.DeviceIndex)
}

// trunkProg is the fabric's programs of trunk.
func trunkProg(t *testing.T, f *Fabric, trunk string) *trunkbpf.Trunk {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.trunks[trunk]
	if !ok {
		t.Fatalf("the fabric has no programs for trunk %s", trunk)
	}
	return st.prog
}

func trunkStats(t *testing.T, f *Fabric, trunk string) trunkbpf.Stats {
	t.Helper()
	s, err := trunkProg(t, f, trunk).Stats()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// vpcRoutes lists the VPC's sim routes and permanent neighbours on the
// trunk's link: destinations, and address → MAC.
func vpcRoutes(t *testing.T, f *Fabric, trunk string) ([]netip.Addr, map[netip.Addr]string) {
	t.Helper()
	h := mustHandle(t, f.VPCNetNS())
	link, err := h.LinkByName(LinkName(trunk))
	if err != nil {
		t.Fatal(err)
	}
	routes, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{LinkIndex: link.Attrs().Index, Protocol: RouteProtocol}, netlink.RT_FILTER_OIF|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		t.Fatal(err)
	}
	var dsts []netip.Addr
	for _, r := range routes {
		a, _ := netip.AddrFromSlice(r.Dst.IP)
		dsts = append(dsts, a.Unmap())
	}
	neighs, err := h.NeighList(link.Attrs().Index, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	macs := map[netip.Addr]string{}
	for _, n := range neighs {
		if n.State&netlink.NUD_PERMANENT != 0 {
			a, _ := netip.AddrFromSlice(n.IP)
			macs[a.Unmap()] = n.HardwareAddr.String()
		}
	}
	return dsts, macs
}

func (s *sgCloud) eniMAC(t *testing.T, id string) string {
	t.Helper()
	for _, e := range s.cloud.Snapshot().ENIs {
		if e.ID == id {
			return e.MAC
		}
	}
	t.Fatalf("no eni %s", id)
	return ""
}

// Ensure the VPC carries a trunk member's traffic as the cloud does: a
// pod on node-1 sending with the member's address, tagged with the
// member's VLAN ID by the node, reaches node-2 and gets its replies
// tagged; a wrong VLAN ID, a source that is not the member's, and the
// member's address untagged are dropped; the member's enterprise group
// judges its traffic both ways while the trunk's own traffic keeps the
// trunk's group; addresses assigned to the member after its attach are
// carried, and unassigned ones no longer; and a detach takes the member's
// routes and map entries away so that its VLAN ID serves the next member.
func TestFabric_Trunk_MemberTraffic(t *testing.T) {
	s := mustSGCloud(t)
	web := netip.AddrPortFrom(s.i2.PrimaryIP, 8080).String()
	mustServeTCP(t, s.n2.NetNS, web)
	s.authorize(t, "sg-sim-web", "8080/8080", "172.30.0.0/16", "")

	trunk, trunkIPs, dev, table := s.mustTrunk(t)
	trunkIP := trunkIPs[1] // a shared-IP pod's address on the trunk
	ent := s.createGroup(t, "enterprise")
	s.authorize(t, ent, "8080/8080", "172.30.0.0/16", "")
	member, memberIP, vid := s.mustMember(t, trunk, ent)
	if vid < 1 || vid > 4094 {
		t.Fatalf("member VLAN ID %d", vid)
	}
	pod := s.mustPod(t, memberIP, table)
	node := mustNodeTagger(t, s.n1, dev, vid)
	node.tag(t, memberIP, vid)

	dsts, macs := vpcRoutes(t, s.f, trunk)
	if !slices.Contains(dsts, memberIP) || macs[memberIP] != s.eniMAC(t, trunk) {
		t.Fatalf("vpc: member %s not routed to the trunk's link with its MAC %s: routes %v, neighbours %v", memberIP, s.eniMAC(t, trunk), dsts, macs)
	}
	wantMap := []trunkbpf.Member{{VLAN: vid, Mark: memberMark(int(vid)), Addrs: []netip.Addr{memberIP}}}
	if got, err := trunkProg(t, s.f, trunk).Members(); err != nil || !reflect.DeepEqual(got, wantMap) {
		t.Fatalf("trunk maps: %+v (%v), want %+v", got, err, wantMap)
	}

	t.Run("member egress is the member's group's", func(t *testing.T) {
		// The trunk's own address leaves through the trunk's (normal,
		// open) group; the member's tagged traffic passes the trunk
		// programs but its enterprise group has no egress rule yet.
		mustDial(t, s.n1, trunkIP, web, true)
		before := trunkStats(t, s.f, trunk)
		mustDial(t, tNode(pod), memberIP.String(), web, false)
		if after := trunkStats(t, s.f, trunk); after.TaggedIn == before.TaggedIn {
			t.Errorf("the member's tagged frames never reached the groups: %+v", after)
		}
		egress := ecs.CreateAuthorizeSecurityGroupEgressRequest()
		egress.SecurityGroupId, egress.IpProtocol, egress.PortRange = ent, "tcp", "8080/8080"
		egress.DestCidrIp = "172.30.0.0/16"
		if _, err := s.client.AuthorizeSecurityGroupEgress(egress); err != nil {
			t.Fatal(err)
		}
		popped, out := node.popped(t), trunkStats(t, s.f, trunk).TaggedOut
		mustDial(t, tNode(pod), memberIP.String(), web, true)
		if node.popped(t) == popped || trunkStats(t, s.f, trunk).TaggedOut == out {
			t.Errorf("replies to the member did not come back tagged with VLAN ID %d", vid)
		}
	})

	t.Run("member ingress is the member's group's", func(t *testing.T) {
		for _, port := range []string{"8080", "9090"} {
			mustServeTCP(t, pod, net.JoinHostPort(memberIP.String(), port))
		}
		mustServeTCP(t, s.n1.NetNS, net.JoinHostPort(trunkIP, "9090"))
		s.authorize(t, sim.DefaultSecurityGroupID, "9090/9090", "172.30.0.0/16", "")
		n2IP := s.i2.PrimaryIP.String()
		mustDial(t, s.n2, n2IP, net.JoinHostPort(memberIP.String(), "8080"), true)
		mustDial(t, s.n2, n2IP, net.JoinHostPort(memberIP.String(), "9090"), false) // the trunk's group would allow it
		mustDial(t, s.n2, n2IP, net.JoinHostPort(trunkIP, "9090"), true)
	})

	t.Run("a wrong VLAN ID is dropped", func(t *testing.T) {
		node.tag(t, memberIP, vid+1)
		before := trunkStats(t, s.f, trunk)
		mustDial(t, tNode(pod), memberIP.String(), web, false)
		if after := trunkStats(t, s.f, trunk); after.DropVLAN == before.DropVLAN {
			t.Errorf("no frame counted as of an unknown VLAN: %+v", after)
		}
	})

	t.Run("a source not of the member is dropped", func(t *testing.T) {
		// The trunk's own address, tagged with the member's VLAN ID; the
		// member's address now leaves untagged.
		node.tag(t, netip.MustParseAddr(trunkIP), vid)
		before := trunkStats(t, s.f, trunk)
		mustDial(t, s.n1, trunkIP, web, false)
		mid := trunkStats(t, s.f, trunk)
		if mid.DropSource == before.DropSource {
			t.Errorf("no frame counted as a spoofed source: %+v", mid)
		}
		mustDial(t, tNode(pod), memberIP.String(), web, false)
		if after := trunkStats(t, s.f, trunk); after.DropUntagged == mid.DropUntagged {
			t.Errorf("no untagged frame from the member's address counted: %+v", after)
		}
	})

	t.Run("untagged member traffic is dropped", func(t *testing.T) {
		node.tag(t, memberIP, 0)
		before := trunkStats(t, s.f, trunk)
		mustDial(t, tNode(pod), memberIP.String(), web, false)
		if after := trunkStats(t, s.f, trunk); after.DropUntagged == before.DropUntagged {
			t.Errorf("no untagged frame from the member's address counted: %+v", after)
		}
		mustDial(t, s.n1, trunkIP, web, true) // the trunk's own untagged traffic still passes
		node.tag(t, memberIP, vid)
		mustDial(t, tNode(pod), memberIP.String(), web, true)
	})

	t.Run("addresses assigned after the attach", func(t *testing.T) {
		assign := ecs.CreateAssignPrivateIpAddressesRequest()
		assign.NetworkInterfaceId = member
		assign.SecondaryPrivateIpAddressCount = requests.NewInteger(1)
		got, err := s.client.AssignPrivateIpAddresses(assign)
		if err != nil {
			t.Fatal(err)
		}
		added := netip.MustParseAddr(got.AssignedPrivateIpAddressesSet.PrivateIpSet.PrivateIpAddress[0])
		want := []trunkbpf.Member{{VLAN: vid, Mark: memberMark(int(vid)), Addrs: []netip.Addr{memberIP, added}}}
		slices.SortFunc(want[0].Addrs, netip.Addr.Compare)
		if got, err := trunkProg(t, s.f, trunk).Members(); err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("trunk maps: %+v (%v), want %+v", got, err, want)
		}
		if dsts, _ := vpcRoutes(t, s.f, trunk); !slices.Contains(dsts, added) {
			t.Fatalf("vpc does not route %s, assigned to the member: %v", added, dsts)
		}
		// The pod takes the new address too; tagged, it is the member's.
		s.mustPodAddr(t, pod, added, table)
		node.tag(t, added, vid)
		mustDial(t, tNode(pod), added.String(), web, true)
		node.tag(t, memberIP, vid)

		unassign := ecs.CreateUnassignPrivateIpAddressesRequest()
		unassign.NetworkInterfaceId = member
		unassign.PrivateIpAddress = &[]string{added.String()}
		if _, err := s.client.UnassignPrivateIpAddresses(unassign); err != nil {
			t.Fatal(err)
		}
		want[0].Addrs = []netip.Addr{memberIP}
		if got, err := trunkProg(t, s.f, trunk).Members(); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("trunk maps after the unassign: %+v (%v), want %+v", got, err, want)
		}
		if dsts, macs := vpcRoutes(t, s.f, trunk); slices.Contains(dsts, added) || macs[added] != "" {
			t.Errorf("vpc still routes unassigned %s: routes %v, neighbours %v", added, dsts, macs)
		}
	})

	t.Run("detach frees the VLAN ID", func(t *testing.T) {
		detach := ecs.CreateDetachNetworkInterfaceRequest()
		detach.NetworkInterfaceId, detach.InstanceId, detach.TrunkNetworkInstanceId = member, "i-1", trunk
		if _, err := s.client.DetachNetworkInterface(detach); err != nil {
			t.Fatal(err)
		}
		s.waitStatus(t, member, "Available")
		dsts, macs := vpcRoutes(t, s.f, trunk)
		if slices.Contains(dsts, memberIP) || macs[memberIP] != "" {
			t.Errorf("vpc still routes detached member %s: routes %v, neighbours %v", memberIP, dsts, macs)
		}
		if got, err := trunkProg(t, s.f, trunk).Members(); err != nil || len(got) != 0 {
			t.Errorf("trunk maps after the detach: %+v (%v), want empty", got, err)
		}
		mustDial(t, tNode(pod), memberIP.String(), web, false)

		next, nextIP, nextVID := s.mustMember(t, trunk, ent)
		if nextVID != vid {
			t.Fatalf("next member %s got VLAN ID %d, want the freed %d", next, nextVID, vid)
		}
		want := []trunkbpf.Member{{VLAN: vid, Mark: memberMark(int(vid)), Addrs: []netip.Addr{nextIP}}}
		if got, err := trunkProg(t, s.f, trunk).Members(); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("trunk maps: %+v (%v), want %+v", got, err, want)
		}
		if dsts, _ := vpcRoutes(t, s.f, trunk); !slices.Contains(dsts, nextIP) {
			t.Errorf("vpc does not route the next member's %s: %v", nextIP, dsts)
		}
	})
}

// Ensure a member's IPv6 addresses ride the trunk like its IPv4 ones:
// routed to the trunk's link, accepted only tagged with its VLAN ID (the
// untagged IPv6 of Terway's commit e3acb0b6 is dropped), and delivered
// tagged.
func TestFabric_Trunk_MemberIPv6(t *testing.T) {
	f := mustFabric(t)
	s := &sgCloud{f: f, n1: mustAddNode(t, f, "node-1", "i-1"), n2: mustAddNode(t, f, "node-2", "i-2")}
	s.cloud, s.client = mustSimOn(t, f)
	t.Cleanup(func() {
		if snap := s.cloud.Snapshot(); snap.FabricErrors != 0 {
			t.Errorf("fabric errors: %d (last: %s)", snap.FabricErrors, snap.LastFabric)
		}
	})
	var err error
	if _, err = s.cloud.AddInstance(sim.InstanceSpec{ID: "i-1", Type: "ecs.g7.large", VSwitchID: "vsw-sim-a"}); err != nil {
		t.Fatal(err)
	}
	if s.i2, err = s.cloud.AddInstance(sim.InstanceSpec{ID: "i-2", Type: "ecs.g7.large", VSwitchID: "vsw-sim-a"}); err != nil {
		t.Fatal(err)
	}
	peer := mustAssignIPv6(t, s.client, s.i2.PrimaryENIID, 1)[0]
	configure6(t, s.n2, 128, peer)
	web := netip.AddrPortFrom(peer, 8080).String()
	mustServeTCP(t, s.n2.NetNS, web)

	trunk, _, dev, table := s.mustTrunk(t)
	member, memberIP, vid := s.mustMember(t, trunk, sim.DefaultSecurityGroupID)
	member6 := mustAssignIPv6(t, s.client, member, 1)[0]
	h := mustHandle(t, s.n1.NetNS)
	nic, err := h.LinkByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	route := &netlink.Route{LinkIndex: nic.Attrs().Index, Gw: testGW6.AsSlice(), Family: netlink.FAMILY_V6, Table: table, Flags: int(netlink.FLAG_ONLINK)}
	if err := h.RouteAdd(route); err != nil {
		t.Fatal(err)
	}
	pod := s.mustPod(t, memberIP, table)
	s.mustPod6(t, pod, member6, table)
	node := mustNodeTagger(t, s.n1, dev, vid)

	want := []trunkbpf.Member{{VLAN: vid, Mark: memberMark(int(vid)), Addrs: []netip.Addr{memberIP, member6}}}
	if got, err := trunkProg(t, f, trunk).Members(); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("trunk maps: %+v (%v), want %+v", got, err, want)
	}

	// Tagged: carried both ways.
	node.tag(t, member6, vid)
	popped := node.popped(t)
	mustDial(t, tNode(pod), member6.String(), web, true)
	if node.popped(t) == popped {
		t.Errorf("IPv6 replies to the member did not come back tagged with VLAN ID %d", vid)
	}
	// Untagged, as Terway's IPv6 filter once left it: dropped.
	node.tag(t, member6, 0)
	before := trunkStats(t, f, trunk)
	mustDial(t, tNode(pod), member6.String(), web, false)
	if after := trunkStats(t, f, trunk); after.DropUntagged == before.DropUntagged {
		t.Errorf("no untagged IPv6 frame from the member counted: %+v", after)
	}
}

// trunkProgramIDs lists the ids of the programs on the trunk's VPC-side
// link (ingress, then egress).
func trunkProgramIDs(t *testing.T, f *Fabric, trunk string) []ebpf.ProgramID {
	t.Helper()
	h := mustHandle(t, f.VPCNetNS())
	link, err := h.LinkByName(LinkName(trunk))
	if err != nil {
		t.Fatal(err)
	}
	var ids []ebpf.ProgramID
	for _, parent := range []uint32{netlink.HANDLE_MIN_INGRESS, netlink.HANDLE_MIN_EGRESS} {
		filters, err := h.FilterList(link, parent)
		if err != nil {
			t.Fatal(err)
		}
		for _, fl := range filters {
			if b, ok := fl.(*netlink.BpfFilter); ok {
				ids = append(ids, ebpf.ProgramID(b.Id))
			}
		}
	}
	if len(ids) != 2 {
		t.Fatalf("trunk %s link has programs %v, want one on ingress and one on egress", trunk, ids)
	}
	return ids
}

// gone reports whether every program of ids is unloaded within a
// second (the kernel frees a deleted link's filters after an RCU grace
// period).
func gone(t *testing.T, ids []ebpf.ProgramID) bool {
	t.Helper()
	for deadline := time.Now().Add(time.Second); ; time.Sleep(10 * time.Millisecond) {
		loaded := false
		for _, id := range ids {
			p, err := ebpf.NewProgramFromID(id)
			if err == nil {
				p.Close()
				loaded = true
				continue
			}
			if !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("program %d: %v", id, err)
			}
		}
		if !loaded {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// Ensure the fabric's own rules for members: a member needs an attached
// trunk and a VLAN ID free on it, a detach of an unknown member is no
// error, and the trunk's programs go with the trunk's detach and with
// Close.
func TestFabric_AttachMember_Rules(t *testing.T) {
	f := mustFabric(t)
	mustAddNode(t, f, "node-1", "i-1")
	mustAttach(t, f, primaryLink(t, "i-1", "eni-primary-1", "00:16:3e:00:00:01", testVswA, "172.30.1.10"))
	trunkLink := func(id, macStr, ip string, idx int) sim.ENILink {
		return sim.ENILink{InstanceID: "i-1", ENIID: id, MAC: mac(t, macStr), DeviceIndex: idx, Trunk: true,
			VSwitchCIDR: testVswA, Gateway: sim.GatewayOf(testVswA), IPs: []netip.Addr{netip.MustParseAddr(ip)}}
	}
	mustAttach(t, f, trunkLink("eni-trunk-1", "00:16:3e:00:00:02", "172.30.1.11", 1))
	member := func(id string, vlan int, ip string) sim.MemberLink {
		return sim.MemberLink{InstanceID: "i-1", TrunkID: "eni-trunk-1", ENIID: id, VLAN: vlan,
			VSwitchCIDR: testVswA, Gateway: sim.GatewayOf(testVswA), IPs: []netip.Addr{netip.MustParseAddr(ip)}}
	}
	if err := f.AttachMember(member("eni-m1", 1, "172.30.1.20")); err != nil {
		t.Fatal(err)
	}
	// Again: re-applied, not refused.
	if err := f.AttachMember(member("eni-m1", 1, "172.30.1.20")); err != nil {
		t.Fatalf("attach the same member again: %v", err)
	}
	notTrunk := member("eni-m2", 2, "172.30.1.21")
	notTrunk.TrunkID = "eni-primary-1"
	if err := f.AttachMember(notTrunk); !errors.Is(err, ErrUnknownTrunk) {
		t.Errorf("member through a non-trunk ENI: %v, want ErrUnknownTrunk", err)
	}
	if err := f.AttachMember(member("eni-m2", 1, "172.30.1.21")); err == nil {
		t.Error("a second member on VLAN ID 1 was accepted")
	}
	if err := f.AttachMember(member("eni-m2", 4095, "172.30.1.21")); err == nil {
		t.Error("VLAN ID 4095 was accepted")
	}
	if err := f.DetachMember("i-1", "eni-trunk-1", "eni-unknown"); err != nil {
		t.Errorf("detach of a member the fabric does not carry: %v", err)
	}
	if err := f.DetachMember("i-1", "eni-other-trunk", "eni-m1"); err == nil {
		t.Error("detach naming the wrong trunk was accepted")
	}

	ids := trunkProgramIDs(t, f, "eni-trunk-1")
	if err := f.DetachMember("i-1", "eni-trunk-1", "eni-m1"); err != nil {
		t.Fatal(err)
	}
	if err := f.DetachENI("i-1", "eni-trunk-1"); err != nil {
		t.Fatal(err)
	}
	if !gone(t, ids) {
		t.Errorf("trunk programs %v still loaded after the trunk's detach", ids)
	}

	mustAttach(t, f, trunkLink("eni-trunk-2", "00:16:3e:00:00:03", "172.30.1.12", 2))
	ids = trunkProgramIDs(t, f, "eni-trunk-2")
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if !gone(t, ids) {
		t.Errorf("trunk programs %v still loaded after Close", ids)
	}
}
