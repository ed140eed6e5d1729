package sim

import (
	"net/http"
	"slices"
	"time"
)

// Trunking, as the ECS API shows it: an instance whose type has
// EniTrunkSupported may attach one trunk ENI (created with
// InstanceType=Trunk; it takes one of the instance's EniQuantity slots),
// and through it up to EniTotalQuantity − EniQuantity member ENIs: plain
// Secondary ENIs attached with TrunkNetworkInstanceId. Describe then shows
// a member as Type Member with Attachment.TrunkNetworkInterfaceId, and its
// Attachment.DeviceIndex is its VLAN ID on the trunk: unique among the
// trunk's members, the lowest free one, free again once a member's detach
// completes. The trunk's Attachment.MemberNetworkInterfaceIds lists them.
//
// A member never appears as a NIC of the node (no link, no metadata
// entry): its traffic rides the trunk tagged with its VLAN ID. The Fabric
// learns a member when its attach completes (AttachMember, with its VLAN
// ID and addresses), its address changes like any ENI's
// (SetENIAddresses), and forgets it when its detach starts
// (DetachMember); the security policy names each member's trunk and VLAN
// ID so the VPC judges member traffic by the member's own groups.

// maxVLANID is the largest 802.1Q VLAN ID (4095 is reserved).
const maxVLANID = 4094

// trunkOfLocked returns the instance's trunk ENI (attaching, attached or
// detaching), or nil.
func (c *Cloud) trunkOfLocked(instanceID string) *eni {
	for _, e := range c.enis {
		if e.instanceID == instanceID && e.typ == eniTypeTrunk {
			return e
		}
	}
	return nil
}

// membersLocked lists the IDs of the trunk's members, in attach order.
func (c *Cloud) membersLocked(trunkID string) []string {
	var ms []*eni
	for _, e := range c.enis {
		if e.trunkID == trunkID {
			ms = append(ms, e)
		}
	}
	slices.SortFunc(ms, func(a, b *eni) int { return a.deviceIndex - b.deviceIndex })
	out := []string{}
	for _, e := range ms {
		out = append(out, e.id)
	}
	return out
}

// attachMemberLocked starts attaching e to inst through trunk trunkID.
// The caller checked e's status and zone.
func (c *Cloud) attachMemberLocked(e *eni, inst *instance, trunkID string) *apiError {
	if !inst.typ.TrunkSupported || inst.typ.MemberENIs <= 0 {
		return newAPIError(http.StatusForbidden, CodeTrunkNotSupported,
			"Instance type %s does not support ENI trunking.", inst.typ.ID)
	}
	trunk, ok := c.enis[trunkID]
	if !ok {
		return errENINotFound(trunkID)
	}
	if trunk.typ != eniTypeTrunk || trunk.status != statusInUse || trunk.instanceID != inst.ID {
		return newAPIError(http.StatusForbidden, CodeInvalidTrunkENIStatus,
			"ENI %s is not a trunk ENI in use by instance %s (type %s, %s on %s).", trunk.id, inst.ID, trunk.typ, trunk.status, orNone(trunk.instanceID))
	}
	if e.typ != eniTypeSecondary {
		return newAPIError(http.StatusForbidden, CodeENITypeNotSupportTrunking,
			"ENI %s is of type %s; only a Secondary ENI can be a trunk member.", e.id, e.typ)
	}
	used := map[int]bool{}
	for _, o := range c.enis {
		if o.trunkID == trunk.id {
			used[o.deviceIndex] = true
		}
	}
	if len(used) >= inst.typ.MemberENIs {
		return newAPIError(http.StatusForbidden, CodeENIPerInstanceExceeded,
			"The number of member ENIs exceeds the limit for the type of instance (%s allows %d).", inst.typ.ID, inst.typ.MemberENIs)
	}
	vlan := 1
	for used[vlan] && vlan < maxVLANID {
		vlan++
	}
	e.status = statusAttaching
	e.instanceID = inst.ID
	e.trunkID = trunk.id
	e.deviceIndex = vlan
	now := time.Now()
	c.hist.recordENI(now, e.id, e)
	c.startAttachLocked(e, now)
	return nil
}

// checkTrunkDetachLocked refuses a detach that names the wrong trunk for
// a member, or that would leave a trunk's members behind.
func (c *Cloud) checkTrunkDetachLocked(e *eni, trunkID string) *apiError {
	switch {
	case e.trunkID != "" && trunkID != e.trunkID:
		return newAPIError(http.StatusBadRequest, CodeENINotBelongTrunk,
			"ENI %s is a member of trunk %s, not of %q.", e.id, e.trunkID, trunkID)
	case e.trunkID == "" && trunkID != "":
		return newAPIError(http.StatusBadRequest, CodeENINotBelongTrunk,
			"ENI %s is not a member of trunk %s.", e.id, trunkID)
	case e.typ == eniTypeTrunk && len(c.membersLocked(e.id)) > 0:
		return newAPIError(http.StatusForbidden, CodeHasMemberENIAttached,
			"Trunk ENI %s still has member ENIs attached: %v.", e.id, c.membersLocked(e.id))
	}
	return nil
}
