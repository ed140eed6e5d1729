package fastpath

import (
	"net/netip"

	"github.com/cilium/ebpf"
)

// family holds one address family's maps: IPv4 addresses live in
// veni_endpoints, veni_pod_flows and veni_hoststack, IPv6 ones in their
// twins with a 6 (fastpath.c).
type family struct {
	endpoints *ebpf.Map
	flows     *ebpf.Map     // map of maps: the pods' flow maps
	flowSpec  *ebpf.MapSpec // template of an inner flow map
	hoststack *ebpf.Map     // LPM trie of host-stack destinations
	bits      int           // an address's length
}

func (d *Datapath) family(ip netip.Addr) family {
	if is6(ip) {
		return family{d.objs.VeniEndpoints6, d.objs.VeniPodFlows6, &podFlows6Spec, d.objs.VeniHoststack6, 128}
	}
	return family{d.objs.VeniEndpoints, d.objs.VeniPodFlows, &podFlowsSpec, d.objs.VeniHoststack, 32}
}

// families lists both, IPv4 first.
func (d *Datapath) families() []family {
	return []family{d.family(netip.IPv4Unspecified()), d.family(netip.IPv6Unspecified())}
}

// addrKey is ip as a key of its family's maps.
func addrKey(ip netip.Addr) any {
	if is6(ip) {
		return ip.As16()
	}
	return ip.Unmap().As4()
}

// addrFrom reads a key of a family's maps (4 or 16 bytes).
func addrFrom(b []byte) netip.Addr {
	a, _ := netip.AddrFromSlice(b)
	return a
}

// lpmKey is p as a key of its family's host-stack trie.
func lpmKey(p netip.Prefix) any {
	if is6(p.Addr()) {
		return fastpathLpm6Key{Prefixlen: uint32(p.Bits()), Addr: p.Addr().As16()}
	}
	return fastpathLpmKey{Prefixlen: uint32(p.Bits()), Addr: p.Addr().Unmap().As4()}
}

// iterateLPM calls fn for each entry of a host-stack trie of f's family.
func (f family) iterateLPM(fn func(netip.Prefix, fastpathHostEntry)) error {
	var val fastpathHostEntry
	iter := f.hoststack.Iterate()
	if f.bits == 128 {
		var key fastpathLpm6Key
		for iter.Next(&key, &val) {
			fn(netip.PrefixFrom(netip.AddrFrom16(key.Addr), int(key.Prefixlen)), val)
		}
	} else {
		var key fastpathLpmKey
		for iter.Next(&key, &val) {
			fn(netip.PrefixFrom(netip.AddrFrom4(key.Addr), int(key.Prefixlen)), val)
		}
	}
	return iter.Err()
}
