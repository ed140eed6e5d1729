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

// SetServiceCIDRs makes prefixes the node's Service CIDRs: the egress of
// flows to them is decided after DNAT. IPv6 prefixes are skipped (the
// datapath is IPv4). It writes only what changed, so a caller may set
// them on every open.
//
// May return an error wrapping ErrInvalidOptions (more than the map holds).
func (e *Enforcer) SetServiceCIDRs(prefixes []netip.Prefix) error {
	want := make(map[policySvcKey]bool)
	for _, p := range prefixes {
		if !p.IsValid() || !p.Addr().Unmap().Is4() {
			continue
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()).Masked()
		want[svcKey(p)] = true
	}
	if len(want) > int(e.objs.VeniPolSvc.MaxEntries()) {
		return fmt.Errorf("%w: %d service cidrs, at most %d", ErrInvalidOptions, len(want), e.objs.VeniPolSvc.MaxEntries())
	}
	have, err := e.svcKeys()
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
		if err := e.objs.VeniPolSvc.Put(k, uint32(1)); err != nil {
			return fmt.Errorf("write service cidr %s: %w", k, err)
		}
	}
	for _, k := range have {
		if want[k] {
			continue
		}
		if err := e.objs.VeniPolSvc.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete service cidr %s: %w", k, err)
		}
	}
	return nil
}

// ServiceCIDRs returns the node's Service CIDRs as the programs see them.
func (e *Enforcer) ServiceCIDRs() ([]netip.Prefix, error) {
	keys, err := e.svcKeys()
	if err != nil {
		return nil, err
	}
	out := make([]netip.Prefix, 0, len(keys))
	for _, k := range keys {
		out = append(out, k.prefix())
	}
	return out, nil
}

func (e *Enforcer) svcKeys() ([]policySvcKey, error) {
	var (
		k    policySvcKey
		v    uint32
		keys []policySvcKey
	)
	iter := e.objs.VeniPolSvc.Iterate()
	for iter.Next(&k, &v) {
		keys = append(keys, k)
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("list service cidrs: %w", err)
	}
	return keys, nil
}

type policySvcKey = policyPolSvcKey

func svcKey(p netip.Prefix) policySvcKey {
	return policySvcKey{Prefixlen: uint32(p.Bits()), Addr: p.Addr().As4()}
}

func (k policySvcKey) prefix() netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4(k.Addr), int(k.Prefixlen))
}

func (k policySvcKey) String() string { return k.prefix().String() }

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

// putIP records the endpoint's address for the deferred checks, which see
// its packets away from its veth. Call with the pin dir locked.
func (e *Enforcer) putIP(ep EndpointKey) error {
	ip := ep.IP.Unmap()
	if !ip.Is4() {
		return nil
	}
	if err := e.objs.VeniPolIps.Put(beIP(ip), uint32(ep.Ifindex)); err != nil {
		return tooMany("record address of", ep, err)
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

// beIP is ip as the programs store it (network order in a __be32).
func beIP(ip netip.Addr) uint32 {
	a := ip.As4()
	return binary.NativeEndian.Uint32(a[:])
}
