package fabric

import (
	"fmt"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"

	"github.com/veni-cni/veni/eni/sim"
)

// The cloud drives the fabric's security groups: groups and rules made
// through the unchanged SDK decide which packets cross the VPC.
func TestFabric_SecurityGroups_ThroughTheAPI(t *testing.T) {
	f := mustFabric(t)
	cfg := sim.DefaultConfig()
	cfg.SecurityGroups = []string{sim.DefaultSecurityGroupID, "sg-sim-web"}
	cfg.Fabric = f
	cloud, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cloud.Close() })
	var nodes []Node
	var ips []string
	for i, spec := range []sim.InstanceSpec{
		{ID: "i-1", VSwitchID: "vsw-sim-a"},
		{ID: "i-2", VSwitchID: "vsw-sim-b"},
		{ID: "i-3", VSwitchID: "vsw-sim-b", SecurityGroupID: "sg-sim-web"},
	} {
		n := mustAddNode(t, f, fmt.Sprintf("node-%d", i+1), spec.ID)
		inst, err := cloud.AddInstance(spec)
		if err != nil {
			t.Fatalf("add instance %s: %v", spec.ID, err)
		}
		mustServeEcho(t, n.NetNS, inst.PrimaryIP.String()+":7000")
		mustServeEcho(t, n.NetNS, inst.PrimaryIP.String()+":7001")
		nodes = append(nodes, n)
		ips = append(ips, inst.PrimaryIP.String())
	}
	addr := func(i, port int) string { return fmt.Sprintf("%s:%d", ips[i], port) }

	srv := httptest.NewServer(cloud.APIHandler())
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	client, err := ecs.NewClientWithAccessKey("cn-hangzhou", "any", "any")
	if err != nil {
		t.Fatal(err)
	}
	client.Domain = u.Host
	client.SetNoProxy("127.0.0.1")
	t.Cleanup(client.Shutdown)

	// The default group is a normal group: its members reach each other;
	// sg-sim-web lets nobody else in yet.
	if !reach(nodes[0].NetNS, addr(1, 7000)) {
		t.Fatal("members of the default group do not reach each other")
	}
	if reach(nodes[0].NetNS, addr(2, 7000)) {
		t.Fatal("node-3 (sg-sim-web) is reachable from the default group without a rule")
	}

	auth := ecs.CreateAuthorizeSecurityGroupRequest()
	auth.SecurityGroupId, auth.IpProtocol, auth.PortRange = "sg-sim-web", "tcp", "7000/7000"
	auth.SourceGroupId = sim.DefaultSecurityGroupID
	if _, err := client.AuthorizeSecurityGroup(auth); err != nil {
		t.Fatalf("authorize: %v", err)
	}
	if !reach(nodes[0].NetNS, addr(2, 7000)) {
		t.Error("the authorized port is dropped")
	}
	if reach(nodes[0].NetNS, addr(2, 7001)) {
		t.Error("a port no rule allows passes")
	}
	held, err := connectFrom(nodes[1].NetNS, addr(2, 7000), time.Second)
	if err != nil {
		t.Fatalf("connect while allowed: %v", err)
	}
	defer held.Close()

	revoke := ecs.CreateRevokeSecurityGroupRequest()
	revoke.SecurityGroupId, revoke.IpProtocol, revoke.PortRange = "sg-sim-web", "tcp", "7000/7000"
	revoke.SourceGroupId = sim.DefaultSecurityGroupID
	if _, err := client.RevokeSecurityGroup(revoke); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if reach(nodes[0].NetNS, addr(2, 7000)) {
		t.Error("a new connection passes after the revoke")
	}
	if err := echo(held, time.Second); err != nil {
		t.Errorf("the established connection broke at the revoke: %v", err)
	}
	if s := cloud.Snapshot(); s.FabricErrors != 0 {
		t.Errorf("fabric errors: %d (last: %s)", s.FabricErrors, s.LastFabric)
	}
}

// Security groups filter IPv6 too, with the IPv6 fields of the API
// (Ipv6SourceCidrIp), through the unchanged SDK: members of a normal group
// reach each other over IPv6; a group admits one port over IPv6 and no
// other; an IPv6 rule opens no IPv4 and an IPv4 rule no IPv6; a revoke
// closes new IPv6 connections and keeps the established one.
func TestFabric_SecurityGroups_IPv6(t *testing.T) {
	f := mustFabric(t)
	cloud, client := mustSimWith(t, f, func(c *sim.Config) {
		c.SecurityGroups = []string{sim.DefaultSecurityGroupID, "sg-sim-web"}
	})
	var nodes []Node
	var v4, v6 []netip.Addr
	for i, spec := range []sim.InstanceSpec{
		{ID: "i-1", VSwitchID: "vsw-sim-a"},
		{ID: "i-2", VSwitchID: "vsw-sim-a"},
		{ID: "i-3", VSwitchID: "vsw-sim-a", SecurityGroupID: "sg-sim-web"},
	} {
		n := mustAddNode(t, f, fmt.Sprintf("node-%d", i+1), spec.ID)
		inst, err := cloud.AddInstance(spec)
		if err != nil {
			t.Fatalf("add instance %s: %v", spec.ID, err)
		}
		ip6 := mustAssignIPv6(t, client, inst.PrimaryENIID, 1)[0]
		configure6(t, n, 64, ip6)
		for _, a := range []netip.Addr{inst.PrimaryIP, ip6} {
			for _, port := range []uint16{7000, 7001} {
				mustServeEcho(t, n.NetNS, netip.AddrPortFrom(a, port).String())
			}
		}
		nodes = append(nodes, n)
		v4, v6 = append(v4, inst.PrimaryIP), append(v6, ip6)
	}
	to := func(a netip.Addr, port uint16) string { return netip.AddrPortFrom(a, port).String() }
	check := func(what string, got, want bool) {
		t.Helper()
		if got != want {
			t.Errorf("%s: reached %v, want %v", what, got, want)
		}
	}
	check("same normal group over ipv6", reach(nodes[0].NetNS, to(v6[1], 7000)), true)
	check("sg-sim-web over ipv6, no rule", reach(nodes[0].NetNS, to(v6[2], 7000)), false)

	auth := ecs.CreateAuthorizeSecurityGroupRequest()
	auth.SecurityGroupId, auth.IpProtocol, auth.PortRange = "sg-sim-web", "tcp", "7000/7000"
	auth.Ipv6SourceCidrIp = "fd00:ac1e:1::/64"
	if _, err := client.AuthorizeSecurityGroup(auth); err != nil {
		t.Fatalf("authorize ipv6: %v", err)
	}
	check("the admitted port over ipv6", reach(nodes[0].NetNS, to(v6[2], 7000)), true)
	check("another port over ipv6", reach(nodes[0].NetNS, to(v6[2], 7001)), false)
	check("the admitted port over ipv4 (an ipv6 rule)", reach(nodes[0].NetNS, to(v4[2], 7000)), false)

	auth4 := ecs.CreateAuthorizeSecurityGroupRequest()
	auth4.SecurityGroupId, auth4.IpProtocol, auth4.PortRange = "sg-sim-web", "tcp", "7001/7001"
	auth4.SourceCidrIp = "0.0.0.0/0"
	if _, err := client.AuthorizeSecurityGroup(auth4); err != nil {
		t.Fatalf("authorize ipv4: %v", err)
	}
	check("7001 over ipv4 (0.0.0.0/0)", reach(nodes[0].NetNS, to(v4[2], 7001)), true)
	check("7001 over ipv6 (0.0.0.0/0 is ipv4's)", reach(nodes[0].NetNS, to(v6[2], 7001)), false)

	attr := ecs.CreateDescribeSecurityGroupAttributeRequest()
	attr.SecurityGroupId = "sg-sim-web"
	resp, err := client.DescribeSecurityGroupAttribute(attr)
	if err != nil {
		t.Fatal(err)
	}
	var described []string
	for _, p := range resp.Permissions.Permission {
		described = append(described, p.SourceCidrIp+"|"+p.Ipv6SourceCidrIp)
	}
	if !slices.Equal(described, []string{"|fd00:ac1e:1::/64", "0.0.0.0/0|"}) {
		t.Errorf("described rules (SourceCidrIp|Ipv6SourceCidrIp): %v", described)
	}

	bad := ecs.CreateAuthorizeSecurityGroupRequest()
	bad.SecurityGroupId, bad.IpProtocol, bad.PortRange = "sg-sim-web", "tcp", "80/80"
	bad.SourceCidrIp = "fd00::/64"
	if _, err := client.AuthorizeSecurityGroup(bad); err == nil || !strings.Contains(err.Error(), "Ipv6SourceCidrIp") {
		t.Errorf("an ipv6 cidr in SourceCidrIp: %v, want an error naming Ipv6SourceCidrIp", err)
	}

	held, err := connectFrom(nodes[0].NetNS, to(v6[2], 7000), time.Second)
	if err != nil {
		t.Fatalf("connect while allowed: %v", err)
	}
	defer held.Close()
	revoke := ecs.CreateRevokeSecurityGroupRequest()
	revoke.SecurityGroupId, revoke.IpProtocol, revoke.PortRange = "sg-sim-web", "tcp", "7000/7000"
	revoke.Ipv6SourceCidrIp = "fd00:ac1e:1::/64"
	if _, err := client.RevokeSecurityGroup(revoke); err != nil {
		t.Fatalf("revoke ipv6: %v", err)
	}
	check("the revoked port over ipv6", reach(nodes[0].NetNS, to(v6[2], 7000)), false)
	if err := echo(held, time.Second); err != nil {
		t.Errorf("the established ipv6 connection broke at the revoke: %v", err)
	}
	if s := cloud.Snapshot(); s.FabricErrors != 0 {
		t.Errorf("fabric errors: %d (last: %s)", s.FabricErrors, s.LastFabric)
	}
}
