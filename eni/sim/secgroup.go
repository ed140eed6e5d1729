package sim

import (
	"cmp"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Security groups, as ECS models them (secgroup_api.go serves them):
//
//   - a group is "normal" (basic) or "enterprise" (advanced) and lives in
//     one VPC; a group created without VpcId is a classic-network group
//     and cannot be put on an ENI (InvalidSecurityGroupId.NotVpc), a group
//     of another VPC neither (InvalidOperation.VpcMismatch);
//   - an ENI is in 1 to maxGroupsPerENI groups (JoinedGroupLimitExceed),
//     all of one type (InvalidOperation.MultiGroupType), none twice
//     (InvalidParameter.SecurityGroupIdRepeated); a group holds at most
//     its type's number of ENIs (SecurityGroupInstanceLimitExceed for
//     normal groups, InvalidOperation.EniCountExceeded for enterprise ones,
//     as ModifyNetworkInterfaceAttribute documents them); a primary ENI
//     keeps the groups its instance was created with
//     (InvalidOperation.PrimaryEniOnlySupportModifyNameAndDesc);
//   - rules are ingress or egress, accept or drop, with a priority 1–100
//     (1 first; drop wins a tie), a protocol (tcp, udp, icmp, all), a port
//     range ("a/b", "-1/-1" for icmp and all) and a peer: a CIDR or a
//     group (its members' addresses). A normal group lets its members
//     talk to each other unless a rule says otherwise; an enterprise group
//     does not. With no rule matching, ingress is dropped; egress is
//     accepted from a normal group and dropped from an enterprise one
//     ("Enterprise security groups deny both inbound and outbound traffic
//     by default", ECS's "Security group rules" page).
//
// An ENI in several groups is judged by all their rules merged and sorted
// by priority, as ECS documents for instances in several groups; so for
// accept rules "any group allows" holds, and a drop of one group overrides
// an accept of another only at a better (lower) or equal priority.
//
// The codes come from Alibaba's error lists for CreateNetworkInterface and
// ModifyNetworkInterfaceAttribute; the limits are the documented defaults
// (5 groups per ENI, 2000 ENIs per basic group, 65536 per advanced group,
// 200 rules per group). Not verified against a live endpoint: the status of
// InvalidParameter.SecurityGroupIdRepeated (404 per the docs), that an
// unknown rule to revoke is not an error, and DependencyViolation for a
// group still in use.

const (
	sgTypeNormal     = "normal"
	sgTypeEnterprise = "enterprise"

	sgIngress = "ingress"
	sgEgress  = "egress"

	sgAccept = "accept"
	sgDrop   = "drop"

	maxGroupsPerENI  = 5
	maxRulesPerGroup = 200

	defaultNormalGroupCapacity     = 2000
	defaultEnterpriseGroupCapacity = 65536
)

// Security group error codes.
const (
	CodeSecurityGroupNotVPC        = "InvalidSecurityGroupId.NotVpc"
	CodeVPCMismatch                = "InvalidOperation.VpcMismatch"
	CodeSecurityGroupInstanceLimit = "SecurityGroupInstanceLimitExceed"
	CodeEnterpriseENICountExceeded = "InvalidOperation.EniCountExceeded"
	CodeJoinedGroupLimitExceed     = "JoinedGroupLimitExceed"
	CodeMultiGroupType             = "InvalidOperation.MultiGroupType"
	CodeSecurityGroupIDRepeated    = "InvalidParameter.SecurityGroupIdRepeated"
	CodeVPCNotFound                = "InvalidVpcId.NotFound"
	CodeDependencyViolation        = "DependencyViolation"
	CodeAuthorizationLimitExceed   = "AuthorizationLimitExceed"
	CodePrimaryENIOnlyNameAndDesc  = "InvalidOperation.PrimaryEniOnlySupportModifyNameAndDesc"
)

// sgRule is one rule of a security group. The peer is the source of an
// ingress rule and the destination of an egress rule.
type sgRule struct {
	id          string
	direction   string // sgIngress or sgEgress
	policy      string // sgAccept or sgDrop
	priority    int    // 1..100, 1 first
	protocol    string // tcp, udp, icmp, icmpv6 or all
	portFrom    int    // -1 for icmp and all
	portTo      int
	peerCIDR    netip.Prefix // IPv4 or IPv6 (Ipv6SourceCidrIp, Ipv6DestCidrIp); zero when peerGroup is set
	peerGroup   string
	description string
	created     time.Time
}

// sameRule reports whether r and o are the same rule in the sense of
// Revoke: everything but id, description and time.
func (r sgRule) sameRule(o sgRule) bool {
	return r.direction == o.direction && r.policy == o.policy && r.priority == o.priority &&
		r.protocol == o.protocol && r.portFrom == o.portFrom && r.portTo == o.portTo &&
		r.peerCIDR == o.peerCIDR && r.peerGroup == o.peerGroup
}

func (r sgRule) portRange() string { return fmt.Sprintf("%d/%d", r.portFrom, r.portTo) }

// secGroup is the model of one security group.
type secGroup struct {
	id, name, description string
	typ                   string // sgTypeNormal or sgTypeEnterprise
	vpcID                 string // "" for a classic-network group
	created               time.Time
	seq                   uint64
	rules                 []sgRule
}

// SetSecurityGroupCapacity sets how many ENIs one normal and one
// enterprise group may hold (0 restores the default, 2000 and 65536), so a
// test can reach SecurityGroupInstanceLimitExceed.
func (c *Cloud) SetSecurityGroupCapacity(normal, enterprise int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sgCapacity[sgTypeNormal] = cmp.Or(normal, defaultNormalGroupCapacity)
	c.sgCapacity[sgTypeEnterprise] = cmp.Or(enterprise, defaultEnterpriseGroupCapacity)
}

// AddVPC registers another VPC of the account, with no vSwitches, in which
// security groups may be created; groups there cannot be used by this
// VPC's ENIs (InvalidOperation.VpcMismatch).
func (c *Cloud) AddVPC(id string) error {
	if !strings.HasPrefix(id, "vpc-") {
		return fmt.Errorf("%w: vpc id %q must start with vpc-", ErrInvalidConfig, id)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.otherVPCs[id] = true
	return nil
}

// newSecGroupLocked registers a group.
func (c *Cloud) newSecGroupLocked(id, typ, vpcID, name, description string, now time.Time) *secGroup {
	c.seq++
	g := &secGroup{id: id, typ: typ, vpcID: vpcID, name: name, description: description,
		created: now.UTC().Truncate(time.Second), seq: c.seq}
	c.sgs[id] = g
	return g
}

func errSecurityGroupNotFound(id string) *apiError {
	return newAPIError(http.StatusNotFound, CodeSecurityGroupNotFound, "The specified security group %s does not exist.", id)
}

// checkENIGroupsLocked validates the groups an ENI (eniID, "" for a new
// one) is to have, with every error ModifyNetworkInterfaceAttribute and
// CreateNetworkInterface document for them.
func (c *Cloud) checkENIGroupsLocked(eniID string, sgs []string) *apiError {
	if len(sgs) > maxGroupsPerENI {
		return newAPIError(http.StatusBadRequest, CodeJoinedGroupLimitExceed,
			"The ENI would be in %d security groups; at most %d are allowed.", len(sgs), maxGroupsPerENI)
	}
	typ := ""
	for i, id := range sgs {
		if slices.Contains(sgs[:i], id) {
			return newAPIError(http.StatusNotFound, CodeSecurityGroupIDRepeated,
				"The specified security group ids has repeated: %s.", id)
		}
		g, ok := c.sgs[id]
		if !ok {
			return errSecurityGroupNotFound(id)
		}
		switch {
		case g.vpcID == "":
			return newAPIError(http.StatusForbidden, CodeSecurityGroupNotVPC,
				"The specified security group %s is not of the VPC network type.", id)
		case g.vpcID != c.cfg.VPCID:
			return newAPIError(http.StatusForbidden, CodeVPCMismatch,
				"The security group %s is in %s, not in the ENI's VPC %s.", id, g.vpcID, c.cfg.VPCID)
		case typ != "" && g.typ != typ:
			return newAPIError(http.StatusForbidden, CodeMultiGroupType,
				"The specified instance can't join different types of security group.")
		}
		typ = g.typ
		if n := c.groupENICountLocked(id, eniID); n >= c.sgCapacity[g.typ] {
			code := CodeSecurityGroupInstanceLimit
			if g.typ == sgTypeEnterprise {
				code = CodeEnterpriseENICountExceeded
			}
			return newAPIError(http.StatusForbidden, code,
				"The security group %s already holds %d ENIs, its maximum.", id, n)
		}
	}
	return nil
}

// groupENICountLocked counts the ENIs in group id, not counting except.
func (c *Cloud) groupENICountLocked(id, except string) int {
	n := 0
	for _, e := range c.enis {
		if e.id != except && slices.Contains(e.sgs, id) {
			n++
		}
	}
	return n
}

// createSecurityGroup is CreateSecurityGroup's model operation.
func (c *Cloud) createSecurityGroup(typ, vpcID, name, description, clientToken string) (string, *apiError) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if clientToken != "" {
		if id, ok := c.sgTokens[clientToken]; ok {
			return id, nil
		}
	}
	if vpcID != "" && vpcID != c.cfg.VPCID && !c.otherVPCs[vpcID] {
		return "", newAPIError(http.StatusNotFound, CodeVPCNotFound, "The specified VPC %s does not exist.", vpcID)
	}
	id := ""
	for id == "" || c.sgs[id] != nil {
		id = "sg-" + RandomID(20)
	}
	c.newSecGroupLocked(id, typ, vpcID, name, description, time.Now())
	if clientToken != "" {
		c.sgTokens[clientToken] = id
	}
	return id, nil
}

// authorize adds rules to group id; a rule equal to one the group has is
// not added twice.
func (c *Cloud) authorize(id string, rules []sgRule) *apiError {
	c.mu.Lock()
	g, ok := c.sgs[id]
	if !ok {
		c.mu.Unlock()
		return errSecurityGroupNotFound(id)
	}
	for _, r := range rules {
		if r.peerGroup == "" {
			continue
		}
		peer, ok := c.sgs[r.peerGroup]
		switch {
		case !ok:
			c.mu.Unlock()
			return errSecurityGroupNotFound(r.peerGroup)
		case peer.vpcID != g.vpcID:
			c.mu.Unlock()
			return newAPIError(http.StatusForbidden, CodeVPCMismatch,
				"The peer security group %s is not in the VPC of %s.", r.peerGroup, id)
		}
	}
	now := time.Now().UTC().Truncate(time.Second)
	for _, r := range rules {
		if slices.ContainsFunc(g.rules, r.sameRule) {
			continue
		}
		if len(g.rules) >= maxRulesPerGroup {
			c.mu.Unlock()
			return newAPIError(http.StatusForbidden, CodeAuthorizationLimitExceed,
				"The security group %s already has %d rules, its maximum.", id, maxRulesPerGroup)
		}
		r.id = "sgr-" + RandomID(20)
		r.created = now
		g.rules = append(g.rules, r)
	}
	c.securityChangedUnlock("authorize rules of " + id)
	return nil
}

// revoke removes the rules of group id equal to rules, and those named by
// ruleIDs (of direction); rules the group does not have are ignored.
func (c *Cloud) revoke(id, direction string, rules []sgRule, ruleIDs []string) *apiError {
	c.mu.Lock()
	g, ok := c.sgs[id]
	if !ok {
		c.mu.Unlock()
		return errSecurityGroupNotFound(id)
	}
	g.rules = slices.DeleteFunc(g.rules, func(have sgRule) bool {
		return have.direction == direction && slices.Contains(ruleIDs, have.id) ||
			slices.ContainsFunc(rules, have.sameRule)
	})
	c.securityChangedUnlock("revoke rules of " + id)
	return nil
}

// deleteSecurityGroup removes a group no ENI is in and no other group's
// rule names.
func (c *Cloud) deleteSecurityGroup(id string) *apiError {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.sgs[id]; !ok {
		return errSecurityGroupNotFound(id)
	}
	if n := c.groupENICountLocked(id, ""); n > 0 {
		return newAPIError(http.StatusForbidden, CodeDependencyViolation,
			"There are still %d ENIs in the specified security group %s.", n, id)
	}
	for _, o := range c.sgs {
		if o.id != id && slices.ContainsFunc(o.rules, func(r sgRule) bool { return r.peerGroup == id }) {
			return newAPIError(http.StatusForbidden, CodeDependencyViolation,
				"The specified security group %s is referenced by a rule of %s.", id, o.id)
		}
	}
	delete(c.sgs, id)
	return nil
}

// setENIGroups is ModifyNetworkInterfaceAttribute's SecurityGroupId.N: the
// ENI leaves its groups and joins sgs.
func (c *Cloud) setENIGroups(eniID string, sgs []string) *apiError {
	c.mu.Lock()
	e, ok := c.enis[eniID]
	if !ok {
		c.mu.Unlock()
		return errENINotFound(eniID)
	}
	if e.typ == eniTypePrimary {
		// The docs answer 404 for this one.
		c.mu.Unlock()
		return newAPIError(http.StatusNotFound, CodePrimaryENIOnlyNameAndDesc,
			"Primary NetworkInterface is only allowed to modify name and description.")
	}
	if aerr := c.checkENIGroupsLocked(e.id, sgs); aerr != nil {
		c.mu.Unlock()
		return aerr
	}
	e.sgs = slices.Clone(sgs)
	c.hist.recordENI(time.Now(), e.id, e)
	c.securityChangedUnlock("set security groups of eni " + e.id)
	return nil
}

// securityChangedUnlock hands the fabric the new security policy and
// unlocks c.mu; it returns once the fabric has it.
func (c *Cloud) securityChangedUnlock(desc string) {
	op := c.enqueueSecurityLocked(desc)
	c.mu.Unlock()
	_ = c.flush(op)
}

// enqueueSecurityLocked queues a SetSecurityPolicy call when the Fabric
// enforces security groups. The call derives the policy from the model
// when it runs, not when it is queued: whatever changed the model in
// between (an address, an attach, a deletion, a rule), the VPC gets the
// state as it is then, from one function (securityPolicyLocked). A call
// that fails is retried (retrySecurityLocked) until one succeeds, so a
// failed update cannot leave the VPC on an old policy for good.
func (c *Cloud) enqueueSecurityLocked(desc string) *fabricOp {
	sf, ok := c.cfg.Fabric.(SecurityGroupFabric)
	if !ok {
		return nil
	}
	fn := func(Fabric) error {
		c.mu.Lock()
		p := c.securityPolicyLocked()
		c.mu.Unlock()
		err := sf.SetSecurityPolicy(p)
		c.mu.Lock()
		if err != nil {
			c.retrySecurityLocked()
		}
		c.mu.Unlock()
		return err
	}
	op := &fabricOp{desc: desc, fn: fn, done: make(chan error, 1)}
	c.pending = append(c.pending, op)
	return op
}

// securityRetryDelay is how long after a failed SetSecurityPolicy the
// policy is handed to the fabric again.
const securityRetryDelay = 500 * time.Millisecond

// retrySecurityLocked schedules one more SetSecurityPolicy call unless
// one is scheduled already or the cloud is closed.
func (c *Cloud) retrySecurityLocked() {
	if c.closed || c.sgRetry != nil {
		return
	}
	c.sgRetry = time.AfterFunc(securityRetryDelay, func() {
		c.mu.Lock()
		c.sgRetry = nil
		if c.closed {
			c.mu.Unlock()
			return
		}
		c.securityChangedUnlock("security policy (retry after a failure)")
	})
}

// securityPolicyLocked is the whole security policy of the VPC, in a
// stable order.
func (c *Cloud) securityPolicyLocked() SecurityPolicy {
	var p SecurityPolicy
	members := map[string][]netip.Addr{}
	prefixes := map[string][]netip.Prefix{}
	enis := make([]*eni, 0, len(c.enis))
	for _, e := range c.enis {
		enis = append(enis, e)
	}
	slices.SortFunc(enis, func(a, b *eni) int { return cmp.Compare(a.seq, b.seq) })
	for _, e := range enis {
		addrs := e.fabricAddrs() // IPv6 too: a group's rules about its members cover both families
		for _, id := range e.sgs {
			members[id] = append(members[id], addrs...)
			prefixes[id] = append(prefixes[id], e.prefixes6...)
		}
		es := ENISecurity{ENIID: e.id, Groups: slices.Clone(e.sgs)}
		if e.trunkID != "" {
			es.Trunk, es.VLAN, es.Addrs = e.trunkID, e.deviceIndex, slices.Clone(addrs)
		}
		p.ENIs = append(p.ENIs, es)
	}
	groups := make([]*secGroup, 0, len(c.sgs))
	for _, g := range c.sgs {
		if g.vpcID == c.cfg.VPCID {
			groups = append(groups, g)
		}
	}
	slices.SortFunc(groups, func(a, b *secGroup) int { return cmp.Compare(a.seq, b.seq) })
	for _, g := range groups {
		sg := SecurityGroup{ID: g.id, Enterprise: g.typ == sgTypeEnterprise, Members: members[g.id], MemberPrefixes: prefixes[g.id]}
		for _, r := range g.rules {
			sg.Rules = append(sg.Rules, SecurityRule{
				Egress: r.direction == sgEgress, Drop: r.policy == sgDrop, Priority: r.priority,
				Protocol: r.protocol, PortFrom: r.portFrom, PortTo: r.portTo,
				PeerCIDR: r.peerCIDR, PeerGroup: r.peerGroup,
			})
		}
		p.Groups = append(p.Groups, sg)
	}
	return p
}

// parseRule reads one rule's fields (get returns a field by its name in
// the flat or the Permissions.N form) for direction.
func parseRule(direction string, get func(string) string, prefix string) (sgRule, *apiError) {
	r := sgRule{direction: direction, description: get("Description")}
	r.policy = strings.ToLower(cmp.Or(get("Policy"), sgAccept))
	if r.policy != sgAccept && r.policy != sgDrop {
		return r, errInvalid(prefix+"Policy", get("Policy"))
	}
	r.priority = 1
	if s := get("Priority"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 100 {
			return r, errInvalid(prefix+"Priority", s)
		}
		r.priority = n
	}
	if nic := get("NicType"); nic != "" && nic != "intranet" {
		return r, errInvalid(prefix+"NicType", nic+" (a VPC group's rules are intranet)")
	}
	r.protocol = strings.ToLower(get("IpProtocol"))
	ports := get("PortRange")
	switch r.protocol {
	case "":
		return r, errMissing(prefix + "IpProtocol")
	case "tcp", "udp":
		from, to, ok := parsePortRange(ports)
		if !ok || from < 1 || to > 65535 || from > to {
			return r, errInvalid(prefix+"PortRange", ports)
		}
		r.portFrom, r.portTo = from, to
	case "icmp", "icmpv6", "all":
		if ports != "" && ports != "-1/-1" {
			return r, errInvalid(prefix+"PortRange", ports+" (must be -1/-1 for "+r.protocol+")")
		}
		r.portFrom, r.portTo = -1, -1
	default:
		return r, errInvalid(prefix+"IpProtocol", get("IpProtocol"))
	}
	// The peer: an IPv4 CIDR, an IPv6 CIDR or a group, exactly one.
	cidrName, cidr6Name, groupName := "SourceCidrIp", "Ipv6SourceCidrIp", "SourceGroupId"
	if direction == sgEgress {
		cidrName, cidr6Name, groupName = "DestCidrIp", "Ipv6DestCidrIp", "DestGroupId"
	}
	var given []string
	for _, f := range []string{cidrName, cidr6Name, groupName} {
		if get(f) != "" {
			given = append(given, f)
		}
	}
	switch {
	case len(given) > 1:
		return r, errInvalid(prefix+given[1], "given together with "+given[0])
	case len(given) == 0:
		return r, errMissing(prefix + cidrName)
	case given[0] == groupName:
		r.peerGroup = get(groupName)
		return r, nil
	}
	name := given[0]
	cidr := get(name)
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		a, aerr := netip.ParseAddr(cidr)
		if aerr != nil {
			return r, errInvalid(prefix+name, cidr)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	switch {
	case name == cidrName && !p.Addr().Is4():
		return r, errInvalid(prefix+name, cidr+" (an IPv6 CIDR goes in "+cidr6Name+")")
	case name == cidr6Name && (!p.Addr().Is6() || p.Addr().Is4In6()):
		return r, errInvalid(prefix+name, cidr+" (an IPv4 CIDR goes in "+cidrName+")")
	case r.protocol == "icmp" && name == cidr6Name:
		return r, errInvalid(prefix+"IpProtocol", get("IpProtocol")+" (IPv6 peers take ICMPv6)")
	case r.protocol == "icmpv6" && name == cidrName:
		return r, errInvalid(prefix+"IpProtocol", get("IpProtocol")+" (IPv4 peers take ICMP)")
	}
	r.peerCIDR = p.Masked()
	return r, nil
}

func parsePortRange(s string) (int, int, bool) {
	a, b, ok := strings.Cut(s, "/")
	if !ok {
		return 0, 0, false
	}
	from, err1 := strconv.Atoi(a)
	to, err2 := strconv.Atoi(b)
	return from, to, err1 == nil && err2 == nil
}
