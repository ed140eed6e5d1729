package trunkbpf

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Member is one trunk member as the programs see it.
type Member struct {
	VLAN  uint16       // its 802.1Q VLAN ID, 1..4094
	Mark  uint32       // skb->mark of its frames after the tag is popped
	Addrs []netip.Addr // the sources accepted from it and the destinations tagged for it
}

// Stats counts what the programs did, summed over CPUs.
type Stats struct {
	TaggedIn     uint64 // tagged frames accepted from a member
	DropVLAN     uint64 // tagged frames with no member's VLAN ID
	DropSource   uint64 // tagged frames whose source is not their member's
	DropUntagged uint64 // untagged frames from a member's address
	TaggedOut    uint64 // frames to a member, tagged on delivery
}

// Filter names, so "tc filter show" tells whose they are.
const (
	ingressName = "veni-sim-trunk-in"
	egressName  = "veni-sim-trunk-out"
)

// Trunk is the loaded programs and maps of one trunk link.
type Trunk struct {
	objs trunkObjects
}

// Load loads a fresh copy of the programs and their maps, for one trunk.
func Load() (*Trunk, error) {
	t := &Trunk{}
	if err := loadTrunkObjects(&t.objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("load trunk programs: %w (verifier log: %+v)", err, ve)
		}
		return nil, fmt.Errorf("load trunk programs: %w", err)
	}
	return t, nil
}

// Attach puts from_node on the ingress and to_node on the egress of the
// link ifindex, through h (a handle in the link's namespace), replacing
// earlier copies.
//
// Equivalent to:
//
//	tc qdisc add dev LINK clsact
//	tc filter replace dev LINK ingress prio 1 handle 1 bpf da obj trunk.o sec tc/from_node
//	tc filter replace dev LINK egress prio 1 handle 1 bpf da obj trunk.o sec tc/to_node
func (t *Trunk) Attach(h *netlink.Handle, ifindex int) error {
	qdisc := &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: ifindex, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT},
		QdiscType:  "clsact",
	}
	if err := h.QdiscAdd(qdisc); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add clsact to ifindex %d: %w", ifindex, err)
	}
	for _, f := range []struct {
		parent uint32
		prog   *ebpf.Program
		name   string
	}{
		{netlink.HANDLE_MIN_INGRESS, t.objs.FromNode, ingressName},
		{netlink.HANDLE_MIN_EGRESS, t.objs.ToNode, egressName},
	} {
		filter := &netlink.BpfFilter{
			FilterAttrs: netlink.FilterAttrs{
				LinkIndex: ifindex, Parent: f.parent, Handle: 1, Priority: 1, Protocol: unix.ETH_P_ALL,
			},
			Fd: f.prog.FD(), Name: f.name, DirectAction: true,
		}
		if err := h.FilterReplace(filter); err != nil {
			return fmt.Errorf("attach %s to ifindex %d: %w", f.name, ifindex, err)
		}
	}
	return nil
}

// key is an address as the maps hold it: IPv6, or IPv4 as ::ffff:a.b.c.d.
func key(a netip.Addr) trunkAddr {
	return trunkAddr{B: netip.AddrFrom16(a.As16()).As16()}
}

// Sync makes the maps hold exactly ms: each member's VLAN ID with its
// mark, and each of its addresses with its VLAN ID. Entries are added
// before stale ones are deleted, so a member keeps working across a
// Sync that does not remove it. An address listed for two members is an
// error (the model never assigns one address twice).
func (t *Trunk) Sync(ms []Member) error {
	wantVLAN := map[uint16]uint32{}
	wantAddr := map[trunkAddr]uint16{}
	for _, m := range ms {
		if m.VLAN < 1 || m.VLAN > 4094 {
			return fmt.Errorf("member vlan %d: not an 802.1Q VLAN ID (1-4094)", m.VLAN)
		}
		if _, dup := wantVLAN[m.VLAN]; dup {
			return fmt.Errorf("member vlan %d listed twice", m.VLAN)
		}
		wantVLAN[m.VLAN] = m.Mark
		for _, a := range m.Addrs {
			k := key(a)
			if other, dup := wantAddr[k]; dup && other != m.VLAN {
				return fmt.Errorf("address %s listed for vlan %d and vlan %d", a, other, m.VLAN)
			}
			wantAddr[k] = m.VLAN
		}
	}
	for vlan, mark := range wantVLAN {
		if err := t.objs.Members.Put(vlan, trunkMember{Mark: mark}); err != nil {
			return fmt.Errorf("put member vlan %d: %w", vlan, err)
		}
	}
	for k, vlan := range wantAddr {
		if err := t.objs.MemberAddrs.Put(k, vlan); err != nil {
			return fmt.Errorf("put address %s of vlan %d: %w", netip.AddrFrom16(k.B).Unmap(), vlan, err)
		}
	}
	var staleAddrs []trunkAddr
	var k trunkAddr
	var vlan uint16
	it := t.objs.MemberAddrs.Iterate()
	for it.Next(&k, &vlan) {
		if _, ok := wantAddr[k]; !ok {
			staleAddrs = append(staleAddrs, k)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("list member addresses: %w", err)
	}
	for _, k := range staleAddrs {
		if err := t.objs.MemberAddrs.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete address %s: %w", netip.AddrFrom16(k.B).Unmap(), err)
		}
	}
	var staleVLANs []uint16
	var m trunkMember
	it = t.objs.Members.Iterate()
	for it.Next(&vlan, &m) {
		if _, ok := wantVLAN[vlan]; !ok {
			staleVLANs = append(staleVLANs, vlan)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("list members: %w", err)
	}
	for _, vlan := range staleVLANs {
		if err := t.objs.Members.Delete(vlan); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete member vlan %d: %w", vlan, err)
		}
	}
	return nil
}

// Members reads the maps back: every member by VLAN ID, its addresses
// sorted. An address whose VLAN ID has no member entry is listed under a
// member with Mark 0.
func (t *Trunk) Members() ([]Member, error) {
	byVLAN := map[uint16]*Member{}
	var vlan uint16
	var m trunkMember
	it := t.objs.Members.Iterate()
	for it.Next(&vlan, &m) {
		byVLAN[vlan] = &Member{VLAN: vlan, Mark: m.Mark}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("list members: %w", err)
	}
	var k trunkAddr
	it = t.objs.MemberAddrs.Iterate()
	for it.Next(&k, &vlan) {
		mm := byVLAN[vlan]
		if mm == nil {
			mm = &Member{VLAN: vlan}
			byVLAN[vlan] = mm
		}
		mm.Addrs = append(mm.Addrs, netip.AddrFrom16(k.B).Unmap())
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("list member addresses: %w", err)
	}
	out := make([]Member, 0, len(byVLAN))
	for _, mm := range byVLAN {
		slices.SortFunc(mm.Addrs, netip.Addr.Compare)
		out = append(out, *mm)
	}
	slices.SortFunc(out, func(a, b Member) int { return int(a.VLAN) - int(b.VLAN) })
	return out, nil
}

// Stats sums the programs' counters over every CPU.
func (t *Trunk) Stats() (Stats, error) {
	var s Stats
	for stat, dst := range map[trunkStat]*uint64{
		trunkStatSTAT_TAGGED_IN:     &s.TaggedIn,
		trunkStatSTAT_DROP_VLAN:     &s.DropVLAN,
		trunkStatSTAT_DROP_SOURCE:   &s.DropSource,
		trunkStatSTAT_DROP_UNTAGGED: &s.DropUntagged,
		trunkStatSTAT_TAGGED_OUT:    &s.TaggedOut,
	} {
		var perCPU []uint64
		if err := t.objs.Stats.Lookup(uint32(stat), &perCPU); err != nil {
			return Stats{}, fmt.Errorf("read counter %d: %w", stat, err)
		}
		for _, n := range perCPU {
			*dst += n
		}
	}
	return s, nil
}

// Close releases the programs and maps held by this process (see the
// package doc for when).
func (t *Trunk) Close() error {
	if err := t.objs.Close(); err != nil {
		return fmt.Errorf("close trunk programs: %w", err)
	}
	return nil
}
