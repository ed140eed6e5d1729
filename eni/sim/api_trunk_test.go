package sim

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"
)

func attachMember(client *ecs.Client, eniID, instanceID, trunkID string) error {
	req := ecs.CreateAttachNetworkInterfaceRequest()
	req.NetworkInterfaceId, req.InstanceId, req.TrunkNetworkInstanceId = eniID, instanceID, trunkID
	_, err := client.AttachNetworkInterface(req)
	return err
}

func detachMember(client *ecs.Client, eniID, instanceID, trunkID string) error {
	req := ecs.CreateDetachNetworkInterfaceRequest()
	req.NetworkInterfaceId, req.InstanceId, req.TrunkNetworkInstanceId = eniID, instanceID, trunkID
	_, err := client.DetachNetworkInterface(req)
	return err
}

func describeOne(tb testing.TB, client *ecs.Client, id string) ecs.NetworkInterfaceSet {
	tb.Helper()
	resp := describeENIs(tb, client, func(r *ecs.DescribeNetworkInterfacesRequest) { r.NetworkInterfaceId = &[]string{id} })
	if len(resp.NetworkInterfaceSets.NetworkInterfaceSet) != 1 {
		tb.Fatalf("describe %s: %+v", id, resp.NetworkInterfaceSets)
	}
	return resp.NetworkInterfaceSets.NetworkInterfaceSet[0]
}

// Ensure trunking through the unchanged SDK: one trunk per instance in an
// ENI slot, members up to EniTotalQuantity − EniQuantity outside the
// slots, Type Member with the trunk's id, VLAN IDs (DeviceIndex) unique
// per trunk and reused after a detach, the trunk listing its members, no
// node NIC for a member (the fabric sees it only as a member), and every
// trunk error of the reference.
func TestCloud_Trunk_Members(t *testing.T) {
	c, rec, inst, client := newTestAPI(t, nil) // ecs.g7.large: 3 ENIs, 6 members
	trunk := mustCreateENI(t, client, func(r *ecs.CreateNetworkInterfaceRequest) { r.InstanceType = "Trunk" }).NetworkInterfaceId
	plain := mustCreateENI(t, client, nil).NetworkInterfaceId

	// Not before the trunk is in use.
	m0 := mustCreateENI(t, client, nil).NetworkInterfaceId
	wantCode(t, attachMember(client, m0, inst.ID, trunk), CodeInvalidTrunkENIStatus, 403)
	mustAttach(t, client, trunk, inst.ID)
	second := mustCreateENI(t, client, func(r *ecs.CreateNetworkInterfaceRequest) { r.InstanceType = "Trunk" }).NetworkInterfaceId
	t.Run("one trunk per instance", func(t *testing.T) {
		req := ecs.CreateAttachNetworkInterfaceRequest()
		req.NetworkInterfaceId, req.InstanceId = second, inst.ID
		_, err := client.AttachNetworkInterface(req)
		wantCode(t, err, CodeInvalidTrunkENIStatus, 403)
	})
	t.Run("a trunk is no member", func(t *testing.T) {
		wantCode(t, attachMember(client, second, inst.ID, trunk), CodeENITypeNotSupportTrunking, 403)
	})
	t.Run("through an ENI that is no trunk", func(t *testing.T) {
		wantCode(t, attachMember(client, m0, inst.ID, inst.PrimaryENIID), CodeInvalidTrunkENIStatus, 403)
	})
	t.Run("instance type without trunking", func(t *testing.T) {
		g6 := mustInstance(t, c, InstanceSpec{Type: "ecs.g6.large"})
		wantCode(t, attachMember(client, m0, g6.ID, trunk), CodeTrunkNotSupported, 403)
	})

	members := []string{m0}
	for range 5 {
		members = append(members, mustCreateENI(t, client, func(r *ecs.CreateNetworkInterfaceRequest) {
			r.SecondaryPrivateIpAddressCount = requests.NewInteger(1)
		}).NetworkInterfaceId)
	}
	for _, m := range members {
		if err := attachMember(client, m, inst.ID, trunk); err != nil {
			t.Fatalf("attach member %s: %v", m, err)
		}
		waitStatus(t, client, m, "InUse")
	}
	vlans := map[int]string{}
	for _, m := range members {
		d := describeOne(t, client, m)
		if d.Type != "Member" || d.Attachment.TrunkNetworkInterfaceId != trunk || d.InstanceId != inst.ID {
			t.Fatalf("member %s: type %q trunk %q instance %q", m, d.Type, d.Attachment.TrunkNetworkInterfaceId, d.InstanceId)
		}
		vid := d.Attachment.DeviceIndex
		if vid < 1 || vid > 4094 || vlans[vid] != "" {
			t.Fatalf("member %s: VLAN ID %d (taken by %q)", m, vid, vlans[vid])
		}
		vlans[vid] = m
	}
	if got := describeOne(t, client, trunk).Attachment.MemberNetworkInterfaceIds.MemberNetworkInterfaceId; len(got) != 6 || !sameSet(got, members) {
		t.Fatalf("trunk lists members %v, want %v", got, members)
	}
	if got := describeENIs(t, client, func(r *ecs.DescribeNetworkInterfacesRequest) { r.Type = "Member" }).TotalCount; got != 6 {
		t.Fatalf("Describe Type=Member: %d, want 6", got)
	}
	for _, call := range rec.Calls() {
		if slices.Contains(members, call.ENIID) && call.Op != "attach-member" {
			t.Errorf("the fabric saw member %s as %s: a member is no NIC of the node, only attach-member", call.ENIID, call.Op)
		}
	}
	for _, e := range c.attachedENIs(inst.ID) {
		if slices.Contains(members, e) {
			t.Errorf("metadata lists member %s: a member is no NIC of the node", e)
		}
	}

	t.Run("member limit", func(t *testing.T) {
		seventh := mustCreateENI(t, client, nil).NetworkInterfaceId
		wantCode(t, attachMember(client, seventh, inst.ID, trunk), CodeENIPerInstanceExceeded, 403)
	})
	t.Run("members take no ENI slot", func(t *testing.T) {
		mustAttach(t, client, plain, inst.ID) // primary, trunk, plain: the type's 3
	})
	t.Run("detach errors", func(t *testing.T) {
		wantCode(t, detachMember(client, members[0], inst.ID, ""), CodeENINotBelongTrunk, 400)
		wantCode(t, detachMember(client, members[0], inst.ID, second), CodeENINotBelongTrunk, 400)
		wantCode(t, detachMember(client, plain, inst.ID, trunk), CodeENINotBelongTrunk, 400)
		wantCode(t, detachMember(client, trunk, inst.ID, ""), CodeHasMemberENIAttached, 403)
	})
	t.Run("a VLAN ID is reused after the detach", func(t *testing.T) {
		freed := vlans[3]
		if err := detachMember(client, freed, inst.ID, trunk); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, client, freed, "Available")
		if d := describeOne(t, client, freed); d.Type != "Secondary" || d.Attachment.TrunkNetworkInterfaceId != "" {
			t.Fatalf("detached member: type %q, trunk %q", d.Type, d.Attachment.TrunkNetworkInterfaceId)
		}
		next := mustCreateENI(t, client, nil).NetworkInterfaceId
		if err := attachMember(client, next, inst.ID, trunk); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, client, next, "InUse")
		if vid := describeOne(t, client, next).Attachment.DeviceIndex; vid != 3 {
			t.Fatalf("new member got VLAN ID %d, want the freed 3", vid)
		}
	})
}

// attachedENIs is what the instance's metadata lists as its ENIs.
func (c *Cloud) attachedENIs(instID string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, e := range c.attachedLocked(instID) {
		out = append(out, e.id)
	}
	return out
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// lastCall returns the fabric's last call of op for eniID.
func lastCall(tb testing.TB, rec *recordingFabric, op, eniID string) fabricCall {
	tb.Helper()
	calls := rec.Calls()
	for i := len(calls) - 1; i >= 0; i-- {
		if calls[i].Op == op && calls[i].ENIID == eniID {
			return calls[i]
		}
	}
	tb.Fatalf("the fabric saw no %s of %s; calls: %v", op, eniID, calls)
	return fabricCall{}
}

// Ensure the fabric learns what it needs to carry a member: the trunk is
// attached as a trunk, a member's attach names its trunk, VLAN ID and
// addresses, its later address changes reach the fabric, its detach
// starts with a DetachMember, and the security policy tells the member's
// traffic apart from its trunk's.
func TestCloud_Trunk_FabricFollowsMembers(t *testing.T) {
	c, rec, inst, client := newTestAPI(t, nil)
	trunk := mustCreateENI(t, client, func(r *ecs.CreateNetworkInterfaceRequest) { r.InstanceType = "Trunk" }).NetworkInterfaceId
	mustAttach(t, client, trunk, inst.ID)
	if l := lastCall(t, rec, "attach", trunk).Link; !l.Trunk {
		t.Errorf("trunk attached with Trunk false: %+v", l)
	}
	created := mustCreateENI(t, client, func(r *ecs.CreateNetworkInterfaceRequest) {
		r.SecondaryPrivateIpAddressCount = requests.NewInteger(1)
	})
	member := created.NetworkInterfaceId
	if err := attachMember(client, member, inst.ID, trunk); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, client, member, "InUse")
	vid := describeOne(t, client, member).Attachment.DeviceIndex
	m := lastCall(t, rec, "attach-member", member).Member
	var ips []string
	for _, ip := range m.IPs {
		ips = append(ips, ip.String())
	}
	var want []string
	for _, set := range created.PrivateIpSets.PrivateIpSet {
		want = append(want, set.PrivateIpAddress)
	}
	if m.TrunkID != trunk || m.InstanceID != inst.ID || m.VLAN != vid || !sameSet(ips, want) || !m.Gateway.IsValid() {
		t.Fatalf("attach-member %+v, want trunk %s, instance %s, vlan %d, ips %v", m, trunk, inst.ID, vid, want)
	}

	assign := ecs.CreateAssignPrivateIpAddressesRequest()
	assign.NetworkInterfaceId = member
	assign.SecondaryPrivateIpAddressCount = requests.NewInteger(1)
	got, err := client.AssignPrivateIpAddresses(assign)
	if err != nil {
		t.Fatal(err)
	}
	added := got.AssignedPrivateIpAddressesSet.PrivateIpSet.PrivateIpAddress
	call := lastCall(t, rec, "addresses", member)
	if len(call.IPs) != 3 || call.IPs[2].String() != added[0] {
		t.Fatalf("addresses of the member after an assign: %v, want %v then %v", call.IPs, want, added)
	}

	c.mu.Lock()
	p := c.securityPolicyLocked()
	c.mu.Unlock()
	var memberGroups []string
	for _, e := range p.ENIs {
		if e.ENIID == member {
			memberGroups = e.Groups
		}
	}
	for _, g := range p.Groups {
		if slices.Contains(memberGroups, g.ID) && !slices.ContainsFunc(g.Members, func(a netip.Addr) bool { return a.String() == added[0] }) {
			t.Errorf("group %s of the member lacks its address %s: %v", g.ID, added[0], g.Members)
		}
	}
	if len(memberGroups) == 0 {
		t.Errorf("the member has no groups in the policy")
	}
	for _, e := range p.ENIs {
		switch e.ENIID {
		case member:
			if e.Trunk != trunk || e.VLAN != vid || len(e.Addrs) != 3 {
				t.Errorf("member in the policy: %+v, want trunk %s, vlan %d, 3 addresses", e, trunk, vid)
			}
		case trunk:
			if e.Trunk != "" || e.VLAN != 0 || e.Addrs != nil {
				t.Errorf("trunk in the policy: %+v, want no member fields", e)
			}
		}
	}

	if err := detachMember(client, member, inst.ID, trunk); err != nil {
		t.Fatal(err)
	}
	if d := lastCall(t, rec, "detach-member", member); d.Member.TrunkID != trunk || d.InstanceID != inst.ID {
		t.Errorf("detach-member %+v, want trunk %s on %s", d, trunk, inst.ID)
	}
	waitStatus(t, client, member, "Available")
	for _, call := range rec.Calls() {
		if call.ENIID == member && (call.Op == "attach" || call.Op == "detach") {
			t.Errorf("the fabric saw member %s as a NIC (%s)", member, call.Op)
		}
	}
}
