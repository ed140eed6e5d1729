package sim

import (
	"errors"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"
)

// securityFabric is a recording fabric that also takes security policies.
type securityFabric struct {
	*recordingFabric
	mu       sync.Mutex
	policies []SecurityPolicy // applied
	fail     int              // the next calls to fail
}

func (f *securityFabric) SetSecurityPolicy(p SecurityPolicy) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail > 0 {
		f.fail--
		return errors.New("nft -f: injected failure")
	}
	f.policies = append(f.policies, p)
	return nil
}

func (f *securityFabric) last(tb testing.TB) SecurityPolicy {
	tb.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.policies) == 0 {
		tb.Fatal("the fabric got no security policy")
	}
	return f.policies[len(f.policies)-1]
}

// newSGTestAPI is newTestAPI with a fabric that enforces security groups
// and a second VPC ("vpc-sim-other") in the account.
func newSGTestAPI(tb testing.TB) (*Cloud, *securityFabric, Instance, *ecs.Client) {
	tb.Helper()
	sf := &securityFabric{recordingFabric: &recordingFabric{}}
	c, _ := mustCloud(tb, func(cfg *Config) { cfg.Fabric = sf })
	if err := c.AddVPC("vpc-sim-other"); err != nil {
		tb.Fatal(err)
	}
	inst := mustInstance(tb, c, InstanceSpec{Type: "ecs.g7.large"})
	return c, sf, inst, mustECS(tb, mustServeAPI(tb, c), testKeyID, testSecret)
}

func mustCreateSG(tb testing.TB, client *ecs.Client, typ, vpcID string) string {
	tb.Helper()
	req := ecs.CreateCreateSecurityGroupRequest()
	req.SecurityGroupType, req.VpcId = typ, vpcID
	resp, err := client.CreateSecurityGroup(req)
	if err != nil {
		tb.Fatalf("create security group: %v", err)
	}
	return resp.SecurityGroupId
}

func sgRules(tb testing.TB, client *ecs.Client, id string) []ecs.Permission {
	tb.Helper()
	req := ecs.CreateDescribeSecurityGroupAttributeRequest()
	req.SecurityGroupId = id
	resp, err := client.DescribeSecurityGroupAttribute(req)
	if err != nil {
		tb.Fatalf("describe security group %s: %v", id, err)
	}
	return resp.Permissions.Permission
}

func TestCloud_SecurityGroup_Lifecycle(t *testing.T) {
	_, sf, _, client := newSGTestAPI(t)
	normal := mustCreateSG(t, client, "", "vpc-sim-main")
	ent := mustCreateSG(t, client, "enterprise", "vpc-sim-main")

	dreq := ecs.CreateDescribeSecurityGroupsRequest()
	dreq.SecurityGroupIds = `["` + normal + `","` + ent + `"]`
	dresp, err := client.DescribeSecurityGroups(dreq)
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]string{}
	for _, g := range dresp.SecurityGroups.SecurityGroup {
		types[g.SecurityGroupId] = g.SecurityGroupType
	}
	if dresp.TotalCount != 2 || types[normal] != "normal" || types[ent] != "enterprise" {
		t.Fatalf("describe = %d groups %v; want %s normal and %s enterprise", dresp.TotalCount, types, normal, ent)
	}

	// Ingress in the flat form, twice (the second is not a new rule).
	for range 2 {
		req := ecs.CreateAuthorizeSecurityGroupRequest()
		req.SecurityGroupId, req.IpProtocol, req.PortRange = ent, "tcp", "80/80"
		req.SourceCidrIp, req.Priority, req.Policy = "172.30.0.0/16", "10", "accept"
		if _, err := client.AuthorizeSecurityGroup(req); err != nil {
			t.Fatalf("authorize: %v", err)
		}
	}
	// Egress in the Permissions.N form, two rules in one call.
	ereq := ecs.CreateAuthorizeSecurityGroupEgressRequest()
	ereq.SecurityGroupId = ent
	ereq.Permissions = &[]ecs.AuthorizeSecurityGroupEgressPermissions{
		{IpProtocol: "udp", PortRange: "53/53", DestCidrIp: "0.0.0.0/0", Policy: "drop", Priority: "1"},
		{IpProtocol: "all", PortRange: "-1/-1", DestGroupId: normal},
	}
	if _, err := client.AuthorizeSecurityGroupEgress(ereq); err != nil {
		t.Fatalf("authorize egress: %v", err)
	}
	rules := sgRules(t, client, ent)
	if len(rules) != 3 {
		t.Fatalf("rules = %+v; want 3", rules)
	}
	in, out := rules[0], rules[1]
	if in.Direction != "ingress" || in.IpProtocol != "TCP" || in.PortRange != "80/80" || in.SourceCidrIp != "172.30.0.0/16" || in.Priority != "10" || in.Policy != "Accept" {
		t.Errorf("ingress rule = %+v", in)
	}
	if out.Direction != "egress" || out.DestCidrIp != "0.0.0.0/0" || out.Policy != "Drop" || out.PortRange != "53/53" {
		t.Errorf("egress rule = %+v", out)
	}
	if rules[2].DestGroupId != normal || rules[2].PortRange != "-1/-1" {
		t.Errorf("egress group rule = %+v", rules[2])
	}
	var found bool
	for _, g := range sf.last(t).Groups {
		if g.ID == ent {
			found = len(g.Rules) == 3 && g.Enterprise
		}
	}
	if !found {
		t.Errorf("the fabric's policy lacks %s with 3 rules: %+v", ent, sf.last(t))
	}

	// Revoke the ingress rule by its fields and one egress rule by id.
	rreq := ecs.CreateRevokeSecurityGroupRequest()
	rreq.SecurityGroupId, rreq.IpProtocol, rreq.PortRange = ent, "tcp", "80/80"
	rreq.SourceCidrIp, rreq.Priority = "172.30.0.0/16", "10"
	if _, err := client.RevokeSecurityGroup(rreq); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	reqe := ecs.CreateRevokeSecurityGroupEgressRequest()
	reqe.SecurityGroupId = ent
	reqe.SecurityGroupRuleId = &[]string{out.SecurityGroupRuleId}
	if _, err := client.RevokeSecurityGroupEgress(reqe); err != nil {
		t.Fatalf("revoke egress: %v", err)
	}
	if rules := sgRules(t, client, ent); len(rules) != 1 || rules[0].DestGroupId != normal {
		t.Fatalf("rules after revoke = %+v; want only the group rule", rules)
	}

	// normal is named by ent's rule: it cannot go before the rule does.
	del := ecs.CreateDeleteSecurityGroupRequest()
	del.SecurityGroupId = normal
	_, err = client.DeleteSecurityGroup(del)
	wantCode(t, err, CodeDependencyViolation, http.StatusForbidden)
	del.SecurityGroupId = ent
	if _, err := client.DeleteSecurityGroup(del); err != nil {
		t.Fatalf("delete: %v", err)
	}
	del.SecurityGroupId = normal
	if _, err := client.DeleteSecurityGroup(del); err != nil {
		t.Fatalf("delete: %v", err)
	}
	req := ecs.CreateDescribeSecurityGroupAttributeRequest()
	req.SecurityGroupId = ent
	_, err = client.DescribeSecurityGroupAttribute(req)
	wantCode(t, err, CodeSecurityGroupNotFound, http.StatusNotFound)
}

func TestCloud_AuthorizeSecurityGroup_Errors(t *testing.T) {
	_, _, _, client := newSGTestAPI(t)
	sg := mustCreateSG(t, client, "normal", "vpc-sim-main")
	other := mustCreateSG(t, client, "normal", "vpc-sim-other")
	cases := []struct {
		name   string
		mutate func(*ecs.AuthorizeSecurityGroupRequest)
		code   string
		status int
	}{
		{"unknown group", func(r *ecs.AuthorizeSecurityGroupRequest) { r.SecurityGroupId = "sg-nope" }, CodeSecurityGroupNotFound, 404},
		{"unknown protocol", func(r *ecs.AuthorizeSecurityGroupRequest) { r.IpProtocol = "sctp" }, CodeInvalidParameter, 400},
		{"tcp without ports", func(r *ecs.AuthorizeSecurityGroupRequest) { r.PortRange = "-1/-1" }, CodeInvalidParameter, 400},
		{"reversed ports", func(r *ecs.AuthorizeSecurityGroupRequest) { r.PortRange = "90/80" }, CodeInvalidParameter, 400},
		{"icmp with ports", func(r *ecs.AuthorizeSecurityGroupRequest) { r.IpProtocol = "icmp" }, CodeInvalidParameter, 400},
		{"priority 0", func(r *ecs.AuthorizeSecurityGroupRequest) { r.Priority = "0" }, CodeInvalidParameter, 400},
		{"priority 101", func(r *ecs.AuthorizeSecurityGroupRequest) { r.Priority = "101" }, CodeInvalidParameter, 400},
		{"bad policy", func(r *ecs.AuthorizeSecurityGroupRequest) { r.Policy = "maybe" }, CodeInvalidParameter, 400},
		{"bad cidr", func(r *ecs.AuthorizeSecurityGroupRequest) { r.SourceCidrIp = "10.0.0.0/33" }, CodeInvalidParameter, 400},
		{"no peer", func(r *ecs.AuthorizeSecurityGroupRequest) { r.SourceCidrIp = "" }, CodeMissingParameter, 400},
		{"cidr and group", func(r *ecs.AuthorizeSecurityGroupRequest) { r.SourceGroupId = sg }, CodeInvalidParameter, 400},
		{"unknown peer group", func(r *ecs.AuthorizeSecurityGroupRequest) { r.SourceCidrIp, r.SourceGroupId = "", "sg-nope" }, CodeSecurityGroupNotFound, 404},
		{"peer group of another vpc", func(r *ecs.AuthorizeSecurityGroupRequest) { r.SourceCidrIp, r.SourceGroupId = "", other }, CodeVPCMismatch, 403},
		{"not modelled", func(r *ecs.AuthorizeSecurityGroupRequest) { r.SourcePortRange = "1/2" }, CodeInvalidParameter, 400},
		{"ipv6 cidr in SourceCidrIp", func(r *ecs.AuthorizeSecurityGroupRequest) { r.SourceCidrIp = "fd00::/64" }, CodeInvalidParameter, 400},
		{"ipv4 cidr in Ipv6SourceCidrIp", func(r *ecs.AuthorizeSecurityGroupRequest) { r.SourceCidrIp, r.Ipv6SourceCidrIp = "", "10.0.0.0/8" }, CodeInvalidParameter, 400},
		{"both families", func(r *ecs.AuthorizeSecurityGroupRequest) { r.Ipv6SourceCidrIp = "fd00::/64" }, CodeInvalidParameter, 400},
		{"icmp to an ipv6 peer", func(r *ecs.AuthorizeSecurityGroupRequest) {
			r.IpProtocol, r.PortRange, r.SourceCidrIp, r.Ipv6SourceCidrIp = "icmp", "-1/-1", "", "fd00::/64"
		}, CodeInvalidParameter, 400},
		{"icmpv6 to an ipv4 peer", func(r *ecs.AuthorizeSecurityGroupRequest) { r.IpProtocol, r.PortRange = "icmpv6", "-1/-1" }, CodeInvalidParameter, 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := ecs.CreateAuthorizeSecurityGroupRequest()
			req.SecurityGroupId, req.IpProtocol, req.PortRange, req.SourceCidrIp = sg, "tcp", "80/80", "10.0.0.0/8"
			tc.mutate(req)
			_, err := client.AuthorizeSecurityGroup(req)
			wantCode(t, err, tc.code, tc.status)
		})
	}
	if rules := sgRules(t, client, sg); len(rules) != 0 {
		t.Errorf("failed calls left rules: %+v", rules)
	}
	creq := ecs.CreateCreateSecurityGroupRequest()
	creq.VpcId = "vpc-nope"
	_, err := client.CreateSecurityGroup(creq)
	wantCode(t, err, CodeVPCNotFound, http.StatusNotFound)
	creq.VpcId, creq.SecurityGroupType = "vpc-sim-main", "premium"
	_, err = client.CreateSecurityGroup(creq)
	wantCode(t, err, CodeInvalidParameter, http.StatusBadRequest)
}

func TestCloud_ENISecurityGroups_Errors(t *testing.T) {
	c, _, _, client := newSGTestAPI(t)
	classic := mustCreateSG(t, client, "normal", "")
	other := mustCreateSG(t, client, "normal", "vpc-sim-other")
	ent := mustCreateSG(t, client, "enterprise", "vpc-sim-main")
	var six []string
	for range 6 {
		six = append(six, mustCreateSG(t, client, "normal", "vpc-sim-main"))
	}
	cases := []struct {
		name   string
		sgs    []string
		code   string
		status int
	}{
		{"unknown", []string{"sg-nope"}, CodeSecurityGroupNotFound, 404},
		{"classic network", []string{classic}, CodeSecurityGroupNotVPC, 403},
		{"another vpc", []string{other}, CodeVPCMismatch, 403},
		{"more than five", six, CodeJoinedGroupLimitExceed, 400},
		{"normal and enterprise", []string{DefaultSecurityGroupID, ent}, CodeMultiGroupType, 403},
		{"repeated", []string{six[0], six[0]}, CodeSecurityGroupIDRepeated, 404},
	}
	e := mustCreateENI(t, client, nil)
	for _, tc := range cases {
		t.Run("create/"+tc.name, func(t *testing.T) {
			req := ecs.CreateCreateNetworkInterfaceRequest()
			req.VSwitchId = "vsw-sim-a"
			req.SecurityGroupIds = &tc.sgs
			_, err := client.CreateNetworkInterface(req)
			wantCode(t, err, tc.code, tc.status)
		})
		t.Run("modify/"+tc.name, func(t *testing.T) {
			req := ecs.CreateModifyNetworkInterfaceAttributeRequest()
			req.NetworkInterfaceId = e.NetworkInterfaceId
			req.SecurityGroupId = &tc.sgs
			_, err := client.ModifyNetworkInterfaceAttribute(req)
			wantCode(t, err, tc.code, tc.status)
		})
	}

	// Capacity: one ENI per group.
	c.SetSecurityGroupCapacity(1, 1)
	mustCreateENI(t, client, func(r *ecs.CreateNetworkInterfaceRequest) { r.SecurityGroupId = six[1] })
	_, err := client.CreateNetworkInterface(func() *ecs.CreateNetworkInterfaceRequest {
		r := ecs.CreateCreateNetworkInterfaceRequest()
		r.VSwitchId, r.SecurityGroupId = "vsw-sim-a", six[1]
		return r
	}())
	wantCode(t, err, CodeSecurityGroupInstanceLimit, http.StatusForbidden)
	mustCreateENI(t, client, func(r *ecs.CreateNetworkInterfaceRequest) { r.SecurityGroupId = ent })
	req := ecs.CreateModifyNetworkInterfaceAttributeRequest()
	req.NetworkInterfaceId = e.NetworkInterfaceId
	req.SecurityGroupId = &[]string{ent}
	_, err = client.ModifyNetworkInterfaceAttribute(req)
	wantCode(t, err, CodeEnterpriseENICountExceeded, http.StatusForbidden)
}

func TestCloud_ModifyNetworkInterfaceAttribute_SecurityGroups(t *testing.T) {
	_, sf, inst, client := newSGTestAPI(t)
	a := mustCreateSG(t, client, "enterprise", "vpc-sim-main")
	b := mustCreateSG(t, client, "enterprise", "vpc-sim-main")
	e := mustCreateENI(t, client, func(r *ecs.CreateNetworkInterfaceRequest) {
		r.SecurityGroupId = ""
		r.SecurityGroupIds = &[]string{a}
		r.SecondaryPrivateIpAddressCount = "1"
	})
	mustAttach(t, client, e.NetworkInterfaceId, inst.ID)
	req := ecs.CreateModifyNetworkInterfaceAttributeRequest()
	req.NetworkInterfaceId = e.NetworkInterfaceId
	req.SecurityGroupId = &[]string{a, b}
	if _, err := client.ModifyNetworkInterfaceAttribute(req); err != nil {
		t.Fatalf("modify: %v", err)
	}
	got := describeENIs(t, client, func(r *ecs.DescribeNetworkInterfacesRequest) {
		r.NetworkInterfaceId = &[]string{e.NetworkInterfaceId}
	}).NetworkInterfaceSets.NetworkInterfaceSet[0].SecurityGroupIds.SecurityGroupId
	if !slices.Equal(got, []string{a, b}) {
		t.Fatalf("groups = %v; want [%s %s]", got, a, b)
	}
	// The fabric knows the ENI's groups and has both its addresses as
	// members of each.
	p := sf.last(t)
	if i := slices.IndexFunc(p.ENIs, func(s ENISecurity) bool { return s.ENIID == e.NetworkInterfaceId }); i < 0 || !slices.Equal(p.ENIs[i].Groups, []string{a, b}) {
		t.Fatalf("policy ENIs = %+v", p.ENIs)
	}
	var ips []netip.Addr
	for _, s := range e.PrivateIpSets.PrivateIpSet {
		ips = append(ips, netip.MustParseAddr(s.PrivateIpAddress))
	}
	for _, g := range p.Groups {
		if g.ID != a && g.ID != b {
			continue
		}
		for _, ip := range ips {
			if !slices.Contains(g.Members, ip) {
				t.Errorf("group %s members %v lack %s", g.ID, g.Members, ip)
			}
		}
	}
	// Unknown ENI.
	req.NetworkInterfaceId = "eni-nope"
	_, err := client.ModifyNetworkInterfaceAttribute(req)
	wantCode(t, err, CodeENINotFound, http.StatusNotFound)
	// A primary ENI keeps its groups.
	req.NetworkInterfaceId = inst.PrimaryENIID
	req.SecurityGroupId = &[]string{DefaultSecurityGroupID}
	_, err = client.ModifyNetworkInterfaceAttribute(req)
	wantCode(t, err, CodePrimaryENIOnlyNameAndDesc, http.StatusNotFound)
}

// A fabric without SetSecurityPolicy gets exactly the calls it got before
// security groups existed.
func TestCloud_SecurityGroups_PlainFabric(t *testing.T) {
	_, rec, _, client := newTestAPI(t, nil)
	sg := mustCreateSG(t, client, "normal", "vpc-sim-main")
	req := ecs.CreateAuthorizeSecurityGroupRequest()
	req.SecurityGroupId, req.IpProtocol, req.PortRange, req.SourceCidrIp = sg, "icmp", "-1/-1", "0.0.0.0/0"
	if _, err := client.AuthorizeSecurityGroup(req); err != nil {
		t.Fatal(err)
	}
	for _, call := range rec.Calls() {
		if call.Op != "attach" {
			t.Errorf("unexpected fabric call %s", call)
		}
	}
}

// members returns group id's member addresses in p.
func members(p SecurityPolicy, id string) []netip.Addr {
	for _, g := range p.Groups {
		if g.ID == id {
			return g.Members
		}
	}
	return nil
}

// Ensure the policy the fabric holds when an action answers lists the
// group's members as the cloud's ENIs hold addresses now, for every way an
// ENI gains or loses them: created with them, assigned IPs and prefixes,
// unassigned, deleted.
func TestCloud_SecurityPolicy_MembershipFollowsEveryChange(t *testing.T) {
	_, sf, inst, client := newSGTestAPI(t)
	has := func(ip string) bool {
		return slices.Contains(members(sf.last(t), DefaultSecurityGroupID), netip.MustParseAddr(ip))
	}
	create := ecs.CreateCreateNetworkInterfaceRequest()
	create.VSwitchId, create.SecurityGroupId = inst.VSwitchID, DefaultSecurityGroupID
	create.SecondaryPrivateIpAddressCount = requests.NewInteger(1)
	created, err := client.CreateNetworkInterface(create)
	if err != nil {
		t.Fatal(err)
	}
	id := created.NetworkInterfaceId
	attach := ecs.CreateAttachNetworkInterfaceRequest()
	attach.NetworkInterfaceId, attach.InstanceId = id, inst.ID
	if _, err := client.AttachNetworkInterface(attach); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, client, id, "InUse")
	for _, s := range created.PrivateIpSets.PrivateIpSet {
		if !has(s.PrivateIpAddress) {
			t.Errorf("created address %s is not a member after the attach", s.PrivateIpAddress)
		}
	}

	assign := ecs.CreateAssignPrivateIpAddressesRequest()
	assign.NetworkInterfaceId = id
	assign.SecondaryPrivateIpAddressCount = requests.NewInteger(1)
	got, err := client.AssignPrivateIpAddresses(assign)
	if err != nil {
		t.Fatal(err)
	}
	ip := got.AssignedPrivateIpAddressesSet.PrivateIpSet.PrivateIpAddress[0]
	if !has(ip) {
		t.Errorf("assigned %s is not a member when AssignPrivateIpAddresses answers", ip)
	}
	assign = ecs.CreateAssignPrivateIpAddressesRequest()
	assign.NetworkInterfaceId = id
	assign.Ipv4PrefixCount = requests.NewInteger(1)
	got, err = client.AssignPrivateIpAddresses(assign)
	if err != nil {
		t.Fatal(err)
	}
	prefix := netip.MustParsePrefix(got.AssignedPrivateIpAddressesSet.Ipv4PrefixSet.Ipv4Prefixes[0])
	for a := prefix.Addr(); prefix.Contains(a); a = a.Next() {
		if !has(a.String()) {
			t.Errorf("prefix address %s is not a member", a)
		}
	}

	unassign := ecs.CreateUnassignPrivateIpAddressesRequest()
	unassign.NetworkInterfaceId = id
	unassign.PrivateIpAddress = &[]string{ip}
	if _, err := client.UnassignPrivateIpAddresses(unassign); err != nil {
		t.Fatal(err)
	}
	if has(ip) {
		t.Errorf("unassigned %s is still a member", ip)
	}

	detach := ecs.CreateDetachNetworkInterfaceRequest()
	detach.NetworkInterfaceId, detach.InstanceId = id, inst.ID
	if _, err := client.DetachNetworkInterface(detach); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, client, id, "Available")
	del := ecs.CreateDeleteNetworkInterfaceRequest()
	del.NetworkInterfaceId = id
	if _, err := client.DeleteNetworkInterface(del); err != nil {
		t.Fatal(err)
	}
	if has(created.PrivateIpAddress) || has(prefix.Addr().String()) {
		t.Errorf("a deleted ENI's addresses are still members: %v", members(sf.last(t), DefaultSecurityGroupID))
	}
}

// Ensure a policy the fabric failed to apply is applied again without any
// further change: a failed update must not leave an old policy in force.
func TestCloud_SecurityPolicy_RetriedAfterFailure(t *testing.T) {
	_, sf, inst, client := newSGTestAPI(t)
	sf.mu.Lock()
	sf.fail, sf.policies = 2, nil
	sf.mu.Unlock()
	assign := ecs.CreateAssignPrivateIpAddressesRequest()
	assign.NetworkInterfaceId = inst.PrimaryENIID
	assign.SecondaryPrivateIpAddressCount = requests.NewInteger(1)
	got, err := client.AssignPrivateIpAddresses(assign)
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr(got.AssignedPrivateIpAddressesSet.PrivateIpSet.PrivateIpAddress[0])
	deadline := time.Now().Add(5 * time.Second)
	for {
		sf.mu.Lock()
		n := len(sf.policies)
		sf.mu.Unlock()
		if n > 0 && slices.Contains(members(sf.last(t), DefaultSecurityGroupID), ip) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after two failed SetSecurityPolicy calls, %d applied since and %s not a member", n, ip)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Ensure IPv6 rules go in by their own fields, ingress and egress, come
// back in them from Describe, reach the fabric as IPv6 prefixes, and are
// revoked by the same fields.
func TestCloud_SecurityGroup_IPv6Rules(t *testing.T) {
	_, fab, _, client := newSGTestAPI(t)
	sg := mustCreateSG(t, client, "normal", "vpc-sim-main")
	in := ecs.CreateAuthorizeSecurityGroupRequest()
	in.SecurityGroupId, in.IpProtocol, in.PortRange, in.Ipv6SourceCidrIp = sg, "tcp", "443/443", "fd00:1::/64"
	if _, err := client.AuthorizeSecurityGroup(in); err != nil {
		t.Fatal(err)
	}
	out := ecs.CreateAuthorizeSecurityGroupEgressRequest()
	out.SecurityGroupId, out.IpProtocol, out.PortRange, out.Ipv6DestCidrIp = sg, "icmpv6", "-1/-1", "::/0"
	if _, err := client.AuthorizeSecurityGroupEgress(out); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range sgRules(t, client, sg) {
		got = append(got, p.Direction+" "+p.IpProtocol+" "+p.SourceCidrIp+"|"+p.Ipv6SourceCidrIp+"|"+p.DestCidrIp+"|"+p.Ipv6DestCidrIp)
	}
	if want := []string{"ingress TCP |fd00:1::/64||", "egress ICMPV6 |||::/0"}; !slices.Equal(got, want) {
		t.Errorf("described rules %q, want %q", got, want)
	}
	var rules []SecurityRule
	for _, g := range fab.last(t).Groups {
		if g.ID == sg {
			rules = g.Rules
		}
	}
	if len(rules) != 2 || rules[0].PeerCIDR != netip.MustParsePrefix("fd00:1::/64") || !rules[1].Egress ||
		rules[1].Protocol != "icmpv6" || rules[1].PeerCIDR != netip.MustParsePrefix("::/0") {
		t.Errorf("fabric rules %+v", rules)
	}
	rv := ecs.CreateRevokeSecurityGroupRequest()
	rv.SecurityGroupId, rv.IpProtocol, rv.PortRange, rv.Ipv6SourceCidrIp = sg, "tcp", "443/443", "fd00:1::/64"
	if _, err := client.RevokeSecurityGroup(rv); err != nil {
		t.Fatal(err)
	}
	if n := len(sgRules(t, client, sg)); n != 1 {
		t.Errorf("%d rules after revoking the ipv6 ingress rule, want 1", n)
	}
}
