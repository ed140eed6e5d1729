package fastpath

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/cilium/ebpf"
)

// SetHostStack replaces the destinations pods reach through the host
// stack, in both families' maps. Entries are updated in place, so no
// packet sees an empty map. PlainPod records are not configuration and
// stay as they are.
func (d *Datapath) SetHostStack(hs HostStack) error {
	want := hs.prefixes()
	for _, f := range d.families() {
		if err := f.setHostStack(want); err != nil {
			return err
		}
	}
	return nil
}

// setHostStack makes f's trie hold the entries of want of f's family.
func (f family) setHostStack(want map[netip.Prefix]uint32) error {
	have := make(map[netip.Prefix]uint32)
	var stale []netip.Prefix
	err := f.iterateLPM(func(p netip.Prefix, val fastpathHostEntry) {
		have[p] = val.Reason
		if _, ok := want[p]; !ok && val.Reason != reasonPlainPod {
			stale = append(stale, p)
		}
	})
	if err != nil {
		return fmt.Errorf("list host-stack cidrs: %w", err)
	}
	// Every CNI ADD passes the node's host stack: write only what differs.
	for p, reason := range want {
		if p.Addr().BitLen() != f.bits {
			continue
		}
		if v, ok := have[p]; ok && (v == reason || v == reasonPlainPod) {
			continue
		}
		if err := f.hoststack.Put(lpmKey(p), fastpathHostEntry{Reason: reason}); err != nil {
			return fmt.Errorf("write host-stack cidr %s: %w", p, err)
		}
	}
	for _, p := range stale {
		if err := f.hoststack.Delete(lpmKey(p)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete host-stack cidr %s: %w", p, err)
		}
	}
	return nil
}

// HostStackPrefixes returns the destinations currently on the host stack,
// of both families, with their reason ("service", "cidr", "node", or
// "plain-pod" for a PlainPod record).
func (d *Datapath) HostStackPrefixes() (map[netip.Prefix]string, error) {
	out := make(map[netip.Prefix]string)
	for _, f := range d.families() {
		err := f.iterateLPM(func(p netip.Prefix, val fastpathHostEntry) {
			out[p] = reasonName(val.Reason)
		})
		if err != nil {
			return nil, fmt.Errorf("list host-stack cidrs: %w", err)
		}
	}
	return out, nil
}

// PlainPods returns the PlainPod records of both families, sorted by IP
// (IPv4 first): pods of a fast path node that run on the plain datapath.
func (d *Datapath) PlainPods() ([]PlainPod, error) {
	var out []PlainPod
	for _, f := range d.families() {
		err := f.iterateLPM(func(p netip.Prefix, val fastpathHostEntry) {
			if val.Reason == reasonPlainPod && p.IsSingleIP() {
				out = append(out, PlainPod{IP: p.Addr(), HostIfindex: int(val.HostIfindex)})
			}
		})
		if err != nil {
			return nil, fmt.Errorf("list plain pods: %w", err)
		}
	}
	slices.SortFunc(out, func(a, b PlainPod) int { return a.IP.Compare(b.IP) })
	return out, nil
}
