package sim

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
)

// fabricOp is one Fabric call, queued under c.mu in the order the model
// changed and run later without it.
type fabricOp struct {
	desc string
	fn   func(Fabric) error
	done chan error // buffered; receives the call's result
	// then is the security policy call queued right after this one (nil
	// without a SecurityGroupFabric): flush waits for it too, so an
	// action that changed addresses answers only once the VPC's groups
	// know them. Its error is the policy's, logged, counted and retried
	// (retrySecurityLocked), not this call's.
	then *fabricOp
}

// enqueueLocked queues fn; it returns nil when there is no Fabric.
func (c *Cloud) enqueueLocked(desc string, fn func(Fabric) error) *fabricOp {
	if c.cfg.Fabric == nil {
		return nil
	}
	op := &fabricOp{desc: desc, fn: fn, done: make(chan error, 1)}
	c.pending = append(c.pending, op)
	// Every fabric change (attach, detach, addresses) can change security
	// group membership: the policy follows it in the same queue.
	op.then = c.enqueueSecurityLocked("security policy after " + desc)
	return op
}

// flush runs every queued Fabric call in order and returns the first error
// among ops (nil ops are skipped). Whoever holds fabricMu runs the whole
// queue, so when flush returns, ops have run: either here or by an earlier
// caller that took them off the queue before we got fabricMu.
func (c *Cloud) flush(ops ...*fabricOp) error {
	if c.cfg.Fabric == nil {
		return nil
	}
	c.fabricMu.Lock()
	c.mu.Lock()
	batch := c.pending
	c.pending = nil
	c.mu.Unlock()
	for _, op := range batch {
		err := op.fn(c.cfg.Fabric)
		if err != nil {
			c.log.Error("fabric call failed", "call", op.desc, "err", err)
			c.mu.Lock()
			c.fabricErrors++
			c.lastFabric = fmt.Sprintf("%s: %v", op.desc, err)
			c.mu.Unlock()
		}
		op.done <- err
	}
	c.fabricMu.Unlock()

	var first error
	for _, op := range ops {
		if op == nil {
			continue
		}
		if err := <-op.done; err != nil && first == nil {
			first = fmt.Errorf("%s: %w", op.desc, err)
		}
		if op.then != nil {
			<-op.then.done
		}
	}
	return first
}

// attachCall captures what Fabric.AttachENI needs now, while c.mu is held,
// so the call later does not read the model.
func (c *Cloud) attachCall(e *eni, inst *instance) func(Fabric) error {
	vsw := c.vsws[e.vswID]
	link := ENILink{
		InstanceID:   inst.ID,
		ENIID:        e.id,
		MAC:          append(net.HardwareAddr(nil), e.mac...),
		Primary:      e.typ == eniTypePrimary,
		Trunk:        e.typ == eniTypeTrunk,
		DeviceIndex:  e.deviceIndex,
		VSwitchCIDR:  vsw.CIDR,
		Gateway:      vsw.gateway,
		IPs:          e.fabricAddrs(),
		IPv6Prefixes: slices.Clone(e.prefixes6),
	}
	if vsw.ipv6On() {
		link.IPv6CIDR, link.Gateway6 = vsw.IPv6CIDR, vsw.gateway6()
	}
	return func(f Fabric) error { return f.AttachENI(link) }
}

func detachCall(instanceID, eniID string) func(Fabric) error {
	return func(f Fabric) error { return f.DetachENI(instanceID, eniID) }
}

// addressesCall sets an ENI's addresses, then (a Prefix6Fabric) its /80s.
func addressesCall(instanceID, eniID string, ips []netip.Addr, prefixes6 []netip.Prefix) func(Fabric) error {
	ips, prefixes6 = slices.Clone(ips), slices.Clone(prefixes6)
	return func(f Fabric) error {
		if err := f.SetENIAddresses(instanceID, eniID, ips); err != nil {
			return err
		}
		if pf, ok := f.(Prefix6Fabric); ok {
			return pf.SetENIIPv6Prefixes(instanceID, eniID, prefixes6)
		}
		return nil
	}
}

// attachMemberCall captures what Fabric.AttachMember needs now, while c.mu
// is held.
func (c *Cloud) attachMemberCall(e *eni) func(Fabric) error {
	vsw := c.vsws[e.vswID]
	m := MemberLink{
		InstanceID:  e.instanceID,
		TrunkID:     e.trunkID,
		ENIID:       e.id,
		VLAN:        e.deviceIndex,
		VSwitchCIDR: vsw.CIDR,
		Gateway:     vsw.gateway,
		IPs:         e.fabricAddrs(),
	}
	return func(f Fabric) error { return f.AttachMember(m) }
}

func detachMemberCall(instanceID, trunkID, memberID string) func(Fabric) error {
	return func(f Fabric) error { return f.DetachMember(instanceID, trunkID, memberID) }
}
