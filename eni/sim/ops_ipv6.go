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
	if len(e.ipv6s)+n > limit {
		return nil, false, newAPIError(http.StatusForbidden, CodeIPv6CountExceeded,
			"ENI %s holds %d IPv6 addresses; %d more exceed its quota of %d.", e.id, len(e.ipv6s), n, limit)
	}
	for i, ip := range named {
		switch {
		case !vsw.usable6(ip):
			return nil, false, newAPIError(http.StatusBadRequest, CodeInvalidIPAddress,
				"The specified IPv6 address %s is not a usable address of VSwitch %s (%s).", ip, vsw.ID, vsw.IPv6CIDR)
		case slices.Contains(named[:i], ip):
			return nil, false, newAPIError(http.StatusBadRequest, CodeIPRepeated,
				"The specified IPv6 address %s is given more than once.", ip)
		case vsw.used6[ip]:
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
