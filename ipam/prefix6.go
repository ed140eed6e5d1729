package ipam

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/eni"
	"github.com/veni-cni/veni/store"
)

// IPv6 prefixes (enable_ip_prefix on a dual-stack node). Each ENI gets one
// delegated /80 (AssignIpv6Addresses with Ipv6PrefixCount, or the ENI's
// create with it), as Terway gives a dual-stack ENI exactly one; a pod's
// IPv6 is an address of its IPv4's ENI's /80s, so the pair rule of dual.go
// (same ENI, taken and freed in one transaction) holds unchanged.
//
// A /80 holds 2^48 addresses: unlike a /28's 16, its addresses cannot be
// recorded up front. The /80 is recorded on its ENI (store.ENI.IPv6Prefixes)
// and an IP record tagged with it is made only when Reserve hands the
// address out, in the transaction that reserves the pod (lowest6). The
// record then stays, free once its pod is gone, and is handed out again
// before any new address: the records of a /80 never outnumber the most
// pods its ENI held at once. Everything that works on IP records (release,
// GC, Commit, stickiness, "veni ipam verify") works on these as on any
// other, and no address is ever given twice: its record is its only hold.
//
// The pool counts pairs: an ENI with a /80 offers as many pods as it has
// free IPv4 (the /80 never runs short). A /80 takes one of the ENI's IPv6
// slots, as in the cloud, and goes back to the cloud only with its ENI
// (Reconcile deletes empty ENIs veni created): an ENI that carries dual-stack
// pods needs its /80 for as long as it carries any.

//
// IPv6 only in prefix mode (ip_stack ipv6 with enable_ip_prefix): an ENI is
// created with its /80 and nothing else (no secondary IPv4, no IPv6
// address), and a pod's one address is an address of a /80, kept in
// Allocation.IP as on any IPv6-only node. With no IPv4 to count, the /80
// alone would let one ENI carry any number of pods; Terway documents no
// bound for this mode, so an ENI carries what it would in IPv6-only IP
// mode, its IPv6 quota (EniIpv6AddressQuantity). That bound needs the
// instance type, which only the grower (under the allocator lease) has:
// so here the pool's slots are the /80's records made ahead, free, by
// grow (slots6OnENIs: the lowest addresses with no record, at most the
// quota per ENI, no cloud call), and Reserve takes the lowest free one of
// its ENI (pickFree). Release, GC, stickiness, verify and recovery are
// those of any record; an ENI full of held records grows the pool by a
// new ENI with its /80.

// prefix6sPerENI is how many /80s the pool delegates to an ENI.
const prefix6sPerENI = 1

// dualPrefix reports whether cfg delegates IPv6 /80s: prefix mode on a
// dual-stack node.
func dualPrefix(cfg config.Config) bool { return cfg.PrefixMode() && cfg.DualStack() }

// v6Prefix reports whether cfg gives IPv6-only pods addresses of /80s:
// prefix mode on an IPv6-only node.
func v6Prefix(cfg config.Config) bool { return cfg.PrefixMode() && cfg.IPv6Only() }

// prefix6Mode reports whether each ENI of the pool gets a /80: prefix mode
// on a node whose pods get an IPv6.
func prefix6Mode(cfg config.Config) bool { return dualPrefix(cfg) || v6Prefix(cfg) }

// lowest6 returns the lowest address of e's /80s any pod may be given: a
// free record tagged with the /80, or the first address with no record (a
// new free record, for the caller to reserve in its transaction). The /80's
// first address is skipped: when the /80 is the /64's first, that address
// is the subnet-router anycast. ips are the store's records; ok is false
// when e has no /80.
func lowest6(ips []store.IP, e store.ENI, now time.Time) (ip store.IP, ok bool) {
	for _, pfx := range e.IPv6Prefixes {
		rec := make(map[netip.Addr]store.IP)
		for _, r := range ips {
			if r.Prefix == pfx {
				rec[r.Addr] = r
			}
		}
		for a := pfx.Masked().Addr().Next(); pfx.Contains(a); a = a.Next() {
			r, known := rec[a]
			if !known {
				return store.IP{Addr: a, ENIID: e.ID, State: store.IPFree, AddedAt: now, Prefix: pfx}, true
			}
			if r.ENIID == e.ID && r.Open(now) {
				return r, true
			}
			// At most len(rec)+1 steps: every other address has no record.
		}
	}
	return store.IP{}, false
}

// unrecorded6 returns new free records of the n lowest addresses of e's
// /80s that no record in ips holds (the /80's first address skipped, as in
// lowest6), fewer when the /80s run out.
func unrecorded6(ips []store.IP, e store.ENI, n int, now time.Time) []store.IP {
	var out []store.IP
	for _, pfx := range e.IPv6Prefixes {
		known := make(map[netip.Addr]bool)
		for _, r := range ips {
			if r.Prefix == pfx {
				known[r.Addr] = true
			}
		}
		for a := pfx.Masked().Addr().Next(); pfx.Contains(a) && len(out) < n; a = a.Next() {
			if !known[a] {
				out = append(out, store.IP{Addr: a, ENIID: e.ID, State: store.IPFree, AddedAt: now, Prefix: pfx})
			}
		}
	}
	return out
}

// inPrefixes reports whether a is in one of prefixes.
func inPrefixes(prefixes []netip.Prefix, a netip.Addr) bool {
	return slices.ContainsFunc(prefixes, func(p netip.Prefix) bool { return p.Contains(a) })
}

// ensurePrefix6 delegates a /80 to an ENI of the pool that has an IPv6
// /64 and none yet, and records it on the ENI and in p. It returns the
// ENI's pods that the /80 made room for (its free IPv4). A /80 the cloud
// delegated but a crash kept from the store is recorded by the next cloud
// sync (syncIPs) and goes with its ENI: nothing leaks.
func ensurePrefix6(ctx context.Context, db Store, cloud eni.Client, cfg config.Config, p *pool, e store.ENI) (int, error) {
	if len(e.IPv6Prefixes) > 0 || !e.IPv6CIDR.IsValid() {
		return 0, nil
	}
	got, err := cloud.AssignIPv6Prefixes(ctx, e.ID, prefix6sPerENI)
	if err != nil {
		if berr := backoffFor(db, cfg, p, err, e.ID, e.VSwitchID); berr != nil {
			return 0, berr
		}
		return 0, fmt.Errorf("assign ipv6 prefix to eni %s: %w", e.ID, err)
	}
	if err := db.Update(func(tx *store.WriteTx) error { return notePrefixes(tx, e.ID, got) }); err != nil {
		return 0, err
	}
	for i := range p.enis {
		if p.enis[i].ID == e.ID {
			p.enis[i].IPv6Prefixes = mergePrefixes(p.enis[i].IPv6Prefixes, got)
		}
	}
	if v6Prefix(cfg) {
		return 0, nil // its slots are recorded by slots6OnENIs
	}
	free4, _, _, _ := p.ipsByFamily(e.ID)
	return free4, nil
}

// ensurePrefixes6 gives every owned ready ENI with an IPv6 /64 and no /80
// one (an ENI whose /80 call failed, or made before dual-stack prefixes),
// and returns the pods that made room for. blocked is a back-off it met.
func ensurePrefixes6(ctx context.Context, db Store, cloud eni.Client, node Node, cfg config.Config, p *pool) (added int, blocked, err error) {
	for _, e := range slices.Clone(p.enis) {
		if !e.Owned || e.State != store.ENIReady || e.ID == node.PrimaryENIID || e.Dedicated() {
			continue
		}
		if backedOff(p, e, time.Now()) {
			continue
		}
		n, err := ensurePrefix6(ctx, db, cloud, cfg, p, e)
		if errors.Is(err, ErrBackoff) {
			blocked = err
			continue
		}
		if err != nil {
			return added, blocked, err
		}
		added += n
	}
	return added, blocked, nil
}

// slots6OnENIs grows an IPv6-only prefix pool (v6Prefix): it gives every
// owned ready ENI with an IPv6 /64 its /80 (ensurePrefixes6), then records
// free addresses of the ENIs' /80s (newSlots6), in eni_selection_policy
// order, until need are added, at most podsPerENI records per ENI. Only
// the /80 is a cloud call.
func slots6OnENIs(ctx context.Context, db Store, cloud eni.Client, node Node, cfg config.Config, p *pool, need int) (added int, blocked, err error) {
	if _, blocked, err = ensurePrefixes6(ctx, db, cloud, node, cfg, p); err != nil {
		return 0, blocked, err
	}
	cands, blocked6 := growCandidates(p, node, cfg, p.slots6Used, time.Now())
	blocked = cmp.Or(blocked, blocked6)
	for _, c := range cands {
		if added >= need {
			break
		}
		n, err := newSlots6(db, p, c.e.ID, min(need-added, podsPerENI(node, cfg)-c.used), time.Now())
		if err != nil {
			return added, blocked, err
		}
		added += n
	}
	return added, blocked, nil
}

// slots6Used is how many records of its /80s the ENI has: the pods it
// can carry at once in an IPv6-only prefix pool.
func (p pool) slots6Used(e store.ENI) int {
	n := 0
	for _, ip := range p.ips {
		if ip.ENIID == e.ID && ip.Prefix.IsValid() && inPrefixes(e.IPv6Prefixes, ip.Addr) {
			n++
		}
	}
	return n
}

// newSlots6 records, in one transaction, up to n new free records of the
// lowest addresses of the ENI's /80s that have none (unrecorded6), and adds
// them to p. It returns how many it recorded: 0 when the ENI has no /80
// or is gone from the store.
func newSlots6(db Store, p *pool, eniID string, n int, now time.Time) (int, error) {
	var made []store.IP
	err := db.Update(func(tx *store.WriteTx) error {
		e, err := tx.ENI(eniID)
		if errors.Is(err, store.ErrNotFound) {
			made = nil
			return nil
		}
		if err != nil {
			return err
		}
		ips, err := tx.IPs()
		if err != nil {
			return err
		}
		made = unrecorded6(ips, e, n, now)
		for _, ip := range made {
			if err := tx.PutIP(ip); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("record addresses of eni %s's /80: %w", eniID, err)
	}
	p.ips = append(p.ips, made...)
	return len(made), nil
}

// backedOff reports whether growing on e waits out a back-off of the ENI
// or its vSwitch.
func backedOff(p *pool, e store.ENI, now time.Time) bool {
	_, onENI := p.state.ActiveBackoff(store.ENIScope(e.ID), now)
	_, onVSwitch := p.state.ActiveBackoff(store.VSwitchScope(e.VSwitchID), now)
	return onENI || onVSwitch
}

// has6 reports whether the pool's record of the ENI id has a /80.
func (p pool) has6(id string) bool {
	for _, e := range p.enis {
		if e.ID == id {
			return len(e.IPv6Prefixes) > 0
		}
	}
	return false
}
