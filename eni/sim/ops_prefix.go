package sim

import (
	"net/http"
	"net/netip"
	"slices"
)

// Prefix delegation: an ENI holds /28s beside its private IPs. Each prefix
// takes one slot of the ENI's private IPv4 quota (EniPrivateIpAddressQuantity)
// and 16 addresses of its vSwitch, and the VPC routes every one of those
// addresses to the ENI (eni.routed).

// assignPrefixes adds count new /28s, or the named ones, to the ENI.
func (c *Cloud) assignPrefixes(eniID string, count int, named []netip.Prefix, clientToken string) ([]netip.Prefix, *apiError) {
	c.mu.Lock()
	e, tokenKey, prev, replayed, aerr := startAssignLocked(c, c.prefixTokens, eniID, clientToken, "AssignPrivateIpAddresses")
	if aerr != nil || replayed {
		c.mu.Unlock()
		return prev, aerr
	}
	n := count + len(named)
	if limit := c.ipLimitLocked(e); e.slots()+n > limit {
		c.mu.Unlock()
		return nil, newAPIError(http.StatusForbidden, CodeIPv4CountExceeded,
			"ENI %s holds %d private IPs and prefixes; %d more prefixes exceed its quota of %d.", e.id, e.slots(), n, limit)
	}
	vsw := c.vsws[e.vswID]
	for i, p := range named {
		if !vsw.CIDR.Contains(p.Addr()) {
			c.mu.Unlock()
			return nil, newAPIError(http.StatusForbidden, CodeVSwitchIPInvalid,
				"The specified prefix %s is not inside VSwitch %s (%s).", p, vsw.ID, vsw.CIDR)
		}
		if !vsw.prefixFree(p) || slices.Contains(named[:i], p) {
			c.mu.Unlock()
			return nil, newAPIError(http.StatusForbidden, CodeIPAssigned,
				"The specified prefix %s is not free: an address of it is reserved or already assigned.", p)
		}
	}
	if vsw.free() < n*prefixSize {
		aerr := c.ipNotEnoughLocked(vsw, n*prefixSize)
		c.mu.Unlock()
		return nil, aerr
	}
	for _, p := range named {
		vsw.takePrefix(p)
	}
	got := slices.Clone(named)
	more, ok := vsw.allocatePrefixes(count)
	if !ok {
		vsw.releasePrefixes(got...)
		c.mu.Unlock()
		return nil, newAPIError(http.StatusForbidden, CodeVSwitchIPNotEnough,
			"The specified VSwitch %s has not enough IpAddress: %d addresses are free but fewer than %d aligned /%d prefixes.",
			vsw.ID, vsw.free(), count, PrefixBits)
	}
	got = append(got, more...)
	e.prefixes = append(e.prefixes, got...)
	if clientToken != "" {
		c.prefixTokens[tokenKey] = slices.Clone(got)
	}
	c.addressesChangedUnlock(e, vsw)
	return got, nil
}

// unassignPrefixes removes delegated prefixes from the ENI; every one must
// be on it, or nothing is removed.
func (c *Cloud) unassignPrefixes(eniID string, ps []netip.Prefix) *apiError {
	c.mu.Lock()
	e, aerr := c.liveENILocked(eniID, "UnassignPrivateIpAddresses")
	if aerr != nil {
		c.mu.Unlock()
		return aerr
	}
	for _, p := range ps {
		if !slices.Contains(e.prefixes, p) {
			c.mu.Unlock()
			return newAPIError(http.StatusForbidden, CodeIPUnassigned,
				"The specified prefix %s is not assigned to ENI %s.", p, e.id)
		}
	}
	vsw := c.vsws[e.vswID]
	vsw.releasePrefixes(ps...)
	e.prefixes = slices.DeleteFunc(e.prefixes, func(p netip.Prefix) bool { return slices.Contains(ps, p) })
	c.addressesChangedUnlock(e, vsw)
	return nil
}
