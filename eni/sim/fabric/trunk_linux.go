package fabric

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/veni-cni/veni/eni/sim"
	"github.com/veni-cni/veni/eni/sim/fabric/trunkbpf"
)

// Trunks. A trunk ENI is an ENI like any other (a veth pair, its own
// addresses routed to its VPC-side link), and its link also carries its
// members: every member address is a /32 (/128) route via the trunk's
// link with a permanent neighbour entry to the trunk's MAC, and the
// trunk programs (package trunkbpf, on the link's tc ingress and egress)
// demultiplex by VLAN ID: a tagged frame is accepted only from an address
// of the member whose VLAN ID it carries, untagged and marked
// (memberMark) for the security groups; an untagged frame from a member's
// address is dropped; frames to a member are tagged on delivery.
// Anti-spoofing of the trunk's own untagged traffic is unchanged
// (rp_filter, the IPv6 source rules): a member address routed via the
// trunk passes rp_filter, which is why the program drops it untagged.
//
// IPv6: a member's IPv6 addresses join the trunk's IPv6 set (routes,
// neighbours, "from ADDR iif LINK" source rules, proxy NDP within the
// trunk's /64), so they are carried when the trunk's link has IPv6, that
// is when the trunk's vSwitch has an IPv6 block; the programs check IPv6
// sources and destinations as they do IPv4 ones.
//
// Order: when a member or address is added the maps learn it before the
// routes exist; when one goes the routes go before the maps forget it. So
// a routed member address is always delivered tagged and never accepted
// untagged.

// trunkState is an attached trunk ENI's programs.
type trunkState struct {
	prog *trunkbpf.Trunk
}

// memberState is a member the fabric carries.
type memberState struct {
	trunkID string
	vlan    int
	ips     []netip.Addr
}

// attachTrunk loads (once) and attaches the trunk programs to the trunk's
// VPC-side link, with the trunk's current members.
func (f *Fabric) attachTrunk(eniID string, ifindex int) error {
	t := f.trunks[eniID]
	if t == nil {
		prog, err := trunkbpf.Load()
		if err != nil {
			return err
		}
		t = &trunkState{prog: prog}
		f.trunks[eniID] = t
	}
	if err := t.prog.Sync(f.trunkMembers(eniID)); err != nil {
		return err
	}
	return t.prog.Attach(f.vpc, ifindex)
}

// forgetTrunk releases a detached trunk's programs and forgets its
// members (the model never detaches a trunk that has members).
func (f *Fabric) forgetTrunk(eniID string) error {
	for id, m := range f.members {
		if m.trunkID == eniID {
			delete(f.members, id)
		}
	}
	t := f.trunks[eniID]
	if t == nil {
		return nil
	}
	delete(f.trunks, eniID)
	return t.prog.Close()
}

// trunkMembers is what the trunk's maps must hold, by VLAN ID.
func (f *Fabric) trunkMembers(trunkID string) []trunkbpf.Member {
	var out []trunkbpf.Member
	for _, m := range f.members {
		if m.trunkID == trunkID {
			out = append(out, trunkbpf.Member{VLAN: uint16(m.vlan), Mark: memberMark(m.vlan), Addrs: slices.Clone(m.ips)})
		}
	}
	slices.SortFunc(out, func(a, b trunkbpf.Member) int { return int(a.VLAN) - int(b.VLAN) })
	return out
}

// linkAddrs is every address routed to the ENI's VPC-side link: its own,
// and for a trunk its members'.
func (f *Fabric) linkAddrs(eniID string) []netip.Addr {
	out := slices.Clone(f.own[eniID])
	for _, m := range f.trunkMembers(eniID) {
		out = append(out, m.Addrs...)
	}
	return out
}

// AttachMember makes the trunk's link carry the member (see the comment
// at the top of trunk_linux.go). Attaching a carried member again
// re-applies it. May return an error wrapping ErrUnknownTrunk.
//
// Equivalent to, besides the map updates:
//
//	ip -n <sim>-vpc route replace IP/32 dev ve-TRUNK proto 86   (each member IP)
//	ip -n <sim>-vpc neigh replace IP lladdr TRUNK-MAC dev ve-TRUNK nud permanent
func (f *Fabric) AttachMember(m sim.MemberLink) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return ErrClosed
	}
	if _, ok := f.trunks[m.TrunkID]; !ok {
		return fmt.Errorf("attach member eni %s: trunk %s on %s: %w", m.ENIID, m.TrunkID, m.InstanceID, ErrUnknownTrunk)
	}
	if m.VLAN < 1 || m.VLAN > 4094 {
		return fmt.Errorf("attach member eni %s: vlan %d is not an 802.1Q VLAN ID (1-4094)", m.ENIID, m.VLAN)
	}
	for id, o := range f.members {
		if id != m.ENIID && o.trunkID == m.TrunkID && o.vlan == m.VLAN {
			return fmt.Errorf("attach member eni %s: vlan %d of trunk %s is member %s's", m.ENIID, m.VLAN, m.TrunkID, id)
		}
	}
	if m.Gateway.IsValid() {
		if err := f.ensureVPCAddr(m.Gateway); err != nil {
			return fmt.Errorf("attach member eni %s: %w", m.ENIID, err)
		}
	}
	prev := f.trunkMembers(m.TrunkID)
	old, had := f.members[m.ENIID]
	f.members[m.ENIID] = &memberState{trunkID: m.TrunkID, vlan: m.VLAN, ips: slices.Clone(m.IPs)}
	if err := f.syncTrunk(m.TrunkID, prev); err != nil {
		if had {
			f.members[m.ENIID] = old
		} else {
			delete(f.members, m.ENIID)
		}
		return fmt.Errorf("attach member eni %s (vlan %d) to trunk %s: %w", m.ENIID, m.VLAN, m.TrunkID, err)
	}
	return nil
}

// DetachMember stops carrying the member: its routes, neighbour entries
// and map entries go, so its VLAN ID can be given to the next member. A
// member the fabric does not carry is already detached.
func (f *Fabric) DetachMember(instanceID, trunkID, memberID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return ErrClosed
	}
	m, ok := f.members[memberID]
	if !ok {
		return nil
	}
	if m.trunkID != trunkID {
		return fmt.Errorf("detach member eni %s from trunk %s on %s: the fabric carries it on trunk %s", memberID, trunkID, instanceID, m.trunkID)
	}
	prev := f.trunkMembers(trunkID)
	delete(f.members, memberID)
	if err := f.syncTrunk(trunkID, prev); err != nil {
		return fmt.Errorf("detach member eni %s from trunk %s on %s: %w", memberID, trunkID, instanceID, err)
	}
	return nil
}

// setMemberAddresses is SetENIAddresses for a member.
func (f *Fabric) setMemberAddresses(m *memberState, ips []netip.Addr) error {
	prev := f.trunkMembers(m.trunkID)
	m.ips = slices.Clone(ips)
	return f.syncTrunk(m.trunkID, prev)
}

// syncTrunk brings the trunk's maps, routes and neighbour entries to its
// members now, coming from prev: the maps first grow to prev and now
// together, then the routes follow, then the maps shrink to now.
func (f *Fabric) syncTrunk(trunkID string, prev []trunkbpf.Member) error {
	t, ok := f.trunks[trunkID]
	if !ok {
		return fmt.Errorf("trunk %s: %w", trunkID, ErrUnknownTrunk)
	}
	link, err := f.eniLink(trunkID)
	if err != nil {
		return fmt.Errorf("trunk %s: %w", trunkID, err)
	}
	mac, ok := f.macs[trunkID]
	if !ok {
		return fmt.Errorf("trunk %s: its vpc link %s was not made by this fabric", trunkID, link.Attrs().Name)
	}
	now := f.trunkMembers(trunkID)
	if err := t.prog.Sync(mergeMembers(prev, now)); err != nil {
		return err
	}
	if err := f.setAddresses(trunkID, link, mac, f.linkAddrs(trunkID)); err != nil {
		return err
	}
	return t.prog.Sync(now)
}

// mergeMembers is now plus what of prev now does not contradict: prev's
// members now lacks, and prev's addresses no member of now holds.
func mergeMembers(prev, now []trunkbpf.Member) []trunkbpf.Member {
	out := make([]trunkbpf.Member, 0, len(prev)+len(now))
	held := map[netip.Addr]bool{}
	idx := map[uint16]int{}
	for _, m := range now {
		m.Addrs = slices.Clone(m.Addrs)
		for _, a := range m.Addrs {
			held[a] = true
		}
		idx[m.VLAN] = len(out)
		out = append(out, m)
	}
	for _, m := range prev {
		i, ok := idx[m.VLAN]
		if !ok {
			i = len(out)
			idx[m.VLAN] = i
			out = append(out, trunkbpf.Member{VLAN: m.VLAN, Mark: m.Mark})
		}
		for _, a := range m.Addrs {
			if !held[a] {
				held[a] = true
				out[i].Addrs = append(out[i].Addrs, a)
			}
		}
	}
	return out
}
