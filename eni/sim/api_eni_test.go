package sim

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"
)

func TestCloud_CreateNetworkInterface_Fields(t *testing.T) {
	_, _, _, client := newTestAPI(t, nil)
	resp := mustCreateENI(t, client, func(r *ecs.CreateNetworkInterfaceRequest) {
		r.SecondaryPrivateIpAddressCount = requests.NewInteger(2)
		r.Description = "veni pool"
		r.NetworkInterfaceName = "veni-eni"
		r.Tag = &[]ecs.CreateNetworkInterfaceTag{{Key: "creator", Value: "veni"}}
	})
	if !strings.HasPrefix(resp.NetworkInterfaceId, "eni-") || resp.RequestId == "" {
		t.Fatalf("id %q request id %q", resp.NetworkInterfaceId, resp.RequestId)
	}
	mac, err := net.ParseMAC(resp.MacAddress)
	if err != nil || !strings.HasPrefix(mac.String(), "00:16:3e:") {
		t.Fatalf("mac %q: %v", resp.MacAddress, err)
	}
	if resp.Status != "Available" || resp.Type != "Secondary" || resp.VpcId != "vpc-sim-main" || resp.ZoneId != "cn-hangzhou-h" {
		t.Fatalf("status/type/vpc/zone = %s/%s/%s/%s", resp.Status, resp.Type, resp.VpcId, resp.ZoneId)
	}
	// The instance's primary ENI took 172.30.1.1.
	wantIPs := []string{"172.30.1.2", "172.30.1.3", "172.30.1.4"}
	var got []string
	for _, s := range resp.PrivateIpSets.PrivateIpSet {
		got = append(got, s.PrivateIpAddress)
		if s.Primary != (s.PrivateIpAddress == "172.30.1.2") {
			t.Fatalf("primary flag wrong on %s", s.PrivateIpAddress)
		}
	}
	if !slices.Equal(got, wantIPs) || resp.PrivateIpAddress != wantIPs[0] {
		t.Fatalf("ips %v primary %s, want %v", got, resp.PrivateIpAddress, wantIPs)
	}
	if len(resp.Tags.Tag) != 1 || resp.Tags.Tag[0].TagKey != "creator" || resp.Tags.Tag[0].TagValue != "veni" {
		t.Fatalf("tags %+v", resp.Tags.Tag)
	}
	if resp.SecurityGroupIds.SecurityGroupId[0] != DefaultSecurityGroupID {
		t.Fatalf("security groups %v", resp.SecurityGroupIds.SecurityGroupId)
	}
}

func TestCloud_CreateNetworkInterface_Errors(t *testing.T) {
	_, _, _, client := newTestAPI(t, nil)
	tests := []struct {
		name   string
		mutate func(*ecs.CreateNetworkInterfaceRequest)
		code   string
		status int
	}{
		{"unknown vswitch", func(r *ecs.CreateNetworkInterfaceRequest) { r.VSwitchId = "vsw-nope" }, CodeVSwitchNotFound, 404},
		{"no vswitch", func(r *ecs.CreateNetworkInterfaceRequest) { r.VSwitchId = "" }, CodeMissingParameter, 400},
		{"no security group", func(r *ecs.CreateNetworkInterfaceRequest) { r.SecurityGroupId = "" }, CodeMissingParameter, 400},
		{"unknown security group", func(r *ecs.CreateNetworkInterfaceRequest) { r.SecurityGroupId = "sg-nope" }, CodeSecurityGroupNotFound, 404},
		{"unknown in SecurityGroupIds", func(r *ecs.CreateNetworkInterfaceRequest) {
			r.SecurityGroupId = ""
			r.SecurityGroupIds = &[]string{DefaultSecurityGroupID, "sg-nope"}
		}, CodeSecurityGroupNotFound, 404},
		{"bad type", func(r *ecs.CreateNetworkInterfaceRequest) { r.InstanceType = "Primary" }, CodeInvalidParameter, 400},
		{"too many ips", func(r *ecs.CreateNetworkInterfaceRequest) {
			r.SecondaryPrivateIpAddressCount = requests.NewInteger(50)
		}, CodeInvalidParameter, 400},
		{"primary ip reserved", func(r *ecs.CreateNetworkInterfaceRequest) { r.PrimaryIpAddress = "172.30.1.253" }, CodeVSwitchIPInvalid, 403},
		{"primary ip taken", func(r *ecs.CreateNetworkInterfaceRequest) { r.PrimaryIpAddress = "172.30.1.1" }, CodeIPAssigned, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := ecs.CreateCreateNetworkInterfaceRequest()
			req.VSwitchId, req.SecurityGroupId = "vsw-sim-a", DefaultSecurityGroupID
			tt.mutate(req)
			_, err := client.CreateNetworkInterface(req)
			wantCode(t, err, tt.code, tt.status)
		})
	}
}

func TestCloud_CreateNetworkInterface_ClientToken(t *testing.T) {
	c, _, _, client := newTestAPI(t, nil)
	first := mustCreateENI(t, client, func(r *ecs.CreateNetworkInterfaceRequest) { r.ClientToken = "tok-1" })
	again := mustCreateENI(t, client, func(r *ecs.CreateNetworkInterfaceRequest) { r.ClientToken = "tok-1" })
	other := mustCreateENI(t, client, func(r *ecs.CreateNetworkInterfaceRequest) { r.ClientToken = "tok-2" })
	if again.NetworkInterfaceId != first.NetworkInterfaceId || again.MacAddress != first.MacAddress {
		t.Fatalf("retry with the same token made %s, first was %s", again.NetworkInterfaceId, first.NetworkInterfaceId)
	}
	if other.NetworkInterfaceId == first.NetworkInterfaceId {
		t.Fatal("a different token returned the same eni")
	}
	if n := len(c.Snapshot().ENIs); n != 3 { // primary + 2
		t.Fatalf("%d enis exist, want 3", n)
	}
}

func TestCloud_CreateNetworkInterface_VSwitchExhausted(t *testing.T) {
	_, _, _, client := newTestAPI(t, func(cfg *Config) {
		cfg.VSwitches = append(cfg.VSwitches, VSwitchSpec{
			ID: "vsw-sim-small", ZoneID: "cn-hangzhou-h", CIDR: netip.MustParsePrefix("172.30.9.0/28"),
		})
	})
	// A /28 has 16 addresses; the network address and the last three are
	// reserved, so 12 are usable: 172.30.9.1 - 172.30.9.12.
	var ips []string
	for range 3 {
		resp := mustCreateENI(t, client, func(r *ecs.CreateNetworkInterfaceRequest) {
			r.VSwitchId = "vsw-sim-small"
			r.SecondaryPrivateIpAddressCount = requests.NewInteger(3)
		})
		for _, s := range resp.PrivateIpSets.PrivateIpSet {
			ips = append(ips, s.PrivateIpAddress)
		}
	}
	if len(ips) != 12 || ips[0] != "172.30.9.1" || ips[11] != "172.30.9.12" {
		t.Fatalf("got %d ips %v", len(ips), ips)
	}
	req := ecs.CreateCreateNetworkInterfaceRequest()
	req.VSwitchId, req.SecurityGroupId = "vsw-sim-small", DefaultSecurityGroupID
	_, err := client.CreateNetworkInterface(req)
	wantCode(t, err, CodeVSwitchIPNotEnough, 403)
}

func TestCloud_AttachNetworkInterface_Progression(t *testing.T) {
	c, rec, inst, client := newTestAPI(t, nil)
	resp := mustCreateENI(t, client, func(r *ecs.CreateNetworkInterfaceRequest) {
		r.SecondaryPrivateIpAddressCount = requests.NewInteger(1)
	})
	id := resp.NetworkInterfaceId
	req := ecs.CreateAttachNetworkInterfaceRequest()
	req.NetworkInterfaceId, req.InstanceId = id, inst.ID
	if _, err := client.AttachNetworkInterface(req); err != nil {
		t.Fatal(err)
	}
	if got := eniStatus(t, client, id); got != "Attaching" {
		t.Fatalf("right after attach: status %s, want Attaching", got)
	}
	if calls := rec.Calls(); len(calls) != 1 {
		t.Fatalf("fabric saw %v before the attach completed; want only the primary", calls)
	}
	waitStatus(t, client, id, "InUse")

	got := describeENIs(t, client, func(r *ecs.DescribeNetworkInterfacesRequest) { r.NetworkInterfaceId = &[]string{id} })
	set := got.NetworkInterfaceSets.NetworkInterfaceSet[0]
	if set.InstanceId != inst.ID || set.Attachment.DeviceIndex != 1 {
		t.Fatalf("instance %q device index %d", set.InstanceId, set.Attachment.DeviceIndex)
	}
	calls := rec.Calls()
	if len(calls) != 2 {
		t.Fatalf("fabric calls %v", calls)
	}
	primary, attach := calls[0], calls[1]
	if primary.Op != "attach" || !primary.Link.Primary || primary.Link.DeviceIndex != 0 || primary.ENIID != inst.PrimaryENIID ||
		primary.Link.Gateway != netip.MustParseAddr("172.30.1.253") || !slices.Equal(primary.Link.IPs, []netip.Addr{inst.PrimaryIP}) {
		t.Fatalf("primary attach %+v", primary)
	}
	wantIPs := []netip.Addr{netip.MustParseAddr("172.30.1.2"), netip.MustParseAddr("172.30.1.3")}
	if attach.Op != "attach" || attach.Link.Primary || attach.Link.DeviceIndex != 1 || attach.ENIID != id ||
		attach.Link.MAC.String() != resp.MacAddress || !slices.Equal(attach.Link.IPs, wantIPs) ||
		attach.Link.VSwitchCIDR != netip.MustParsePrefix("172.30.1.0/24") {
		t.Fatalf("secondary attach %+v", attach)
	}
	if s := c.Snapshot(); s.Calls["AttachNetworkInterface"].Calls != 1 {
		t.Fatalf("call counters %+v", s.Calls)
	}
}

func TestCloud_AttachNetworkInterface_Errors(t *testing.T) {
	c, _, inst, client := newTestAPI(t, func(cfg *Config) {
		cfg.VSwitches = append(cfg.VSwitches, VSwitchSpec{
			ID: "vsw-sim-other-zone", ZoneID: "cn-hangzhou-i", CIDR: netip.MustParsePrefix("172.30.3.0/24"),
		})
	})
	tiny := mustInstance(t, c, InstanceSpec{Type: "ecs.sim.tiny"})
	g6 := mustInstance(t, c, InstanceSpec{Type: "ecs.g6.large"})
	a := mustCreateENI(t, client, nil).NetworkInterfaceId
	mustAttach(t, client, a, tiny.ID) // tiny holds 2 ENIs: primary + a
	b := mustCreateENI(t, client, nil).NetworkInterfaceId
	otherZone := mustCreateENI(t, client, func(r *ecs.CreateNetworkInterfaceRequest) { r.VSwitchId = "vsw-sim-other-zone" }).NetworkInterfaceId
	trunk := mustCreateENI(t, client, func(r *ecs.CreateNetworkInterfaceRequest) { r.InstanceType = "Trunk" }).NetworkInterfaceId
	manyIPs := mustCreateENI(t, client, func(r *ecs.CreateNetworkInterfaceRequest) {
		r.SecondaryPrivateIpAddressCount = requests.NewInteger(3)
	}).NetworkInterfaceId

	tests := []struct {
		name, eni, instance, code string
		status                    int
	}{
		{"eni limit of the instance type", b, tiny.ID, CodeENIPerInstanceExceeded, 403},
		{"already in use", a, inst.ID, CodeInvalidENIState, 400},
		{"primary eni", inst.PrimaryENIID, tiny.ID, CodeInvalidENIState, 400},
		{"unknown eni", "eni-nope", inst.ID, CodeENINotFound, 404},
		{"unknown instance", b, "i-nope", CodeInstanceNotFound, 404},
		{"other zone", otherZone, inst.ID, CodeZoneMismatch, 403},
		{"trunk on g6", trunk, g6.ID, CodeTrunkNotSupported, 403},
		{"more ips than the type allows", manyIPs, tiny.ID, CodeENIPerInstanceExceeded, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := ecs.CreateAttachNetworkInterfaceRequest()
			req.NetworkInterfaceId, req.InstanceId = tt.eni, tt.instance
			_, err := client.AttachNetworkInterface(req)
			wantCode(t, err, tt.code, tt.status)
		})
	}
	t.Run("ips over the per-eni quota", func(t *testing.T) {
		small := mustInstance(t, c, InstanceSpec{Type: "ecs.sim.tiny"})
		req := ecs.CreateAttachNetworkInterfaceRequest()
		req.NetworkInterfaceId, req.InstanceId = manyIPs, small.ID // 4 ips, tiny allows 3
		_, err := client.AttachNetworkInterface(req)
		wantCode(t, err, CodePrivateIPQuotaExceeded, 403)
	})
}

func TestCloud_DetachDelete_Lifecycle(t *testing.T) {
	// Detaching must last past the next two calls even on a busy machine
	// (the tests' default of 20 ms did not, under -race).
	c, rec, inst, client := newTestAPI(t, func(cfg *Config) { cfg.DetachDelay = time.Second })
	resp := mustCreateENI(t, client, func(r *ecs.CreateNetworkInterfaceRequest) {
		r.SecondaryPrivateIpAddressCount = requests.NewInteger(4)
	})
	id := resp.NetworkInterfaceId
	freeBefore := c.Snapshot().VSwitches[0].Free

	del := ecs.CreateDeleteNetworkInterfaceRequest()
	del.NetworkInterfaceId = id
	mustAttach(t, client, id, inst.ID)
	_, err := client.DeleteNetworkInterface(del)
	wantCode(t, err, CodeInvalidENIState, 400)

	det := ecs.CreateDetachNetworkInterfaceRequest()
	det.NetworkInterfaceId, det.InstanceId = inst.PrimaryENIID, inst.ID
	_, err = client.DetachNetworkInterface(det)
	wantCode(t, err, CodeDetachPrimaryENI, 400)

	det.NetworkInterfaceId = id
	if _, err := client.DetachNetworkInterface(det); err != nil {
		t.Fatal(err)
	}
	if got := eniStatus(t, client, id); got != "Detaching" {
		t.Fatalf("right after detach: %s", got)
	}
	_, err = client.DetachNetworkInterface(det)
	wantCode(t, err, CodeInvalidENIState, 400)
	waitStatus(t, client, id, "Available")

	if _, err := client.DeleteNetworkInterface(del); err != nil {
		t.Fatal(err)
	}
	if free := c.Snapshot().VSwitches[0].Free; free != freeBefore+5 {
		t.Fatalf("free after delete %d, want %d", free, freeBefore+5)
	}
	_, err = client.DeleteNetworkInterface(del)
	wantCode(t, err, CodeENINotFound, 404)

	var ops []string
	for _, call := range rec.Calls() {
		ops = append(ops, call.Op+" "+call.ENIID)
	}
	want := []string{"attach " + inst.PrimaryENIID, "attach " + id, "detach " + id}
	if !slices.Equal(ops, want) {
		t.Fatalf("fabric calls %v, want %v", ops, want)
	}
}

func TestCloud_AssignUnassign_PrivateIPs(t *testing.T) {
	_, rec, inst, client := newTestAPI(t, nil) // ecs.g7.large: 6 IPv4 per ENI
	id := mustCreateENI(t, client, nil).NetworkInterfaceId
	mustAttach(t, client, id, inst.ID)

	assign := func(count int, named ...string) (*ecs.AssignPrivateIpAddressesResponse, error) {
		req := ecs.CreateAssignPrivateIpAddressesRequest()
		req.NetworkInterfaceId = id
		if count > 0 {
			req.SecondaryPrivateIpAddressCount = requests.NewInteger(count)
		}
		if len(named) > 0 {
			req.PrivateIpAddress = &named
		}
		return client.AssignPrivateIpAddresses(req)
	}
	resp, err := assign(3)
	if err != nil {
		t.Fatal(err)
	}
	got := resp.AssignedPrivateIpAddressesSet.PrivateIpSet.PrivateIpAddress
	if resp.AssignedPrivateIpAddressesSet.NetworkInterfaceId != id || !slices.Equal(got, []string{"172.30.1.3", "172.30.1.4", "172.30.1.5"}) {
		t.Fatalf("assigned %+v", resp.AssignedPrivateIpAddressesSet)
	}
	if _, err := assign(0, "172.30.1.100"); err != nil {
		t.Fatal(err)
	}
	_, err = assign(1) // 1 primary + 4 = 5; one more is 6 = the quota
	if err != nil {
		t.Fatal(err)
	}
	_, err = assign(1)
	wantCode(t, err, CodePrivateIPQuotaExceeded, 403)
	_, err = assign(11)
	wantCode(t, err, CodeInvalidParameter, 400)

	unassign := func(ips ...string) error {
		req := ecs.CreateUnassignPrivateIpAddressesRequest()
		req.NetworkInterfaceId = id
		req.PrivateIpAddress = &ips
		_, err := client.UnassignPrivateIpAddresses(req)
		return err
	}
	wantCode(t, unassign("172.30.1.2"), CodeInvalidParameter, 400) // the primary
	wantCode(t, unassign("172.30.1.200"), CodeIPUnassigned, 403)
	if err := unassign("172.30.1.4", "172.30.1.100"); err != nil {
		t.Fatal(err)
	}

	var sets [][]string
	for _, call := range rec.Calls() {
		if call.Op == "addresses" && call.ENIID == id {
			sets = append(sets, addrStrings(call.IPs))
		}
	}
	want := [][]string{
		{"172.30.1.2", "172.30.1.3", "172.30.1.4", "172.30.1.5"},
		{"172.30.1.2", "172.30.1.3", "172.30.1.4", "172.30.1.5", "172.30.1.100"},
		{"172.30.1.2", "172.30.1.3", "172.30.1.4", "172.30.1.5", "172.30.1.100", "172.30.1.6"},
		{"172.30.1.2", "172.30.1.3", "172.30.1.5", "172.30.1.6"},
	}
	if !slices.EqualFunc(sets, want, slices.Equal) {
		t.Fatalf("fabric address sets\n got %v\nwant %v", sets, want)
	}
}

func TestCloud_AssignPrivateIpAddresses_VSwitchExhausted(t *testing.T) {
	c, _, _, client := newTestAPI(t, func(cfg *Config) {
		cfg.VSwitches = []VSwitchSpec{{ID: "vsw-sim-small", ZoneID: "cn-hangzhou-h", CIDR: netip.MustParsePrefix("172.30.9.0/29")}}
	})
	// /29: 8 addresses - 4 reserved = 4; the instance holds one.
	id := mustCreateENI(t, client, func(r *ecs.CreateNetworkInterfaceRequest) { r.VSwitchId = "vsw-sim-small" }).NetworkInterfaceId
	req := ecs.CreateAssignPrivateIpAddressesRequest()
	req.NetworkInterfaceId = id
	req.SecondaryPrivateIpAddressCount = requests.NewInteger(2)
	if _, err := client.AssignPrivateIpAddresses(req); err != nil {
		t.Fatal(err)
	}
	_, err := client.AssignPrivateIpAddresses(req)
	wantCode(t, err, CodeVSwitchIPNotEnough, 403)
	if free := c.Snapshot().VSwitches[0].Free; free != 0 {
		t.Fatalf("free %d", free)
	}
}

func TestCloud_AssignPrivateIpAddresses_ClientToken(t *testing.T) {
	_, _, _, client := newTestAPI(t, nil)
	id := mustCreateENI(t, client, nil).NetworkInterfaceId
	req := ecs.CreateAssignPrivateIpAddressesRequest()
	req.NetworkInterfaceId = id
	req.ClientToken = "assign-1"
	req.SecondaryPrivateIpAddressCount = requests.NewInteger(2)
	first, err := client.AssignPrivateIpAddresses(req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := client.AssignPrivateIpAddresses(req)
	if err != nil {
		t.Fatal(err)
	}
	a, b := first.AssignedPrivateIpAddressesSet.PrivateIpSet.PrivateIpAddress, again.AssignedPrivateIpAddressesSet.PrivateIpSet.PrivateIpAddress
	if !slices.Equal(a, b) {
		t.Fatalf("retry assigned %v, first %v", b, a)
	}
	if n := len(describeENIs(t, client, nil).NetworkInterfaceSets.NetworkInterfaceSet[1].PrivateIpSets.PrivateIpSet); n != 3 {
		t.Fatalf("eni holds %d ips, want 3", n)
	}
}

func TestCloud_AddInstance_FabricFailure(t *testing.T) {
	c, rec := mustCloud(t, nil)
	rec.failNext(errors.New("veth refused"))
	if _, err := c.AddInstance(InstanceSpec{ID: "i-broken"}); err == nil || !strings.Contains(err.Error(), "veth refused") {
		t.Fatalf("err %v", err)
	}
	s := c.Snapshot()
	if len(s.Instances) != 0 || len(s.ENIs) != 0 || s.VSwitches[0].Free != 252 || s.FabricErrors != 1 {
		t.Fatalf("not rolled back: %+v", s)
	}
	if _, err := c.AddInstance(InstanceSpec{ID: "i-broken"}); err != nil {
		t.Fatalf("second try: %v", err)
	}
}
