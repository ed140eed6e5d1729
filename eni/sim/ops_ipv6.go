package sim

import (
	"net/http"
	"net/netip"
	"slices"
)

// IPv6 addresses of an ENI come from its vSwitch's /64 (which must have
// IPv6 turned on) and count against the instance type's
// EniIpv6AddressQuantity once the ENI belongs to an instance. Like IPv4
// changes, every change of a live ENI's IPv6 set is handed to the Fabric
// (addressesChangedUnlock), which routes them to the ENI and accepts them
// from it as sources.

// ipv6LimitLocked is how many IPv6 addresses the ENI may hold, or an
// error when its instance type has no IPv6 at all.
func (c *Cloud) ipv6LimitLocked(e *eni) (int, *apiError) {
	inst, ok := c.instances[e.instanceID]
	if !ok {
		return maxIPsPerENI, nil
	}
	if inst.typ.IPv6PerENI == 0 {
		return 0, newAPIError(http.StatusForbidden, CodeIPv6NotSupported,
			"Instance type %s does not support IPv6.", inst.typ.ID)
	}
	return inst.typ.IPv6PerENI, nil
}

// assignIPv6s adds count new IPv6 addresses, or the named ones, to the ENI.
func (c *Cloud) assignIPv6s(eniID string, count int, named []netip.Addr, clientToken string) ([]netip.Addr, *apiError) {
	c.mu.Lock()
	got, changed, aerr := c.assignIPv6sLocked(eniID, count, named, clientToken)
	if aerr != nil || !changed {
		c.mu.Unlock()
		return got, aerr
	}
	e := c.enis[eniID]
	c.addressesChangedUnlock(e, c.vsws[e.vswID])
	return got, nil
}

// assignIPv6sLocked does assignIPv6s' work under c.mu; changed is false
// when a repeated ClientToken replays the first answer.
func (c *Cloud) assignIPv6sLocked(eniID string, count int, named []netip.Addr, clientToken string) (got []netip.Addr, changed bool, _ *apiError) {
	e, tokenKey, prev, replayed, aerr := startAssignLocked(c, c.ipv6Tokens, eniID, clientToken, "AssignIpv6Addresses")
	if aerr != nil || replayed {
		return prev, false, aerr
	}
	vsw := c.vsws[e.vswID]
	if !vsw.ipv6On() {
		return nil, false, errIPv6Off(vsw.ID)
	}
	limit, aerr := c.ipv6LimitLocked(e)
	if aerr != nil {
		return nil, false, aerr
	}
	n := count + len(named)
	if e.slots6()+n > limit {
		return nil, false, newAPIError(http.StatusForbidden, CodeIPv6CountExceeded,
			"ENI %s holds %d IPv6 addresses and prefixes; %d more exceed its quota of %d.", e.id, e.slots6(), n, limit)
	}
	for i, ip := range named {
		switch {
		case !vsw.usable6(ip):
			return nil, false, newAPIError(http.StatusBadRequest, CodeInvalidIPAddress,
				"The specified IPv6 address %s is not a usable address of VSwitch %s (%s).", ip, vsw.ID, vsw.IPv6CIDR)
		case slices.Contains(named[:i], ip):
			return nil, false, newAPIError(http.StatusBadRequest, CodeIPRepeated,
				"The specified IPv6 address %s is given more than once.", ip)
		case vsw.used6[ip] || vsw.inPrefix6(ip):
			return nil, false, newAPIError(http.StatusForbidden, CodeIPAssigned,
				"The specified IP %s is already assigned.", ip)
		}
	}
	for _, ip := range named {
		vsw.used6[ip] = true
	}
	got = append(slices.Clone(named), vsw.allocate6(count)...)
	e.ipv6s = append(e.ipv6s, got...)
	if clientToken != "" {
		c.ipv6Tokens[tokenKey] = slices.Clone(got)
	}
	return got, true, nil
}

// unassignIPv6s removes IPv6 addresses from the ENI; every one must be on
// it, or nothing is removed.
func (c *Cloud) unassignIPv6s(eniID string, ips []netip.Addr) *apiError {
	c.mu.Lock()
	e, aerr := c.liveENILocked(eniID, "UnassignIpv6Addresses")
	if aerr != nil {
		c.mu.Unlock()
		return aerr
	}
	for _, ip := range ips {
		if !slices.Contains(e.ipv6s, ip) {
			c.mu.Unlock()
			return newAPIError(http.StatusForbidden, CodeIPUnassigned,
				"The specified IP %s is not assigned to ENI %s.", ip, e.id)
		}
	}
	vsw := c.vsws[e.vswID]
	vsw.release6(ips...)
	e.ipv6s = slices.DeleteFunc(e.ipv6s, func(ip netip.Addr) bool { return slices.Contains(ips, ip) })
	c.addressesChangedUnlock(e, vsw)
	return nil
}

// IPv6 prefix delegation: an ENI holds /80s of its vSwitch's /64 beside
// its IPv6 addresses (AssignIpv6Addresses with Ipv6PrefixCount or
// Ipv6Prefix.N, CreateNetworkInterface with Ipv6PrefixCount). Each /80
// takes one slot of the ENI's IPv6 quota (EniIpv6AddressQuantity), as a
// /28 takes one IPv4 slot: an inference, no public document says how
// Alibaba counts them. The VPC routes every address of a /80 to its ENI.

// assignPrefixes6 adds count new /80s, or the named ones, to the ENI.
func (c *Cloud) assignPrefixes6(eniID string, count int, named []netip.Prefix, clientToken string) ([]netip.Prefix, *apiError) {
	c.mu.Lock()
	e, tokenKey, prev, replayed, aerr := startAssignLocked(c, c.prefix6Tokens, eniID, clientToken, "AssignIpv6Addresses")
	if aerr != nil || replayed {
		c.mu.Unlock()
		return prev, aerr
	}
	vsw := c.vsws[e.vswID]
	if !vsw.ipv6On() {
		c.mu.Unlock()
		return nil, errIPv6Off(vsw.ID)
	}
	limit, aerr := c.ipv6LimitLocked(e)
	if aerr != nil {
		c.mu.Unlock()
		return nil, aerr
	}
	n := count + len(named)
	if e.slots6()+n > limit {
		c.mu.Unlock()
		return nil, newAPIError(http.StatusForbidden, CodeIPv6CountExceeded,
			"ENI %s holds %d IPv6 addresses and prefixes; %d more prefixes exceed its quota of %d.", e.id, e.slots6(), n, limit)
	}
	for i, p := range named {
		switch {
		case !vsw.IPv6CIDR.Contains(p.Addr()):
			c.mu.Unlock()
			return nil, newAPIError(http.StatusBadRequest, CodeInvalidIPAddress,
				"The specified IPv6 prefix %s is not inside VSwitch %s (%s).", p, vsw.ID, vsw.IPv6CIDR)
		case slices.Contains(named[:i], p):
			c.mu.Unlock()
			return nil, newAPIError(http.StatusBadRequest, CodeIPRepeated,
				"The specified IPv6 prefix %s is given more than once.", p)
		case !vsw.prefix6Free(p):
			c.mu.Unlock()
			return nil, newAPIError(http.StatusForbidden, CodeIPAssigned,
				"The specified IPv6 prefix %s is not free: it is delegated, reserved or holds an assigned address.", p)
		}
	}
	for _, p := range named {
		vsw.prefixes6[p] = true
	}
	got := slices.Clone(named)
	more, ok := vsw.allocatePrefixes6(count)
	if !ok {
		vsw.releasePrefixes6(got...)
		c.mu.Unlock()
		return nil, newAPIError(http.StatusForbidden, CodeVSwitchIPNotEnough,
			"The specified VSwitch %s has not enough IPv6 space: fewer than %d free /%d prefixes.", vsw.ID, count, Prefix6Bits)
	}
	got = append(got, more...)
	e.prefixes6 = append(e.prefixes6, got...)
	if clientToken != "" {
		c.prefix6Tokens[tokenKey] = slices.Clone(got)
	}
	c.addressesChangedUnlock(e, vsw)
	return got, nil
}

// unassignPrefixes6 removes delegated /80s from the ENI; every one must be
// on it, or nothing is removed.
func (c *Cloud) unassignPrefixes6(eniID string, ps []netip.Prefix) *apiError {
	c.mu.Lock()
	e, aerr := c.liveENILocked(eniID, "UnassignIpv6Addresses")
	if aerr != nil {
		c.mu.Unlock()
		return aerr
	}
	for _, p := range ps {
		if !slices.Contains(e.prefixes6, p) {
			c.mu.Unlock()
			return newAPIError(http.StatusForbidden, CodeIPUnassigned,
				"The specified IPv6 prefix %s is not assigned to ENI %s.", p, e.id)
		}
	}
	vsw := c.vsws[e.vswID]
	vsw.releasePrefixes6(ps...)
	e.prefixes6 = slices.DeleteFunc(e.prefixes6, func(p netip.Prefix) bool { return slices.Contains(ps, p) })
	c.addressesChangedUnlock(e, vsw)
	return nil
}
