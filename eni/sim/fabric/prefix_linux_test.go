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

// Ensure the VPC routes every address of a delegated /28 to its ENI and
// accepts them as sources, through the whole chain: the unchanged SDK asks
// the sim for a prefix, the sim tells this fabric, packets follow.
func TestFabric_Prefix_RoutedAndAccepted(t *testing.T) {
	f := mustFabric(t)
	n1 := mustAddNode(t, f, "node-1", "i-1")
	n2 := mustAddNode(t, f, "node-2", "i-2")
	cfg := sim.DefaultConfig()
	cfg.AttachDelay, cfg.DetachDelay = 10*time.Millisecond, 10*time.Millisecond
	cfg.Credentials = map[string]string{"LTAIprefix": "prefix-secret"}
	cfg.Fabric = f
	cloud, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cloud.Close() })
	if _, err := cloud.AddInstance(sim.InstanceSpec{ID: "i-1", Type: "ecs.g7.large", VSwitchID: "vsw-sim-a"}); err != nil {
		t.Fatal(err)
	}
	inst2, err := cloud.AddInstance(sim.InstanceSpec{ID: "i-2", Type: "ecs.g7.large", VSwitchID: "vsw-sim-b"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(cloud.APIHandler())
	t.Cleanup(srv.Close)
	client, err := ecs.NewClientWithAccessKey("cn-hangzhou", "LTAIprefix", "prefix-secret")
	if err != nil {
		t.Fatal(err)
	}
	client.Domain = strings.TrimPrefix(srv.URL, "http://")
	client.SetNoProxy("127.0.0.1")
	t.Cleanup(client.Shutdown)

	create := ecs.CreateCreateNetworkInterfaceRequest()
	create.VSwitchId, create.SecurityGroupId = "vsw-sim-a", sim.DefaultSecurityGroupID
	created, err := client.CreateNetworkInterface(create)
	if err != nil {
		t.Fatal(err)
	}
	id := created.NetworkInterfaceId
	attach := ecs.CreateAttachNetworkInterfaceRequest()
	attach.NetworkInterfaceId, attach.InstanceId = id, "i-1"
	if _, err := client.AttachNetworkInterface(attach); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		d := ecs.CreateDescribeNetworkInterfacesRequest()
		d.NetworkInterfaceId = &[]string{id}
		resp, err := client.DescribeNetworkInterfaces(d)
		if err == nil && len(resp.NetworkInterfaceSets.NetworkInterfaceSet) == 1 &&
			resp.NetworkInterfaceSets.NetworkInterfaceSet[0].Status == "InUse" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("eni %s never InUse (%v)", id, err)
		}
	}
	assign := ecs.CreateAssignPrivateIpAddressesRequest()
	assign.NetworkInterfaceId = id
	assign.Ipv4PrefixCount = requests.NewInteger(1)
	resp, err := client.AssignPrivateIpAddresses(assign)
	if err != nil {
		t.Fatal(err)
	}
	got := resp.AssignedPrivateIpAddressesSet.Ipv4PrefixSet.Ipv4Prefixes
	if len(got) != 1 || got[0] != "172.30.1.16/28" {
		t.Fatalf("prefixes %v, want [172.30.1.16/28]", got)
	}

	// In node-1, use two addresses of the prefix and one outside it as
	// sources on eth1, policy-routed to the vSwitch gateway.
	h := mustHandle(t, n1.NetNS)
	eth1, err := h.LinkByName("eth1")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"172.30.1.17/32", "172.30.1.31/32", "172.30.1.50/32"} {
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
	dst := netip.AddrPortFrom(inst2.PrimaryIP, 7000).String()
	mustServeTCP(t, n2.NetNS, dst)

	dial := func(src string, wantOK bool) {
		t.Helper()
		timeout := 5 * time.Second
		if !wantOK {
			timeout = 1500 * time.Millisecond
		}
		err := dialFrom(n1.NetNS, src, dst, timeout)
		if wantOK && err != nil {
			t.Fatalf("%s -> %s: %v, want connected", src, dst, err)
		}
		if !wantOK && err == nil {
			t.Fatalf("%s -> %s connected, want dropped", src, dst)
		}
	}
	dial("172.30.1.17", true) // the prefix's second address
	dial("172.30.1.31", true) // its last
	dial("172.30.1.50", false)

	unassign := ecs.CreateUnassignPrivateIpAddressesRequest()
	unassign.NetworkInterfaceId = id
	unassign.Ipv4Prefix = &[]string{"172.30.1.16/28"}
	if _, err := client.UnassignPrivateIpAddresses(unassign); err != nil {
		t.Fatal(err)
	}
	dial("172.30.1.17", false)
}
