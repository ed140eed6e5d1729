package audit

import (
	"fmt"

	"github.com/veni-cni/veni/ebpf/datapath"
	"github.com/veni-cni/veni/eni"
	"github.com/veni-cni/veni/store"
)

// KindMember: a trunk member's records disagree with each other, with its
// pod's tag on the trunk, or with the cloud.
const KindMember = "member"

// checkMembers checks what the store says about trunk members: each
// rides a trunk of the store with a VLAN ID no other member of that trunk
// has, holds its primary address and nothing else, and is held for a pod
// exactly while an allocation holds that address (or, a fixed member,
// kept for its pod once the pod went).
func (r *Report) checkMembers(enis []store.ENI, ips []store.IP, allocs []store.Allocation) {
	byID := make(map[string]store.ENI, len(enis))
	for _, e := range enis {
		byID[e.ID] = e
	}
	vlans := make(map[string]map[int]string) // trunk → VLAN ID → member
	for _, m := range enis {
		if m.Kind != store.ENIMember {
			continue
		}
		obj := "eni/" + m.ID
		if t, ok := byID[m.TrunkID]; !ok || t.Kind != store.ENITrunk {
			r.add(KindMember, obj, fmt.Sprintf("member of %s, which is no trunk in the store", m.TrunkID))
		}
		if vlans[m.TrunkID] == nil {
			vlans[m.TrunkID] = make(map[int]string)
		}
		if other := vlans[m.TrunkID][m.VLANID]; other != "" {
			r.add(KindMember, obj, fmt.Sprintf("vlan %d on trunk %s is also %s's", m.VLANID, m.TrunkID, other))
		}
		vlans[m.TrunkID][m.VLANID] = m.ID
	}
	for _, ip := range ips {
		if m, ok := byID[ip.ENIID]; ok && m.Kind == store.ENIMember && ip.Addr != m.PrimaryIP {
			r.add(KindMember, "ip/"+ip.Addr.String(), fmt.Sprintf("on member %s, whose only address is %s", m.ID, m.PrimaryIP))
		}
	}
	held := make(map[string]store.Allocation)
	for _, a := range allocs {
		if m, ok := byID[a.ENIID]; ok && m.Kind == store.ENIMember {
			held[m.ID] = a
			if pod := a.PodNamespace + "/" + a.PodName; m.Pod != pod {
				r.add(KindMember, "allocation/"+string(a.Key), fmt.Sprintf("holds member %s, which the store gives to %q", m.ID, m.Pod))
			}
		}
	}
	for _, m := range enis {
		// A fixed member whose pod went is kept for it without an allocation.
		if _, ok := held[m.ID]; m.Kind == store.ENIMember && m.Pod != "" && !m.Kept() && !ok {
			r.add(KindMember, "eni/"+m.ID, fmt.Sprintf("held for %s, but no allocation holds %s", m.Pod, m.PrimaryIP))
		}
	}
}

// memberTrunks maps each member to its trunk, for the link checks: a
// member has no link of its own; its pod is plumbed on the trunk's.
func memberTrunks(enis []store.ENI) map[string]store.ENI {
	out := make(map[string]store.ENI)
	for _, e := range enis {
		if e.Kind == store.ENIMember {
			out[e.ID] = e
		}
	}
	return out
}

// checkMemberTag checks that a bound member pod's address is tagged with
// its member's VLAN ID on the node.
func (r *Report) checkMemberTag(instanceID string, a store.Allocation, m store.ENI) {
	if instanceID == "" {
		return
	}
	if err := datapath.CheckMember(instanceID, a.IP, m.VLANID); err != nil {
		r.add(KindMember, "allocation/"+string(a.Key), err.Error())
	}
}

// checkMemberCloud compares a member with the cloud's record: a member of
// its trunk with its VLAN ID (Attachment.DeviceIndex).
func (r *Report) checkMemberCloud(e store.ENI, c eni.ENI) {
	if e.Kind != store.ENIMember || e.State != store.ENIReady {
		return
	}
	if c.Type != eni.TypeMember || c.TrunkID != e.TrunkID || c.DeviceIndex != e.VLANID {
		r.add(KindMember, "eni/"+e.ID, fmt.Sprintf("member of %s with vlan %d in the store, %s of %q with device index %d in the cloud", e.TrunkID, e.VLANID, c.Type, c.TrunkID, c.DeviceIndex))
	}
}
