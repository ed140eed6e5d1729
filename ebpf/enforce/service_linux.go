package enforce

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"

	"github.com/veni-cni/veni/ebpf/fastpath"
	"github.com/veni-cni/veni/ebpf/tc"
)

// Service traffic: an egress-isolated endpoint's flows to a Service CIDR
// are decided after the host stack's DNAT, against the backend (see the
// package doc and VENI_MARK_SVC_DEFER in veni_policy.h).

// tcENIPrio is the priority of pol_to_eni on an ENI's egress. The fast
// path hooks only the ENI's ingress.
const tcENIPrio = 1

// SetServiceCIDRs makes prefixes the node's Service CIDRs, of either
// family (a dual-stack cluster has both): the egress of flows to them is
// decided after DNAT. It writes only what changed, so a caller may set
// them on every open.
//
// May return an error wrapping ErrInvalidOptions (more of a family than
// its map holds).
func (e *Enforcer) SetServiceCIDRs(prefixes []netip.Prefix) error {
	want4 := make(map[policySvcKey]bool)
	want6 := make(map[policySvc6Key]bool)
	for _, p := range prefixes {
		if !p.IsValid() {
			continue
		}
		if a := p.Addr().Unmap(); a.Is4() {
			want4[svcKey(netip.PrefixFrom(a, min(p.Bits(), 32)).Masked())] = true
		} else {
			want6[svc6Key(p.Masked())] = true
		}
	}
	return errors.Join(syncKeys(e, e.objs.VeniPolSvc, want4), syncKeys(e, e.objs.VeniPolSvc6, want6))
}

// syncKeys makes want the keys of m (values 1), writing only when they
// differ, under the pin directory's lock.
func syncKeys[K interface {
	comparable
	String() string
}](e *Enforcer, m *ebpf.Map, want map[K]bool) error {
	if len(want) > int(m.MaxEntries()) {
		return fmt.Errorf("%w: %d service cidrs of a family, at most %d", ErrInvalidOptions, len(want), m.MaxEntries())
	}
	have, err := mapKeys[K](m)
	if err != nil {
		return err
	}
	if len(have) == len(want) {
		same := true
		for _, k := range have {
			same = same && want[k]
		}
		if same {
			return nil
		}
	}
	unlock, err := fastpath.LockPinDir(e.pinDir)
	if err != nil {
		return err
	}
	defer unlock()
	for k := range want {
		if err := m.Put(k, uint32(1)); err != nil {
			return fmt.Errorf("write service cidr %s: %w", k, err)
		}
	}
	for _, k := range have {
		if want[k] {
			continue
		}
		if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete service cidr %s: %w", k, err)
		}
	}
	return nil
}

// ServiceCIDRs returns the node's Service CIDRs as the programs see them,
// IPv4 first.
func (e *Enforcer) ServiceCIDRs() ([]netip.Prefix, error) {
	keys, err := mapKeys[policySvcKey](e.objs.VeniPolSvc)
	if err != nil {
		return nil, err
	}
	keys6, err := mapKeys[policySvc6Key](e.objs.VeniPolSvc6)
	if err != nil {
		return nil, err
	}
	out := make([]netip.Prefix, 0, len(keys)+len(keys6))
	for _, k := range keys {
		out = append(out, k.prefix())
	}
	for _, k := range keys6 {
		out = append(out, k.prefix())
	}
	return out, nil
}

// mapKeys lists the keys of a Service CIDR map.
func mapKeys[K any](m *ebpf.Map) ([]K, error) {
	var (
		k    K
		v    uint32
		keys []K
	)
	iter := m.Iterate()
	for iter.Next(&k, &v) {
		keys = append(keys, k)
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("list service cidrs: %w", err)
	}
	return keys, nil
}

type (
	policySvcKey  = policyPolSvcKey
	policySvc6Key = policyPolSvc6Key
)

func svcKey(p netip.Prefix) policySvcKey {
	return policySvcKey{Prefixlen: uint32(p.Bits()), Addr: p.Addr().As4()}
}

func (k policySvcKey) prefix() netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4(k.Addr), int(k.Prefixlen))
}

func (k policySvcKey) String() string { return k.prefix().String() }

func svc6Key(p netip.Prefix) policySvc6Key {
	return policySvc6Key{Prefixlen: uint32(p.Bits()), Addr: p.Addr().As16()}
}

func (k policySvc6Key) prefix() netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom16(k.Addr), int(k.Prefixlen))
}

func (k policySvc6Key) String() string { return k.prefix().String() }

// AttachENI hooks pol_to_eni to the egress of the ENI link ifindex (in the
// calling thread's namespace), where the deferred egress of Service traffic
// DNATed to a backend on another node is decided. It is idempotent; the
// filter lives and dies with the link. Packets the programs did not defer
// pay one test of their mark.
//
// Equivalent to: tc qdisc add dev $eni clsact; tc filter replace dev $eni
// egress prio 1 handle 1 bpf da.
func (e *Enforcer) AttachENI(ifindex int) error {
	if ifindex <= 0 {
		return fmt.Errorf("%w: eni ifindex %d", ErrInvalidEndpoint, ifindex)
	}
	return tc.AttachEgress(ifindex, tcENIPrio, tc.Filter{Prog: e.objs.PolToEni, Name: tcFilterPrefix + "to_eni"})
}

// DetachENI removes pol_to_eni from the ENI link ifindex, if it is there.
func (e *Enforcer) DetachENI(ifindex int) error {
	return tc.Detach(ifindex, nil, tcFilterPrefix+"to_eni")
}

// putIP records the endpoint's addresses for the deferred checks, which
// see its packets away from its veth. Call with the pin dir locked.
func (e *Enforcer) putIP(ep EndpointKey) error {
	if ip := ep.IP.Unmap(); ip.Is4() {
		if err := e.objs.VeniPolIps.Put(beIP(ip), uint32(ep.Ifindex)); err != nil {
			return tooMany("record address of", ep, err)
		}
	}
	if !ep.IP6.IsValid() {
		return nil
	}
	a := policyPolIn6{Addr: ep.IP6.As16()}
	if err := e.objs.VeniPolIps6.Put(a, uint32(ep.Ifindex)); err != nil {
		return tooMany("record ipv6 address of", ep, err)
	}
	if err := e.objs.VeniPolEpIp6.Put(uint32(ep.Ifindex), a); err != nil {
		return tooMany("record ipv6 address of", ep, err)
	}
	return nil
}

// deleteIP forgets ip's endpoint, unless it is by now another ifindex's.
// Call with the pin dir locked.
func (e *Enforcer) deleteIP(ip netip.Addr, ifindex int) error {
	ip = ip.Unmap()
	if !ip.Is4() {
		return nil
	}
	var cur uint32
	if err := e.objs.VeniPolIps.Lookup(beIP(ip), &cur); err != nil || int(cur) != ifindex {
		return nil
	}
	if err := e.objs.VeniPolIps.Delete(beIP(ip)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("forget address %s: %w", ip, err)
	}
	return nil
}

// ip6 returns the IPv6 address recorded for the endpoint on ifindex
// (zero: none).
func (e *Enforcer) ip6(ifindex int) (netip.Addr, error) {
	var a policyPolIn6
	err := e.objs.VeniPolEpIp6.Lookup(uint32(ifindex), &a)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return netip.Addr{}, nil
	}
	if err != nil {
		return netip.Addr{}, fmt.Errorf("read ipv6 address of ifindex %d: %w", ifindex, err)
	}
	return netip.AddrFrom16(a.Addr), nil
}

// deleteIP6 forgets the IPv6 address recorded for the endpoint on
// ifindex, leaving the address's record alone when it is by now another
// ifindex's. Call with the pin dir locked.
func (e *Enforcer) deleteIP6(ifindex int) error {
	ip6, err := e.ip6(ifindex)
	if err != nil || !ip6.IsValid() {
		return err
	}
	a := policyPolIn6{Addr: ip6.As16()}
	var cur uint32
	if err := e.objs.VeniPolIps6.Lookup(a, &cur); err == nil && int(cur) == ifindex {
		if err := e.objs.VeniPolIps6.Delete(a); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("forget address %s: %w", ip6, err)
		}
	}
	if err := e.objs.VeniPolEpIp6.Delete(uint32(ifindex)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("forget ipv6 address of ifindex %d: %w", ifindex, err)
	}
	return nil
}

// beIP is ip as the programs store it (network order in a __be32).
func beIP(ip netip.Addr) uint32 {
	a := ip.As4()
	return binary.NativeEndian.Uint32(a[:])
}
