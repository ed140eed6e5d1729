package fastpath

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/cilium/ebpf"
)

// SetHostStack replaces the destinations pods reach through the host
// stack. Entries are updated in place, so no packet sees an empty map.
// PlainPod records are not configuration and stay as they are.
func (d *Datapath) SetHostStack(hs HostStack) error {
	want := hs.prefixes()
	m := d.objs.VeniHoststack
	var (
		key   fastpathLpmKey
		val   fastpathHostEntry
		stale []fastpathLpmKey
	)
	have := make(map[netip.Prefix]uint32)
	iter := m.Iterate()
	for iter.Next(&key, &val) {
		p := netip.PrefixFrom(netip.AddrFrom4(key.Addr), int(key.Prefixlen))
		have[p] = val.Reason
		if _, ok := want[p]; !ok && val.Reason != reasonPlainPod {
			stale = append(stale, key)
		}
	}
	if err := iter.Err(); err != nil {
		return fmt.Errorf("list host-stack cidrs: %w", err)
	}
	// Every CNI ADD passes the node's host stack: write only what differs.
	for p, reason := range want {
		if v, ok := have[p]; ok && (v == reason || v == reasonPlainPod) {
			continue
		}
		k := fastpathLpmKey{Prefixlen: uint32(p.Bits()), Addr: p.Addr().As4()}
		if err := m.Put(k, fastpathHostEntry{Reason: reason}); err != nil {
			return fmt.Errorf("write host-stack cidr %s: %w", p, err)
		}
	}
	for _, k := range stale {
		if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete host-stack cidr %v/%d: %w", k.Addr, k.Prefixlen, err)
		}
	}
	return nil
}

// HostStackPrefixes returns the destinations currently on the host stack,
// with their reason ("service", "cidr", "node", or "plain-pod" for a
// PlainPod record).
func (d *Datapath) HostStackPrefixes() (map[netip.Prefix]string, error) {
	out := make(map[netip.Prefix]string)
	var (
		key fastpathLpmKey
		val fastpathHostEntry
	)
	iter := d.objs.VeniHoststack.Iterate()
	for iter.Next(&key, &val) {
		p := netip.PrefixFrom(netip.AddrFrom4(key.Addr), int(key.Prefixlen))
		out[p] = reasonName(val.Reason)
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("list host-stack cidrs: %w", err)
	}
	return out, nil
}

// PlainPods returns the PlainPod records, sorted by IP: pods of a fast
// path node that run on the plain datapath.
func (d *Datapath) PlainPods() ([]PlainPod, error) {
	var (
		key fastpathLpmKey
		val fastpathHostEntry
		out []PlainPod
	)
	iter := d.objs.VeniHoststack.Iterate()
	for iter.Next(&key, &val) {
		if val.Reason == reasonPlainPod && key.Prefixlen == 32 {
			out = append(out, PlainPod{IP: netip.AddrFrom4(key.Addr), HostIfindex: int(val.HostIfindex)})
		}
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("list plain pods: %w", err)
	}
	slices.SortFunc(out, func(a, b PlainPod) int { return a.IP.Compare(b.IP) })
	return out, nil
}
