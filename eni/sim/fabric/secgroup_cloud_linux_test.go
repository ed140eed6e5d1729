package fabric

import (
	"fmt"
	"net/http/httptest"
	"net/url"
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
