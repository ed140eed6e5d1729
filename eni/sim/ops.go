package sim

import (
	"net/http"
	"net/netip"
	"slices"
	"time"
)

// The model operations behind the ENI actions. Each takes c.mu for the
// model change, queues the Fabric calls the change implies, releases c.mu
// and only then runs them.

// createRequest is CreateNetworkInterface's input.
type createRequest struct {
	vswID           string
	sgs             []string
	typ             string
	name            string
	description     string
	resourceGroupID string
	tags            []tag
	clientToken     string
	secondary       int        // SecondaryPrivateIpAddressCount
	primaryIP       netip.Addr // PrimaryIpAddress, optional
	prefixes        int        // Ipv4PrefixCount
	ipv6s           int        // Ipv6AddressCount
	prefixes6       int        // Ipv6PrefixCount
	sourceDestCheck bool
}

func (c *Cloud) createENI(r createRequest) (*eni, *apiError) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.clientToken != "" {
		if prev, ok := c.createTokens[r.clientToken]; ok {
			// The cloud answers a retried create with the first answer.
			return prev.clone(), nil
		}
	}
	vsw, ok := c.vsws[r.vswID]
	if !ok {
		return nil, errVSwitchNotFound(r.vswID)
	}
	if aerr := c.checkENIGroupsLocked("", r.sgs); aerr != nil {
		return nil, aerr
	}
	if (r.ipv6s > 0 || r.prefixes6 > 0) && !vsw.ipv6On() {
		return nil, errIPv6Off(vsw.ID)
	}
	if vsw.free() < 1+r.secondary+r.prefixes*prefixSize {
		return nil, c.ipNotEnoughLocked(vsw, 1+r.secondary+r.prefixes*prefixSize)
	}
	var ips []netip.Addr
	if r.primaryIP.IsValid() {
		if aerr := takeAddr(vsw, r.primaryIP); aerr != nil {
			return nil, aerr
		}
		ips = append(ips, r.primaryIP)
	}
	// free() covered 1+secondary above, and takeAddr took at most one.
	more, _ := vsw.allocate(1 + r.secondary - len(ips))
	ips = append(ips, more...)
	prefixes, ok := vsw.allocatePrefixes(r.prefixes)
	if !ok {
		vsw.release(ips...)
		return nil, newAPIError(http.StatusForbidden, CodeVSwitchIPNotEnough,
			"The specified VSwitch %s has not enough IpAddress: %d addresses are free but fewer than %d aligned /%d prefixes.",
			vsw.ID, vsw.free(), r.prefixes, PrefixBits)
	}
	prefixes6, ok := vsw.allocatePrefixes6(r.prefixes6)
	if !ok {
		vsw.release(ips...)
		vsw.releasePrefixes(prefixes...)
		return nil, newAPIError(http.StatusForbidden, CodeVSwitchIPNotEnough,
			"The specified VSwitch %s has not enough IPv6 space: fewer than %d free /%d prefixes.", vsw.ID, r.prefixes6, Prefix6Bits)
	}
	ipv6s := vsw.allocate6(r.ipv6s)

	now := time.Now()
	e := c.newENILocked(r.typ, vsw, r.sgs, ips, now)
	e.name, e.description, e.resourceGroupID = r.name, r.description, r.resourceGroupID
	e.tags = r.tags
	e.sourceDestCheck = r.sourceDestCheck
	e.prefixes, e.ipv6s, e.prefixes6 = prefixes, ipv6s, prefixes6
	c.hist.recordENI(now, e.id, e)
	c.hist.recordFree(now, vsw.ID, vsw.free())
	if r.clientToken != "" {
		c.createTokens[r.clientToken] = e.clone()
	}
	return e.clone(), nil
}

// takeAddr reserves one named address of the vSwitch.
func takeAddr(vsw *vswitch, ip netip.Addr) *apiError {
	if !vsw.usable(ip) {
		return newAPIError(http.StatusForbidden, CodeVSwitchIPInvalid,
			"The specified private IP %s is not a usable address of VSwitch %s (%s).", ip, vsw.ID, vsw.CIDR)
	}
	if vsw.used[ip] {
		return newAPIError(http.StatusForbidden, CodeIPAssigned, "The specified IP %s is already assigned.", ip)
	}
	vsw.used[ip] = true
	return nil
}

func (c *Cloud) attachENI(eniID, instanceID, trunkID string) *apiError {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.enis[eniID]
	if !ok {
		return errENINotFound(eniID)
	}
	inst, ok := c.instances[instanceID]
	if !ok {
		return errInstanceNotFound(instanceID)
	}
	if e.status != statusAvailable {
		return errENIState(e.id, e.status, "AttachNetworkInterface")
	}
	if e.zoneID != inst.ZoneID {
		return newAPIError(http.StatusForbidden, CodeZoneMismatch,
			"ENI %s is in zone %s but instance %s is in zone %s.", e.id, e.zoneID, inst.ID, inst.ZoneID)
	}
	if trunkID != "" {
		return c.attachMemberLocked(e, inst, trunkID)
	}
	if e.typ == eniTypeTrunk && c.trunkOfLocked(inst.ID) != nil {
		return newAPIError(http.StatusForbidden, CodeInvalidTrunkENIStatus,
			"Instance %s already has trunk ENI %s; an instance has one trunk.", inst.ID, c.trunkOfLocked(inst.ID).id)
	}
	if e.typ == eniTypeTrunk && !inst.typ.TrunkSupported {
		return newAPIError(http.StatusForbidden, CodeTrunkNotSupported,
			"Instance type %s does not support ENI trunking.", inst.typ.ID)
	}
	if n := c.countENIsLocked(inst.ID); n >= inst.typ.ENIs {
		return newAPIError(http.StatusForbidden, CodeENIPerInstanceExceeded,
			"The number of ENI exceeds the limit for the type of instance (%s allows %d).", inst.typ.ID, inst.typ.ENIs)
	}
	if e.slots() > inst.typ.IPv4PerENI {
		return newAPIError(http.StatusForbidden, CodePrivateIPQuotaExceeded,
			"ENI %s has %d private IPs and prefixes but instance type %s allows %d per ENI.", e.id, e.slots(), inst.typ.ID, inst.typ.IPv4PerENI)
	}
	if e.slots6() > 0 && inst.typ.IPv6PerENI == 0 {
		return newAPIError(http.StatusForbidden, CodeIPv6NotSupported,
			"ENI %s has IPv6 addresses but instance type %s does not support IPv6.", e.id, inst.typ.ID)
	}
	if e.slots6() > inst.typ.IPv6PerENI {
		return newAPIError(http.StatusForbidden, CodeIPv6CountExceeded,
			"ENI %s has %d IPv6 addresses and prefixes but instance type %s allows %d per ENI.", e.id, e.slots6(), inst.typ.ID, inst.typ.IPv6PerENI)
	}
	e.status = statusAttaching
	e.instanceID = inst.ID
	now := time.Now()
	c.hist.recordENI(now, e.id, e)
	c.startAttachLocked(e, now)
	return nil
}

// countENIsLocked counts the ENIs that occupy a slot of the instance:
// members ride on the trunk's.
func (c *Cloud) countENIsLocked(instanceID string) int {
	n := 0
	for _, e := range c.enis {
		if e.instanceID == instanceID && e.trunkID == "" {
			n++
		}
	}
	return n
}

func (c *Cloud) completeAttach(eniID string) {
	c.mu.Lock()
	e, ok := c.enis[eniID]
	if c.closed || !ok || e.status != statusAttaching {
		c.mu.Unlock()
		return
	}
	if e.trunkID != "" {
		// A member's VLAN ID was taken at attach start, and it never
		// appears as a NIC of the node: its trunk's link carries it.
		e.status = statusInUse
		e.timer = nil
		c.hist.recordENI(time.Now(), e.id, e)
		op := c.enqueueLocked("attach member eni "+e.id, c.attachMemberCall(e))
		c.mu.Unlock()
		_ = c.flush(op)
		return
	}
	inst := c.instances[e.instanceID]
	used := map[int]bool{}
	for _, o := range c.enis {
		if o.instanceID == inst.ID && o.trunkID == "" && (o.status == statusInUse || o.status == statusDetaching) {
			used[o.deviceIndex] = true
		}
	}
	e.deviceIndex = 0
	for used[e.deviceIndex] {
		e.deviceIndex++
	}
	e.status = statusInUse
	e.timer = nil
	c.hist.recordENI(time.Now(), e.id, e)
	op := c.enqueueLocked("attach eni "+e.id, c.attachCall(e, inst))
	c.mu.Unlock()
	_ = c.flush(op) // logged and counted by flush; the cloud's state stands
}

func (c *Cloud) detachENI(eniID, instanceID, trunkID string) *apiError {
	c.mu.Lock()
	e, ok := c.enis[eniID]
	if !ok {
		c.mu.Unlock()
		return errENINotFound(eniID)
	}
	if _, ok := c.instances[instanceID]; !ok {
		c.mu.Unlock()
		return errInstanceNotFound(instanceID)
	}
	if e.typ == eniTypePrimary {
		c.mu.Unlock()
		return newAPIError(http.StatusBadRequest, CodeDetachPrimaryENI, "ENI %s is a primary ENI and cannot be detached.", e.id)
	}
	if e.status != statusInUse || e.instanceID != instanceID {
		c.mu.Unlock()
		return errENIState(e.id, e.status+" on "+orNone(e.instanceID), "DetachNetworkInterface from "+instanceID)
	}
	if aerr := c.checkTrunkDetachLocked(e, trunkID); aerr != nil {
		c.mu.Unlock()
		return aerr
	}
	e.status = statusDetaching
	c.hist.recordENI(time.Now(), e.id, e)
	if e.trunkID != "" {
		// As for an ENI: the VPC stops carrying the member when its detach
		// starts, so its VLAN ID is unused by the time it is free again.
		op := c.enqueueLocked("detach member eni "+e.id, detachMemberCall(e.instanceID, e.trunkID, e.id))
		c.scheduleDetachLocked(e)
		c.mu.Unlock()
		_ = c.flush(op)
		return nil
	}
	// The link leaves the node when the detach starts, so by the time the
	// API says Available nothing in the node uses it.
	op := c.enqueueLocked("detach eni "+e.id, detachCall(e.instanceID, e.id))
	c.scheduleDetachLocked(e)
	c.mu.Unlock()
	_ = c.flush(op)
	return nil
}

func (c *Cloud) scheduleDetachLocked(e *eni) {
	if !c.closed {
		id := e.id
		e.timer = time.AfterFunc(c.cfg.DetachDelay, func() { c.completeDetach(id) })
	}
}

func orNone(s string) string {
	if s == "" {
		return "no instance"
	}
	return s
}

func (c *Cloud) completeDetach(eniID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.enis[eniID]
	if c.closed || !ok || e.status != statusDetaching {
		return
	}
	e.status = statusAvailable
	e.instanceID = ""
	e.deviceIndex = 0
	e.trunkID = "" // its VLAN ID is free for the trunk's next member
	e.timer = nil
	c.hist.recordENI(time.Now(), e.id, e)
}

func (c *Cloud) deleteENI(eniID string) *apiError {
	c.mu.Lock()
	e, ok := c.enis[eniID]
	if !ok {
		c.mu.Unlock()
		return errENINotFound(eniID)
	}
	if e.status != statusAvailable {
		c.mu.Unlock()
		return errENIState(e.id, e.status, "DeleteNetworkInterface")
	}
	c.forgetENILocked(e, time.Now())
	// Its addresses leave its groups: another ENI may get them next.
	c.securityChangedUnlock("delete eni " + e.id)
	return nil
}

// forgetENILocked removes an ENI from the model: its addresses go back to
// its vSwitch, and Describe's history records both.
func (c *Cloud) forgetENILocked(e *eni, now time.Time) {
	vsw := c.vsws[e.vswID]
	vsw.release(e.routed()...)
	vsw.release6(e.ipv6s...)
	vsw.releasePrefixes6(e.prefixes6...)
	delete(c.enis, e.id)
	delete(c.macs, e.mac.String())
	c.hist.recordENI(now, e.id, nil)
	c.hist.recordFree(now, vsw.ID, vsw.free())
}

// ipLimitLocked is how many private IPv4s the ENI may hold: its instance
// type's quota once it belongs to an instance, the cloud-wide ceiling before.
func (c *Cloud) ipLimitLocked(e *eni) int {
	if inst, ok := c.instances[e.instanceID]; ok {
		return inst.typ.IPv4PerENI
	}
	return maxIPsPerENI
}

// liveENILocked returns the ENI an address action (action, for the
// error) changes: it must exist and be Available or InUse.
func (c *Cloud) liveENILocked(eniID, action string) (*eni, *apiError) {
	e, ok := c.enis[eniID]
	if !ok {
		return nil, errENINotFound(eniID)
	}
	if !e.live() {
		return nil, errENIState(e.id, e.status, action)
	}
	return e, nil
}

// live reports that the ENI's addresses may change: it is Available or InUse.
func (e *eni) live() bool { return e.status == statusAvailable || e.status == statusInUse }

// startAssignLocked begins an assign action on an ENI: it must exist; a
// request repeating a ClientToken this ENI saw gets the first answer again
// (replayed, from tokens, whatever the ENI's state now); otherwise the ENI
// must be live. tokenKey is where the caller records its answer.
func startAssignLocked[T any](c *Cloud, tokens map[string][]T, eniID, clientToken, action string) (e *eni, tokenKey string, prev []T, replayed bool, _ *apiError) {
	e, ok := c.enis[eniID]
	if !ok {
		return nil, "", nil, false, errENINotFound(eniID)
	}
	tokenKey = eniID + "/" + clientToken
	if clientToken != "" {
		if prev, ok := tokens[tokenKey]; ok {
			return e, tokenKey, slices.Clone(prev), true, nil
		}
	}
	if !e.live() {
		return nil, "", nil, false, errENIState(e.id, e.status, action)
	}
	return e, tokenKey, nil, false, nil
}

// assignIPs adds count new addresses, or the named ones, to the ENI.
func (c *Cloud) assignIPs(eniID string, count int, named []netip.Addr, clientToken string) ([]netip.Addr, *apiError) {
	c.mu.Lock()
	e, tokenKey, prev, replayed, aerr := startAssignLocked(c, c.assignTokens, eniID, clientToken, "AssignPrivateIpAddresses")
	if aerr != nil || replayed {
		c.mu.Unlock()
		return prev, aerr
	}
	n := count + len(named)
	if limit := c.ipLimitLocked(e); e.slots()+n > limit {
		c.mu.Unlock()
		return nil, newAPIError(http.StatusForbidden, CodePrivateIPQuotaExceeded,
			"ENI %s holds %d private IPs and prefixes; %d more exceed its quota of %d.", e.id, e.slots(), n, limit)
	}
	vsw := c.vsws[e.vswID]
	if vsw.free() < n {
		aerr := c.ipNotEnoughLocked(vsw, n)
		c.mu.Unlock()
		return nil, aerr
	}
	var got []netip.Addr
	for _, ip := range named {
		if aerr := takeAddr(vsw, ip); aerr != nil {
			vsw.release(got...)
			c.mu.Unlock()
			return nil, aerr
		}
		got = append(got, ip)
	}
	more, _ := vsw.allocate(count) // free() was checked above
	got = append(got, more...)
	e.ips = append(e.ips, got...)
	if clientToken != "" {
		c.assignTokens[tokenKey] = slices.Clone(got)
	}
	c.addressesChangedUnlock(e, vsw)
	return got, nil
}

// addressesChangedUnlock records that e's addresses on vsw changed, hands
// a live ENI's new address set to the fabric, and unlocks c.mu; it returns
// once the fabric has it (or failed: the fabric's own log says so).
func (c *Cloud) addressesChangedUnlock(e *eni, vsw *vswitch) {
	now := time.Now()
	c.hist.recordENI(now, e.id, e)
	c.hist.recordFree(now, vsw.ID, vsw.free())
	var op *fabricOp
	if e.status == statusInUse { // a member's go to its trunk's link
		op = c.enqueueLocked("set addresses of eni "+e.id, addressesCall(e.instanceID, e.id, e.fabricAddrs(), e.prefixes6))
	}
	c.mu.Unlock()
	_ = c.flush(op)
}

func (c *Cloud) unassignIPs(eniID string, ips []netip.Addr) *apiError {
	c.mu.Lock()
	e, aerr := c.liveENILocked(eniID, "UnassignPrivateIpAddresses")
	if aerr != nil {
		c.mu.Unlock()
		return aerr
	}
	for _, ip := range ips {
		i := slices.Index(e.ips, ip)
		switch {
		case i == 0:
			c.mu.Unlock()
			return newAPIError(http.StatusBadRequest, CodeInvalidParameter,
				"%s is the primary private IP of ENI %s and cannot be unassigned.", ip, e.id)
		case i < 0:
			c.mu.Unlock()
			return newAPIError(http.StatusForbidden, CodeIPUnassigned,
				"The specified IP %s is not assigned to ENI %s.", ip, e.id)
		}
	}
	vsw := c.vsws[e.vswID]
	vsw.release(ips...)
	e.ips = slices.DeleteFunc(e.ips, func(ip netip.Addr) bool { return slices.Contains(ips, ip) })
	c.addressesChangedUnlock(e, vsw)
	return nil
}
