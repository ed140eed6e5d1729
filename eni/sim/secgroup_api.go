package sim

import (
	"cmp"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The security group actions of ECS (secgroup.go has the model).

type createSecurityGroupResponse struct {
	respBase
	SecurityGroupId string `json:"SecurityGroupId"`
}

func (c *Cloud) apiCreateSecurityGroup(q *request) (response, *apiError) {
	typ := strings.ToLower(q.get("SecurityGroupType"))
	switch typ {
	case "":
		typ = sgTypeNormal
	case sgTypeNormal, sgTypeEnterprise:
	default:
		return nil, errInvalid("SecurityGroupType", q.get("SecurityGroupType"))
	}
	id, aerr := c.createSecurityGroup(typ, q.get("VpcId"), q.get("SecurityGroupName"), q.get("Description"), q.get("ClientToken"))
	if aerr != nil {
		return nil, aerr
	}
	return &createSecurityGroupResponse{SecurityGroupId: id}, nil
}

// ruleParams are a rule's fields, in the flat form and as Permissions.N.*.
var ruleParams = map[string][]string{
	sgIngress: {"Policy", "Priority", "IpProtocol", "PortRange", "SourceCidrIp", "Ipv6SourceCidrIp", "SourceGroupId", "NicType", "Description"},
	sgEgress:  {"Policy", "Priority", "IpProtocol", "PortRange", "DestCidrIp", "Ipv6DestCidrIp", "DestGroupId", "NicType", "Description"},
}

// rulesOf reads the rules of an Authorize or Revoke call: the flat fields
// (one rule) and Permissions.N.* (one rule each), in index order.
func rulesOf(direction string, q *request) ([]sgRule, *apiError) {
	var out []sgRule
	if q.get("IpProtocol") != "" || q.get("PortRange") != "" {
		r, aerr := parseRule(direction, q.get, "")
		if aerr != nil {
			return nil, aerr
		}
		out = append(out, r)
	}
	idx := map[int]bool{}
	for _, f := range ruleParams[direction] {
		for n := range q.indexed("Permissions", f) {
			idx[n] = true
		}
	}
	ns := make([]int, 0, len(idx))
	for n := range idx {
		ns = append(ns, n)
	}
	slices.Sort(ns)
	for _, n := range ns {
		prefix := "Permissions." + strconv.Itoa(n) + "."
		r, aerr := parseRule(direction, func(f string) string { return q.get(prefix + f) }, prefix)
		if aerr != nil {
			return nil, aerr
		}
		out = append(out, r)
	}
	return out, nil
}

func (c *Cloud) apiAuthorize(direction string, q *request) (response, *apiError) {
	id := q.get("SecurityGroupId")
	if id == "" {
		return nil, errMissing("SecurityGroupId")
	}
	rules, aerr := rulesOf(direction, q)
	if aerr != nil {
		return nil, aerr
	}
	if len(rules) == 0 {
		return nil, errMissing("IpProtocol")
	}
	if aerr := c.authorize(id, rules); aerr != nil {
		return nil, aerr
	}
	return &emptyResponse{}, nil
}

func (c *Cloud) apiRevoke(direction string, q *request) (response, *apiError) {
	id := q.get("SecurityGroupId")
	if id == "" {
		return nil, errMissing("SecurityGroupId")
	}
	rules, aerr := rulesOf(direction, q)
	if aerr != nil {
		return nil, aerr
	}
	ids := q.list("SecurityGroupRuleId")
	if len(rules) == 0 && len(ids) == 0 {
		return nil, errMissing("IpProtocol")
	}
	if aerr := c.revoke(id, direction, rules, ids); aerr != nil {
		return nil, aerr
	}
	return &emptyResponse{}, nil
}

func (c *Cloud) apiAuthorizeSecurityGroup(q *request) (response, *apiError) {
	return c.apiAuthorize(sgIngress, q)
}

func (c *Cloud) apiAuthorizeSecurityGroupEgress(q *request) (response, *apiError) {
	return c.apiAuthorize(sgEgress, q)
}

func (c *Cloud) apiRevokeSecurityGroup(q *request) (response, *apiError) {
	return c.apiRevoke(sgIngress, q)
}

func (c *Cloud) apiRevokeSecurityGroupEgress(q *request) (response, *apiError) {
	return c.apiRevoke(sgEgress, q)
}

func (c *Cloud) apiDeleteSecurityGroup(q *request) (response, *apiError) {
	id := q.get("SecurityGroupId")
	if id == "" {
		return nil, errMissing("SecurityGroupId")
	}
	if aerr := c.deleteSecurityGroup(id); aerr != nil {
		return nil, aerr
	}
	return &emptyResponse{}, nil
}

type securityGroupJSON struct {
	SecurityGroupId         string `json:"SecurityGroupId"`
	SecurityGroupName       string `json:"SecurityGroupName"`
	Description             string `json:"Description"`
	SecurityGroupType       string `json:"SecurityGroupType"`
	VpcId                   string `json:"VpcId"`
	CreationTime            string `json:"CreationTime"`
	EcsCount                int    `json:"EcsCount"`
	AvailableInstanceAmount int    `json:"AvailableInstanceAmount"`
	RuleCount               int    `json:"RuleCount"`
}

type describeSecurityGroupsResponse struct {
	respBase
	RegionId       string `json:"RegionId"`
	TotalCount     int    `json:"TotalCount"`
	PageNumber     int    `json:"PageNumber"`
	PageSize       int    `json:"PageSize"`
	SecurityGroups struct {
		SecurityGroup []securityGroupJSON `json:"SecurityGroup"`
	} `json:"SecurityGroups"`
}

func (c *Cloud) apiDescribeSecurityGroups(q *request) (response, *apiError) {
	number, aerr := q.integer("PageNumber", 1, 1, 1<<30)
	if aerr != nil {
		return nil, aerr
	}
	size, aerr := q.integer("PageSize", 10, 1, 50)
	if aerr != nil {
		return nil, aerr
	}
	var ids []string
	if s := q.get("SecurityGroupIds"); s != "" {
		// A JSON array of up to 100 ids, e.g. ["sg-a","sg-b"].
		if err := json.Unmarshal([]byte(s), &ids); err != nil || len(ids) > 100 {
			return nil, errInvalid("SecurityGroupIds", s)
		}
	}
	vpcID, one, typ := q.get("VpcId"), q.get("SecurityGroupId"), strings.ToLower(q.get("SecurityGroupType"))
	c.mu.Lock()
	var all []securityGroupJSON
	groups := make([]*secGroup, 0, len(c.sgs))
	for _, g := range c.sgs {
		groups = append(groups, g)
	}
	slices.SortFunc(groups, func(a, b *secGroup) int { return cmp.Compare(a.seq, b.seq) })
	for _, g := range groups {
		if vpcID != "" && g.vpcID != vpcID || one != "" && g.id != one ||
			len(ids) > 0 && !slices.Contains(ids, g.id) || typ != "" && g.typ != typ {
			continue
		}
		n := c.groupENICountLocked(g.id, "")
		all = append(all, securityGroupJSON{
			SecurityGroupId: g.id, SecurityGroupName: g.name, Description: g.description,
			SecurityGroupType: g.typ, VpcId: g.vpcID, CreationTime: g.created.Format(time.RFC3339),
			EcsCount: n, AvailableInstanceAmount: c.sgCapacity[g.typ] - n, RuleCount: len(g.rules),
		})
	}
	c.mu.Unlock()
	resp := &describeSecurityGroupsResponse{RegionId: c.cfg.RegionID, TotalCount: len(all), PageNumber: number, PageSize: size}
	resp.SecurityGroups.SecurityGroup = append([]securityGroupJSON{}, page(all, number, size)...)
	return resp, nil
}

type permissionJSON struct {
	SecurityGroupRuleId string `json:"SecurityGroupRuleId"`
	Direction           string `json:"Direction"`
	Policy              string `json:"Policy"`
	Priority            string `json:"Priority"`
	IpProtocol          string `json:"IpProtocol"`
	PortRange           string `json:"PortRange"`
	SourceCidrIp        string `json:"SourceCidrIp"`
	SourceGroupId       string `json:"SourceGroupId"`
	DestCidrIp          string `json:"DestCidrIp"`
	Ipv6SourceCidrIp    string `json:"Ipv6SourceCidrIp"`
	Ipv6DestCidrIp      string `json:"Ipv6DestCidrIp"`
	DestGroupId         string `json:"DestGroupId"`
	NicType             string `json:"NicType"`
	Description         string `json:"Description"`
	CreateTime          string `json:"CreateTime"`
}

type describeSecurityGroupAttributeResponse struct {
	respBase
	RegionId          string `json:"RegionId"`
	SecurityGroupId   string `json:"SecurityGroupId"`
	SecurityGroupName string `json:"SecurityGroupName"`
	Description       string `json:"Description"`
	VpcId             string `json:"VpcId"`
	InnerAccessPolicy string `json:"InnerAccessPolicy"`
	Permissions       struct {
		Permission []permissionJSON `json:"Permission"`
	} `json:"Permissions"`
}

func (c *Cloud) apiDescribeSecurityGroupAttribute(q *request) (response, *apiError) {
	id := q.get("SecurityGroupId")
	if id == "" {
		return nil, errMissing("SecurityGroupId")
	}
	direction := strings.ToLower(cmp.Or(q.get("Direction"), "all"))
	if direction != "all" && direction != sgIngress && direction != sgEgress {
		return nil, errInvalid("Direction", q.get("Direction"))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	g, ok := c.sgs[id]
	if !ok {
		return nil, errSecurityGroupNotFound(id)
	}
	resp := &describeSecurityGroupAttributeResponse{
		RegionId: c.cfg.RegionID, SecurityGroupId: g.id, SecurityGroupName: g.name,
		Description: g.description, VpcId: g.vpcID, InnerAccessPolicy: "Accept",
	}
	if g.typ == sgTypeEnterprise {
		resp.InnerAccessPolicy = "Drop"
	}
	resp.Permissions.Permission = []permissionJSON{}
	for _, r := range g.rules {
		if direction != "all" && r.direction != direction {
			continue
		}
		p := permissionJSON{
			SecurityGroupRuleId: r.id, Direction: r.direction, Policy: titleCase(r.policy),
			Priority: strconv.Itoa(r.priority), IpProtocol: strings.ToUpper(r.protocol), PortRange: r.portRange(),
			NicType: "intranet", Description: r.description, CreateTime: r.created.Format(time.RFC3339),
		}
		peerCIDR, peerCIDR6 := "", ""
		switch {
		case r.peerCIDR.IsValid() && r.peerCIDR.Addr().Is4():
			peerCIDR = r.peerCIDR.String()
		case r.peerCIDR.IsValid():
			peerCIDR6 = r.peerCIDR.String()
		}
		if r.direction == sgIngress {
			p.SourceCidrIp, p.Ipv6SourceCidrIp, p.SourceGroupId = peerCIDR, peerCIDR6, r.peerGroup
		} else {
			p.DestCidrIp, p.Ipv6DestCidrIp, p.DestGroupId = peerCIDR, peerCIDR6, r.peerGroup
		}
		resp.Permissions.Permission = append(resp.Permissions.Permission, p)
	}
	return resp, nil
}

func (c *Cloud) apiModifyNetworkInterfaceAttribute(q *request) (response, *apiError) {
	id := q.get("NetworkInterfaceId")
	if id == "" {
		return nil, errMissing("NetworkInterfaceId")
	}
	sgs := q.list("SecurityGroupId")
	if len(sgs) == 0 {
		// Name and description are not modelled here; without groups
		// the call would change nothing the sim keeps.
		return nil, errMissing("SecurityGroupId.1")
	}
	if aerr := c.setENIGroups(id, sgs); aerr != nil {
		return nil, aerr
	}
	return &emptyResponse{}, nil
}

// titleCase turns "accept" into "Accept", as Describe answers policies.
func titleCase(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
