package fabric

import (
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"
	"github.com/vishvananda/netlink"

	"github.com/veni-cni/veni/eni/sim"
)

// sgCloud is a cloud on a fabric with node-1 (i-1, vsw-sim-a, the default
// group) and node-2 (i-2, vsw-sim-b, sg-sim-web), driven through the SDK.
type sgCloud struct {
	f      *Fabric
	cloud  *sim.Cloud
	client *ecs.Client
	n1, n2 Node
	i2     sim.Instance
}

func mustSGCloud(t *testing.T) *sgCloud {
	t.Helper()
	s := &sgCloud{f: mustFabric(t)}
	s.n1 = mustAddNode(t, s.f, "node-1", "i-1")
	s.n2 = mustAddNode(t, s.f, "node-2", "i-2")
	cfg := sim.DefaultConfig()
	cfg.AttachDelay, cfg.DetachDelay = 10*time.Millisecond, 10*time.Millisecond
	cfg.SecurityGroups = []string{sim.DefaultSecurityGroupID, "sg-sim-web"}
	cfg.Credentials = map[string]string{"LTAIsg": "sg-secret"}
	cfg.Fabric = s.f
	var err error
	if s.cloud, err = sim.New(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.cloud.Close() })
	if _, err := s.cloud.AddInstance(sim.InstanceSpec{ID: "i-1", Type: "ecs.g7.large", VSwitchID: "vsw-sim-a"}); err != nil {
		t.Fatal(err)
	}
	s.i2, err = s.cloud.AddInstance(sim.InstanceSpec{ID: "i-2", Type: "ecs.g7.large", VSwitchID: "vsw-sim-b", SecurityGroupID: "sg-sim-web"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.cloud.APIHandler())
	t.Cleanup(srv.Close)
	if s.client, err = ecs.NewClientWithAccessKey("cn-hangzhou", "LTAIsg", "sg-secret"); err != nil {
		t.Fatal(err)
	}
	s.client.Domain = strings.TrimPrefix(srv.URL, "http://")
	s.client.SetNoProxy("127.0.0.1")
	t.Cleanup(s.client.Shutdown)
	t.Cleanup(func() {
		if snap := s.cloud.Snapshot(); snap.FabricErrors != 0 {
			t.Errorf("fabric errors: %d (last: %s)", snap.FabricErrors, snap.LastFabric)
		}
	})
	return s
}

// mustENI creates a secondary ENI in groups with one secondary IP through
// the SDK, attaches it to the node and configures its NIC in the node the
// way veni does for pods: the addresses, and a rule per address to a table
// (100 + device index) whose default route leaves through the NIC.
func (s *sgCloud) mustENI(t *testing.T, n Node, instanceID, vswID string, groups ...string) (id string, ips []string) {
	t.Helper()
	create := ecs.CreateCreateNetworkInterfaceRequest()
	create.VSwitchId = vswID
	create.SecurityGroupIds = &groups
	create.SecondaryPrivateIpAddressCount = requests.NewInteger(1)
	created, err := s.client.CreateNetworkInterface(create)
	if err != nil {
		t.Fatalf("create eni in %v: %v", groups, err)
	}
	id = created.NetworkInterfaceId
	for _, set := range created.PrivateIpSets.PrivateIpSet {
		ips = append(ips, set.PrivateIpAddress)
	}
	attach := ecs.CreateAttachNetworkInterfaceRequest()
	attach.NetworkInterfaceId, attach.InstanceId = id, instanceID
	if _, err := s.client.AttachNetworkInterface(attach); err != nil {
		t.Fatal(err)
	}
	var dev string
	for deadline := time.Now().Add(5 * time.Second); dev == ""; time.Sleep(10 * time.Millisecond) {
		for _, e := range s.cloud.Snapshot().ENIs {
			if e.ID == id && e.Status == "InUse" {
				dev = NodeIfName(false, e.DeviceIndex)
			}
		}
		if dev == "" && time.Now().After(deadline) {
			t.Fatalf("eni %s never InUse", id)
		}
	}
	// InUse comes before the NIC shows up in the node, as on the real
	// cloud: wait for the link as veni does.
	h := mustHandle(t, n.NetNS)
	var link netlink.Link
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var err error
		if link, err = h.LinkByName(dev); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("eni %s InUse but its NIC %s never appeared in the node: %v", id, dev, err)
		}
	}
	if err := h.LinkSetUp(link); err != nil {
		t.Fatal(err)
	}
	vsw := testVswA
	if vswID == "vsw-sim-b" {
		vsw = testVswB
	}
	table := 100 + link.Attrs().Index
	gw := sim.GatewayOf(vsw)
	if err := h.RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Gw: gw.AsSlice(), Table: table, Flags: int(netlink.FLAG_ONLINK)}); err != nil {
		t.Fatal(err)
	}
	for _, ip := range ips {
		s.mustUse(t, n, dev, table, ip)
	}
	return id, ips
}

// mustUse puts ip on the node's NIC dev and routes what it sends by table.
func (s *sgCloud) mustUse(t *testing.T, n Node, dev string, table int, ip string) {
	t.Helper()
	h := mustHandle(t, n.NetNS)
	link, err := h.LinkByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := netlink.ParseAddr(ip + "/32")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.AddrAdd(link, addr); err != nil {
		t.Fatal(err)
	}
	rule := netlink.NewRule()
	rule.Src = addr.IPNet
	rule.Table = table
	if err := h.RuleAdd(rule); err != nil {
		t.Fatal(err)
	}
}

// mustDial connects from src in n to dst, and fails the test unless the
// outcome is want. Negative cases cost their timeout.
func mustDial(t *testing.T, n Node, src, dst string, want bool) {
	t.Helper()
	timeout := 5 * time.Second
	if !want {
		timeout = 1500 * time.Millisecond
	}
	err := dialFrom(n.NetNS, src, dst, timeout)
	switch {
	case want && err != nil:
		t.Errorf("%s -> %s: %v, want connected", src, dst, err)
	case !want && err == nil:
		t.Errorf("%s -> %s connected, want dropped", src, dst)
	}
}

func (s *sgCloud) authorize(t *testing.T, sg, ports, srcCIDR, srcGroup string) {
	t.Helper()
	auth := ecs.CreateAuthorizeSecurityGroupRequest()
	auth.SecurityGroupId, auth.IpProtocol, auth.PortRange = sg, "tcp", ports
	auth.SourceCidrIp, auth.SourceGroupId = srcCIDR, srcGroup
	if _, err := s.client.AuthorizeSecurityGroup(auth); err != nil {
		t.Fatalf("authorize %s %s: %v", sg, ports, err)
	}
}

func (s *sgCloud) createGroup(t *testing.T, typ string) string {
	t.Helper()
	req := ecs.CreateCreateSecurityGroupRequest()
	req.VpcId, req.SecurityGroupType = sim.DefaultConfig().VPCID, typ
	resp, err := s.client.CreateSecurityGroup(req)
	if err != nil {
		t.Fatalf("create %s group: %v", typ, err)
	}
	return resp.SecurityGroupId
}

// Ensure a group's membership follows every way an ENI gets addresses:
// created with them, a newly assigned secondary IP and a delegated
// prefix, and drops them when the ENI changes groups. sg-sim-web (node-2)
// admits tcp/8080 from the default group only, so a source passes only
// while the VPC counts it as a member; 8081 is admitted from one CIDR.
func TestFabric_SecurityGroups_MembershipFollowsAddresses(t *testing.T) {
	s := mustSGCloud(t)
	web := netip.AddrPortFrom(s.i2.PrimaryIP, 8080).String()
	other := netip.AddrPortFrom(s.i2.PrimaryIP, 8081).String()
	mustServeTCP(t, s.n2.NetNS, web)
	mustServeTCP(t, s.n2.NetNS, other)
	s.authorize(t, "sg-sim-web", "8080/8080", "", sim.DefaultSecurityGroupID)

	eniID, ips := s.mustENI(t, s.n1, "i-1", "vsw-sim-a", sim.DefaultSecurityGroupID)
	if len(ips) != 2 {
		t.Fatalf("created eni has %v, want a primary and a secondary IP", ips)
	}
	// Addresses the ENI was created with.
	mustDial(t, s.n1, ips[1], web, true)
	mustDial(t, s.n1, ips[1], other, false)

	// A secondary IP assigned later.
	assign := ecs.CreateAssignPrivateIpAddressesRequest()
	assign.NetworkInterfaceId = eniID
	assign.SecondaryPrivateIpAddressCount = requests.NewInteger(1)
	got, err := s.client.AssignPrivateIpAddresses(assign)
	if err != nil {
		t.Fatal(err)
	}
	added := got.AssignedPrivateIpAddressesSet.PrivateIpSet.PrivateIpAddress
	if len(added) != 1 {
		t.Fatalf("assigned %v, want one address", added)
	}
	dev, table := s.devOf(t, eniID)
	s.mustUse(t, s.n1, dev, table, added[0])
	mustDial(t, s.n1, added[0], web, true)

	// A prefix: one of its addresses other than the first.
	assign = ecs.CreateAssignPrivateIpAddressesRequest()
	assign.NetworkInterfaceId = eniID
	assign.Ipv4PrefixCount = requests.NewInteger(1)
	got, err = s.client.AssignPrivateIpAddresses(assign)
	if err != nil {
		t.Fatal(err)
	}
	prefixes := got.AssignedPrivateIpAddressesSet.Ipv4PrefixSet.Ipv4Prefixes
	if len(prefixes) != 1 {
		t.Fatalf("assigned prefixes %v, want one", prefixes)
	}
	inPrefix := netip.MustParsePrefix(prefixes[0]).Addr().Next().Next().String()
	s.mustUse(t, s.n1, dev, table, inPrefix)
	mustDial(t, s.n1, inPrefix, web, true)

	// A CIDR rule admits the one address it names on 8081.
	s.authorize(t, "sg-sim-web", "8081/8081", added[0]+"/32", "")
	mustDial(t, s.n1, added[0], other, true)
	mustDial(t, s.n1, ips[1], other, false)

	// Out of the default group, the ENI's addresses are no longer members:
	// every one of them loses 8080 (the CIDR rule still names one on 8081).
	other2 := s.createGroup(t, "normal")
	modify := ecs.CreateModifyNetworkInterfaceAttributeRequest()
	modify.NetworkInterfaceId = eniID
	modify.SecurityGroupId = &[]string{other2}
	if _, err := s.client.ModifyNetworkInterfaceAttribute(modify); err != nil {
		t.Fatal(err)
	}
	for _, src := range []string{ips[1], added[0], inPrefix} {
		mustDial(t, s.n1, src, web, false)
	}
	mustDial(t, s.n1, added[0], other, true)
}

// devOf returns the node NIC of an attached ENI and the table mustENI
// gave it.
func (s *sgCloud) devOf(t *testing.T, eniID string) (string, int) {
	t.Helper()
	for _, e := range s.cloud.Snapshot().ENIs {
		if e.ID == eniID {
			dev := NodeIfName(false, e.DeviceIndex)
			h := mustHandle(t, s.n1.NetNS)
			link, err := h.LinkByName(dev)
			if err != nil {
				t.Fatal(err)
			}
			return dev, 100 + link.Attrs().Index
		}
	}
	t.Fatalf("no eni %s", eniID)
	return "", 0
}

// Ensure enterprise groups keep members apart and egress closed unless a
// rule opens them, and that an egress drop rule of a normal group blocks
// what its priority says, through the API.
func TestFabric_SecurityGroups_EnterpriseAndEgressThroughTheAPI(t *testing.T) {
	s := mustSGCloud(t)
	ent := s.createGroup(t, "enterprise")
	_, a := s.mustENI(t, s.n1, "i-1", "vsw-sim-a", ent)
	_, b := s.mustENI(t, s.n2, "i-2", "vsw-sim-b", ent)
	dstB := netip.AddrPortFrom(netip.MustParseAddr(b[1]), 8080).String()
	mustServeTCP(t, s.n2.NetNS, dstB)

	// Open egress to the VPC: members still do not reach each other.
	egress := ecs.CreateAuthorizeSecurityGroupEgressRequest()
	egress.SecurityGroupId, egress.IpProtocol, egress.PortRange = ent, "all", "-1/-1"
	egress.DestCidrIp = "172.30.0.0/16"
	if _, err := s.client.AuthorizeSecurityGroupEgress(egress); err != nil {
		t.Fatal(err)
	}
	mustDial(t, s.n1, a[1], dstB, false)
	// A rule naming the group itself lets them.
	s.authorize(t, ent, "8080/8080", "", ent)
	mustDial(t, s.n1, a[1], dstB, true)
	// Without the egress rule nothing leaves, the ingress rule notwithstanding.
	revoke := ecs.CreateRevokeSecurityGroupEgressRequest()
	revoke.SecurityGroupId, revoke.IpProtocol, revoke.PortRange = ent, "all", "-1/-1"
	revoke.DestCidrIp = "172.30.0.0/16"
	if _, err := s.client.RevokeSecurityGroupEgress(revoke); err != nil {
		t.Fatal(err)
	}
	mustDial(t, s.n1, a[1], dstB, false)

	// A normal group's egress is open until a drop rule closes a port.
	web := netip.AddrPortFrom(s.i2.PrimaryIP, 8080).String()
	mustServeTCP(t, s.n2.NetNS, web)
	s.authorize(t, "sg-sim-web", "8080/8080", "", sim.DefaultSecurityGroupID)
	n1IP := s.primaryIP(t, "i-1")
	mustDial(t, s.n1, n1IP, web, true)
	drop := ecs.CreateAuthorizeSecurityGroupEgressRequest()
	drop.SecurityGroupId, drop.IpProtocol, drop.PortRange = sim.DefaultSecurityGroupID, "tcp", "8080/8080"
	drop.DestCidrIp, drop.Policy, drop.Priority = s.i2.PrimaryIP.String()+"/32", "drop", "1"
	if _, err := s.client.AuthorizeSecurityGroupEgress(drop); err != nil {
		t.Fatal(err)
	}
	mustDial(t, s.n1, n1IP, web, false)
}

func (s *sgCloud) primaryIP(t *testing.T, instanceID string) string {
	t.Helper()
	for _, i := range s.cloud.Snapshot().Instances {
		if i.ID == instanceID {
			return i.PrimaryIP.String()
		}
	}
	t.Fatalf("no instance %s", instanceID)
	return ""
}
