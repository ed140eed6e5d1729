package ipam

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/eni"
	"github.com/veni-cni/veni/store"
)

// Prefix mode (enable_ip_prefix). The pool's cloud unit is a delegated /28:
// one AssignPrivateIpAddresses call with Ipv4PrefixCount brings up to ten of
// them, 160 pod addresses, where the same call brings ten secondary IPs.
// Each address of a prefix is an ordinary IP record tagged with its prefix,
// and the prefix is recorded on its ENI, so reservation, binding, release,
// GC, crash recovery and "veni ipam verify" treat prefix addresses as they
// treat secondary IPs, and no address can be bound twice. What differs is
// the cloud side: a refill asks for prefixes, and a prefix goes back to the
// cloud only when every address of it is free and idle.

// PrefixSize is how many pod addresses one delegated /28 gives.
const PrefixSize = 1 << (32 - eni.PrefixBits)

// prefixesFor is how many prefixes cover want addresses, at least one, at
// most slots and one call's worth.
func prefixesFor(want, slots int) int {
	n := (want + PrefixSize - 1) / PrefixSize
	return max(min(n, slots, eni.MaxPrefixesPerAssign), min(1, slots))
}

// prefixAddrs returns every address of p, all of which may be pods' (the
// cloud routes each of them to the ENI).
func prefixAddrs(p netip.Prefix) []netip.Addr {
	var out []netip.Addr
	for a := p.Masked().Addr(); p.Contains(a); a = a.Next() {
		out = append(out, a)
	}
	return out
}

// prefixOf returns the prefix of prefixes that holds a, or the zero Prefix.
func prefixOf(prefixes []netip.Prefix, a netip.Addr) netip.Prefix {
	for _, p := range prefixes {
		if p.Contains(a) {
			return p
		}
	}
	return netip.Prefix{}
}

// cloudAddrs returns the pod addresses the cloud gives an ENI: its
// secondary IPs (not primary) and every address of its prefixes.
func cloudAddrs(c eni.ENI, primary netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, a := range c.PrivateIPs {
		if a != primary && a != c.PrimaryIP {
			out = append(out, a)
		}
	}
	for _, p := range c.Prefixes {
		out = append(out, prefixAddrs(p)...)
	}
	return append(out, c.IPv6s...)
}

// knownAddrs is what the pool may record of an ENI: cloudAddrs, and the
// addresses of its /80s that pods on the host use (a /80's others are
// recorded only as they are handed out), with every prefix they are tagged
// with.
func knownAddrs(ctx context.Context, c eni.ENI, primary netip.Addr, host *hostView) ([]netip.Addr, []netip.Prefix) {
	// A host that cannot be read only delays recovering these: none of
	// them is recorded free meanwhile (recordCloudIPs says why for the rest).
	used, _ := host.usedIn(ctx, c.IPv6Prefixes)
	return append(cloudAddrs(c, primary), used...), append(slices.Clone(c.Prefixes), c.IPv6Prefixes...)
}

func mergePrefixes(have, add []netip.Prefix) []netip.Prefix {
	out := slices.Clone(have)
	for _, p := range add {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// notePrefixes records prefixes on the ENI eniID in tx (a no-op for an ENI
// the store does not have yet: makeReady writes them with it): IPv4 /28s
// in Prefixes, IPv6 /80s in IPv6Prefixes.
func notePrefixes(tx *store.WriteTx, eniID string, prefixes []netip.Prefix) error {
	if len(prefixes) == 0 {
		return nil
	}
	e, err := tx.ENI(eniID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var v4, v6 []netip.Prefix
	for _, p := range prefixes {
		if p.Addr().Is4() {
			v4 = append(v4, p)
		} else {
			v6 = append(v6, p)
		}
	}
	m4, m6 := mergePrefixes(e.Prefixes, v4), mergePrefixes(e.IPv6Prefixes, v6)
	if len(m4) == len(e.Prefixes) && len(m6) == len(e.IPv6Prefixes) {
		return nil
	}
	e.Prefixes, e.IPv6Prefixes = m4, m6
	return tx.PutENI(e)
}

// slotsUsed is how many of an ENI's address slots (EniPrivateIpAddressQuantity
// minus the primary) its prefixes and secondary IPs take: a prefix is one
// slot, as in the cloud.
func (p pool) slotsUsed(e store.ENI) int {
	n := len(e.Prefixes)
	for _, ip := range p.ips {
		if ip.ENIID == e.ID && !ip.Prefix.IsValid() {
			n++
		}
	}
	return n
}

// ErrModeMismatch means the node's store was filled in one pool mode (IP or
// prefix) and the configuration asks for the other. Terway refuses the same
// switch (PrefixModeImmutable): the addresses pods hold came in the other
// unit and cannot be converted in place.
var ErrModeMismatch = errors.New("a node's pool mode cannot change")

// modeOf returns the store's pool mode: the recorded one, else what its
// addresses are (a store from before prefix mode holds secondary IPs),
// else "" for a store that never held any.
func modeOf(tx *store.ReadTx) (string, error) {
	ps, err := tx.PoolState()
	if err != nil || ps.Mode != "" {
		return ps.Mode, err
	}
	ips, err := tx.IPs()
	if err != nil || len(ips) == 0 {
		return "", err
	}
	if ips[0].Prefix.IsValid() {
		return config.PoolModePrefix, nil
	}
	return config.PoolModeIP, nil
}

func modeError(have, want string) error {
	return fmt.Errorf("node's store is in %s mode but eni_conf enable_ip_prefix asks for %s mode (Terway: PrefixModeImmutable): "+
		"set enable_ip_prefix back, or drain the node, stop veni, remove its store (store_path, default %s) and start it again: %w",
		have, want, store.DefaultPath, ErrModeMismatch)
}

// checkMode returns an error wrapping ErrModeMismatch when the store's mode
// is not cfg's.
func checkMode(tx *store.ReadTx, cfg config.Config) error {
	have, err := modeOf(tx)
	if err != nil {
		return err
	}
	if have != "" && have != cfg.PoolMode() {
		return modeError(have, cfg.PoolMode())
	}
	return nil
}

// CheckMode returns an error wrapping ErrModeMismatch when the store is in
// the other pool mode than cfg's; a store that never held an address takes
// either. The daemon calls it at start and on every pass.
func CheckMode(db Store, cfg config.Config) error {
	return db.View(func(tx *store.ReadTx) error { return checkForLife(tx, cfg) })
}

// checkForLife checks what a node keeps for life against cfg: its pool
// mode (ErrModeMismatch), its ip stack (ErrStackMismatch), then its ENI
// mode, shared or exclusive (ErrModeMismatch).
func checkForLife(tx *store.ReadTx, cfg config.Config) error {
	if err := checkMode(tx, cfg); err != nil {
		return err
	}
	if err := checkStack(tx, cfg); err != nil {
		return err
	}
	return checkENIMode(tx, cfg)
}

// checkAndNoteMode is CheckMode, and records the mode of a store that holds
// addresses of cfg's mode but predates the record (so ADDs need not infer
// it from the addresses each time). A store that never held an address
// is left to the pool's first cloud call (EnsureMode).
func checkAndNoteMode(db Store, cfg config.Config) error {
	var have string
	var recorded bool
	err := db.View(func(tx *store.ReadTx) error {
		ps, err := tx.PoolState()
		if err != nil {
			return err
		}
		recorded = ps.Mode != "" && ps.Stack != "" && ps.ENIMode != ""
		if have, err = modeOf(tx); err != nil {
			return err
		}
		if have != "" && have != cfg.PoolMode() {
			return modeError(have, cfg.PoolMode())
		}
		if err := checkStack(tx, cfg); err != nil {
			return err
		}
		return checkENIMode(tx, cfg)
	})
	if err != nil || recorded || have == "" {
		return err
	}
	return EnsureMode(db, cfg)
}

// EnsureMode is CheckMode, and records cfg's pool mode in a store that has
// none. The pool calls it before it asks the cloud for addresses: from
// then on the node keeps its mode.
func EnsureMode(db Store, cfg config.Config) error {
	return db.Update(func(tx *store.WriteTx) error {
		if err := checkMode(&tx.ReadTx, cfg); err != nil {
			return err
		}
		if err := checkStack(&tx.ReadTx, cfg); err != nil {
			return err
		}
		if err := checkENIMode(&tx.ReadTx, cfg); err != nil {
			return err
		}
		ps, err := tx.PoolState()
		if err != nil || (ps.Mode == cfg.PoolMode() && ps.Stack == cfg.IPStack && ps.ENIMode == cfg.ENIMode()) {
			return err
		}
		ps.Mode, ps.Stack, ps.ENIMode = cfg.PoolMode(), cfg.IPStack, cfg.ENIMode()
		return tx.PutPoolState(ps)
	})
}

// assignPrefixesOnENIs delegates prefixes to owned ready ENIs with free
// slots, in eni_selection_policy order, until need addresses are added.
//
// On a dual-stack node (prefix6.go) every such ENI first gets its /80, and
// an ENI left without one adds no pod: its IPv4 prefixes are not asked for.
func assignPrefixesOnENIs(ctx context.Context, db Store, cloud eni.Client, node Node, cfg config.Config, p *pool, need int) (added int, blocked, err error) {
	dual := dualPrefix(cfg)
	if dual {
		if added, blocked, err = ensurePrefixes6(ctx, db, cloud, node, cfg, p); err != nil || added >= need {
			return added, blocked, err
		}
	}
	cands, blocked6 := growCandidates(p, node, cfg, p.slotsUsed, time.Now())
	blocked = cmp.Or(blocked, blocked6)
	for _, c := range cands {
		if dual && !p.has6(c.e.ID) {
			continue // no /80 (its vSwitch has no IPv6, or the call failed): IPv4 alone is no pod
		}
		for added < need && c.used < perENI(node) {
			n := prefixesFor(need-added, perENI(node)-c.used)
			if err := markDelegating(db, time.Now()); err != nil {
				return added, blocked, err
			}
			got, err := cloud.AssignPrefixes(ctx, c.e.ID, n)
			if err != nil {
				// The cloud answered: nothing to look for.
				_ = markDelegating(db, time.Time{})
				if berr := backoffFor(db, cfg, p, err, c.e.ID, c.e.VSwitchID); berr != nil {
					blocked = berr
					break
				}
				return added, blocked, fmt.Errorf("assign %d prefixes to eni %s: %w", n, c.e.ID, err)
			}
			var addrs []netip.Addr
			for _, pfx := range got {
				addrs = append(addrs, prefixAddrs(pfx)...)
			}
			// No pod can use an address of a prefix the cloud just
			// delegated: host is nil.
			rec, err := recordCloudIPs(ctx, db, c.e.ID, addrs, got, time.Now(), nil)
			if err != nil {
				return added, blocked, err
			}
			if err := markDelegating(db, time.Time{}); err != nil {
				return added, blocked, err
			}
			added += rec.free
			c.used += len(got)
			c.e.Prefixes = mergePrefixes(c.e.Prefixes, got)
			for i := range p.enis {
				if p.enis[i].ID == c.e.ID {
					p.enis[i].Prefixes = c.e.Prefixes
				}
			}
		}
		if added >= need {
			break
		}
	}
	return added, blocked, nil
}

// reclaimIdlePrefixes gives prefixes back to the cloud when the pool has
// more than max_pool_size free addresses: only prefixes on ENIs veni
// created whose every recorded address is free and has been for
// idle_ip_reclaim_after, and only while the free addresses left stay at
// or above max_pool_size. idle_ip_reclaim_batch_size bounds the addresses
// returned per run, rounded up to one prefix.
func reclaimIdlePrefixes(ctx context.Context, db Store, cloud eni.Client, node Node, cfg config.Config, p pool, now time.Time, rep *Report) error {
	idle, _ := countPool(p)
	budget := idle - cfg.MaxPoolSize
	if budget < PrefixSize {
		return nil
	}
	maxPrefixes := budget / PrefixSize
	if cfg.IdleReclaimBatch > 0 {
		maxPrefixes = min(maxPrefixes, max(cfg.IdleReclaimBatch/PrefixSize, 1))
	}
	// ipv4_prefix_count is a floor.
	maxPrefixes = min(maxPrefixes, p.prefixes()-cfg.IPv4PrefixCount)
	if maxPrefixes <= 0 {
		return nil
	}
	type cand struct {
		eni  string
		pfx  netip.Prefix
		held int // addresses pods hold on the ENI: emptiest first, so ENIs empty out
	}
	var cands []cand
	for _, e := range p.enis {
		if !e.Owned || e.State != store.ENIReady || e.ID == node.PrimaryENIID {
			continue
		}
		_, held := p.ipsOn(e.ID)
		for _, pfx := range e.Prefixes {
			if prefixIdle(p, e.ID, pfx, now, time.Duration(cfg.IdleReclaimAfter)) {
				cands = append(cands, cand{e.ID, pfx, held})
			}
		}
	}
	slices.SortStableFunc(cands, func(a, b cand) int {
		if d := a.held - b.held; d != 0 {
			return d
		}
		return a.pfx.Addr().Compare(b.pfx.Addr())
	})
	cands = cands[:min(maxPrefixes, len(cands))]

	// Out of the store first, addresses and prefix in one transaction:
	// from here no CNI can reserve them. A prefix one of whose addresses
	// was reserved since the snapshot stays.
	type taken struct {
		pfx netip.Prefix
		ips []store.IP
	}
	gone := make(map[string][]taken)
	err := db.Update(func(tx *store.WriteTx) error {
		for _, c := range cands {
			ips, ok, err := freePrefixIPs(tx, c.eni, c.pfx)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			for _, ip := range ips {
				if err := tx.DeleteIP(ip.Addr); err != nil {
					return err
				}
			}
			e, err := tx.ENI(c.eni)
			if err != nil {
				return err
			}
			e.Prefixes = slices.DeleteFunc(e.Prefixes, func(q netip.Prefix) bool { return q == c.pfx })
			if err := tx.PutENI(e); err != nil {
				return err
			}
			gone[c.eni] = append(gone[c.eni], taken{c.pfx, ips})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reclaim idle prefixes: %w", err)
	}
	var errs []error
	for _, id := range slices.Sorted(maps.Keys(gone)) {
		for chunk := range slices.Chunk(gone[id], eni.MaxPrefixesPerAssign) {
			var pfxs []netip.Prefix
			for _, t := range chunk {
				pfxs = append(pfxs, t.pfx)
			}
			if err := cloud.UnassignPrefixes(ctx, id, pfxs); err != nil {
				// Still delegated in the cloud: put them back so they
				// are used, not leaked; the next run tries again.
				errs = append(errs, fmt.Errorf("unassign prefixes %v from eni %s: %w", pfxs, id, err))
				errs = appendErr(errs, db.Update(func(tx *store.WriteTx) error {
					if err := notePrefixes(tx, id, pfxs); err != nil {
						return err
					}
					for _, t := range chunk {
						for _, ip := range t.ips {
							if _, err := tx.IP(ip.Addr); err == nil {
								continue
							}
							if err := tx.PutIP(ip); err != nil {
								return err
							}
						}
					}
					return nil
				}))
				continue
			}
			var n int
			for _, t := range chunk {
				for _, ip := range t.ips {
					rep.ReleasedIPs = append(rep.ReleasedIPs, ip.Addr)
				}
				n += len(t.ips)
			}
			rep.ReleasedPrefixes = append(rep.ReleasedPrefixes, pfxs...)
			appendEvent(db, slog.LevelInfo, "IdlePrefixReleased", "eni/"+id, fmt.Sprintf("returned %d idle prefixes (%d addresses) to the cloud: %v", len(pfxs), n, pfxs))
		}
	}
	return errors.Join(errs...)
}

// prefixIdle reports whether every recorded address of pfx on the ENI is
// free and has been for d.
func prefixIdle(p pool, eniID string, pfx netip.Prefix, now time.Time, d time.Duration) bool {
	for _, ip := range p.ips {
		if ip.ENIID != eniID || ip.Prefix != pfx {
			continue
		}
		if !ip.Open(now) || now.Sub(ip.FreeSince) < d {
			return false
		}
	}
	return true
}

// freePrefixIPs returns the recorded addresses of pfx on the ENI, and
// whether all of them are free, in tx.
func freePrefixIPs(tx *store.WriteTx, eniID string, pfx netip.Prefix) ([]store.IP, bool, error) {
	var out []store.IP
	for _, a := range prefixAddrs(pfx) {
		ip, err := tx.IP(a)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, false, err
		}
		if ip.ENIID != eniID || ip.Prefix != pfx || !ip.Open(time.Now()) {
			return nil, false, nil
		}
		out = append(out, ip)
	}
	return out, true, nil
}

// prefixes counts the prefixes delegated to usable ENIs.
func (p pool) prefixes() int {
	n := 0
	for _, e := range p.enis {
		if usable(e) {
			n += len(e.Prefixes)
		}
	}
	return n
}

// forgetPrefixes drops from the ENI's record, in tx, the prefixes of
// either family (/28s, /80s) the cloud no longer lists (inCloud) that no
// IP record is tagged with any more.
func forgetPrefixes(tx *store.WriteTx, eniID string, inCloud []netip.Prefix) error {
	e, err := tx.ENI(eniID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil || len(e.Prefixes)+len(e.IPv6Prefixes) == 0 {
		return err
	}
	ips, err := tx.IPs()
	if err != nil {
		return err
	}
	tagged := make(map[netip.Prefix]bool)
	for _, ip := range ips {
		if ip.Prefix.IsValid() {
			tagged[ip.Prefix] = true
		}
	}
	gone := func(p netip.Prefix) bool { return !slices.Contains(inCloud, p) && !tagged[p] }
	keep4 := slices.DeleteFunc(slices.Clone(e.Prefixes), gone)
	keep6 := slices.DeleteFunc(slices.Clone(e.IPv6Prefixes), gone)
	if len(keep4) == len(e.Prefixes) && len(keep6) == len(e.IPv6Prefixes) {
		return nil
	}
	e.Prefixes, e.IPv6Prefixes = keep4, keep6
	return tx.PutENI(e)
}

// markDelegating sets (or, with the zero time, clears) the pool state's
// DelegatingSince.
func markDelegating(db Store, t time.Time) error {
	return db.Update(func(tx *store.WriteTx) error {
		ps, err := tx.PoolState()
		if err != nil || ps.DelegatingSince.Equal(t) {
			return err
		}
		ps.DelegatingSince = t
		return tx.PutPoolState(ps)
	})
}
