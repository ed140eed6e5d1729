package ipam

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/eni"
	"github.com/veni-cni/veni/store"
)

// Dual stack (ip_stack "dual"). Every pod holds one IPv4 and one IPv6 of
// the same ENI: Reserve takes both in its one transaction, Commit binds both
// in its, release frees both in its. No crash can split them, and no path
// hands out or frees one alone. The pool's unit is such a pair: an ENI
// offers min(its free IPv4, its free IPv6) pods, and grows both families
// together (AssignPrivateIpAddresses and AssignIpv6Addresses, or a
// CreateNetworkInterface with Ipv6AddressCount).
//
// The per-ENI cap is min(IPv4 slots, EniIpv6AddressQuantity). Terway falls
// back to IPv4 silently when an instance type gives fewer IPv6; veni caps
// the pool and says so (StackWarning): the daemon logs it at start and
// "veni status" shows it.

// ErrStackMismatch means the node's store was filled with one ip_stack
// and the configuration asks for another: an IPv4 pod has no IPv6 to keep,
// a dual pod's IPv6 would lose its pool.
var ErrStackMismatch = errors.New("a node's ip stack cannot change")

// perENIDual is how many pods one ENI carries in dual stack: the smaller
// of its secondary IPv4 and its IPv6 quota.
func perENIDual(node Node) int { return min(perENI(node), node.Limits.IPv6PerENI) }

// podsPerENI is how many pods (in prefix mode: address slots) one ENI
// carries with cfg's stack: its secondary IPv4 slots, its IPv6 quota on an
// IPv6-only node (in prefix mode too), the smaller of both in dual stack,
// its IPv4 slots in dual-stack prefix mode when its IPv6 quota has room
// for the /80.
func podsPerENI(node Node, cfg config.Config) int {
	switch {
	case prefix6Mode(cfg) && node.Limits.IPv6PerENI < prefix6sPerENI:
		return 0 // no room for the /80 every pod's IPv6 comes from
	case dualPrefix(cfg):
		return perENI(node) // IPv4 slots, /28s; the one /80 serves them all
	case v6Prefix(cfg):
		return node.Limits.IPv6PerENI // as in IPv6-only IP mode (prefix6.go says why)
	case cfg.DualStack():
		return perENIDual(node)
	case cfg.IPv6Only():
		return node.Limits.IPv6PerENI
	}
	return perENI(node)
}

// StackWarning says, in one sentence, why the pool is smaller than the
// instance type's IPv4 allows: dual stack on an instance type with fewer
// IPv6 than IPv4 per ENI (not in prefix mode: one /80 serves every pod of
// an ENI). "" when nothing is capped.
func StackWarning(node Node, cfg config.Config) string {
	if cfg.IPv6Only() && node.Limits.IPv6PerENI == 0 {
		return fmt.Sprintf("ip_stack ipv6: instance type %s gives no IPv6 per ENI: no pod can be added (use ip_stack ipv4 or an instance type with IPv6)",
			node.Limits.InstanceType)
	}
	if !cfg.DualStack() || node.Limits.IPv6PerENI >= perENI(node) || (dualPrefix(cfg) && node.Limits.IPv6PerENI > 0) {
		return ""
	}
	if node.Limits.IPv6PerENI == 0 {
		return fmt.Sprintf("ip_stack dual: instance type %s gives no IPv6 per ENI: no pod can be added (use ip_stack ipv4 or an instance type with IPv6)",
			node.Limits.InstanceType)
	}
	return fmt.Sprintf("ip_stack dual: instance type %s gives %d IPv6 but %d secondary IPv4 per ENI: each ENI carries only %d pods (Terway would silently give the rest IPv4 only)",
		node.Limits.InstanceType, node.Limits.IPv6PerENI, perENI(node), perENIDual(node))
}

// gateway6Of returns the vSwitch's IPv6 gateway: like IPv4, the /64's last
// address minus 2 (Terway derives it the same way; metadata's ipv6-gateway
// says the same).
func gateway6Of(cidr netip.Prefix) netip.Addr {
	if !cidr.IsValid() || !cidr.Addr().Is6() {
		return netip.Addr{}
	}
	b := cidr.Masked().Addr().As16()
	for i := cidr.Bits() / 8; i < 16; i++ {
		if i == cidr.Bits()/8 && cidr.Bits()%8 != 0 {
			b[i] |= byte(0xff >> (cidr.Bits() % 8))
			continue
		}
		b[i] = 0xff
	}
	return netip.AddrFrom16(b).Prev().Prev()
}

// stackOf returns the store's ip stack: the recorded one, else what its
// addresses are (both families: dual; IPv6 only: ipv6), else "" for a
// store that never held any.
func stackOf(tx *store.ReadTx) (string, error) {
	ps, err := tx.PoolState()
	if err != nil || ps.Stack != "" {
		return ps.Stack, err
	}
	ips, err := tx.IPs()
	if err != nil || len(ips) == 0 {
		return "", err
	}
	var has4, has6 bool
	for _, ip := range ips {
		has4, has6 = has4 || ip.Addr.Is4(), has6 || ip.Addr.Is6()
	}
	switch {
	case has4 && has6:
		return config.IPStackDual, nil
	case has6:
		return config.IPStackV6, nil
	}
	return config.IPStackV4, nil
}

func stackError(have, want string) error {
	return fmt.Errorf("node's store holds %s addresses but eni_conf ip_stack is %q: "+
		"set ip_stack back to %q, or drain the node, stop veni, remove its store (store_path, default %s) and start it again: %w",
		have, want, have, store.DefaultPath, ErrStackMismatch)
}

// checkStack returns an error wrapping ErrStackMismatch when the store's
// stack is not cfg's.
func checkStack(tx *store.ReadTx, cfg config.Config) error {
	have, err := stackOf(tx)
	if err != nil {
		return err
	}
	if have != "" && have != cfg.IPStack {
		return stackError(have, cfg.IPStack)
	}
	return nil
}

// pickFreePair returns, on a usable ENI with IPv6, the free IPv4 that has
// been free the longest among ENIs that also have a free IPv6 or a /80,
// and that ENI's longest-free IPv6, or with a /80 its lowest free address
// (lowest6: possibly a record not in the store yet); or an error wrapping
// ErrPoolEmpty.
func pickFreePair(tx *store.ReadTx) (v4, v6 store.IP, e store.ENI, err error) {
	enis, err := readyENIs(tx)
	if err != nil {
		return v4, v6, e, err
	}
	ips, err := tx.IPs()
	if err != nil {
		return v4, v6, e, err
	}
	now := time.Now()
	best4 := make(map[string]*store.IP)
	best6 := make(map[string]*store.IP)
	for i, ip := range ips {
		e, ok := enis[ip.ENIID]
		if !ok || !ip.Open(now) || !e.IPv6CIDR.IsValid() {
			continue
		}
		best := best4
		if ip.Addr.Is6() {
			best = best6
		}
		if b := best[ip.ENIID]; b == nil || ip.FreeSince.Before(b.FreeSince) {
			best[ip.ENIID] = &ips[i]
		}
	}
	var pick *store.IP
	for id, b := range best4 {
		if (best6[id] != nil || len(enis[id].IPv6Prefixes) > 0) && (pick == nil || b.FreeSince.Before(pick.FreeSince)) {
			pick = b
		}
	}
	if pick == nil {
		return v4, v6, e, emptyError(tx, now)
	}
	e = enis[pick.ENIID]
	if six, ok := lowest6(ips, e, now); ok {
		// The ENI's IPv6 come from its /80 (prefix6.go): the record is
		// made here when new, in the caller's transaction.
		return *pick, six, e, nil
	}
	return *pick, *best6[pick.ENIID], e, nil
}

// ipsByFamily counts an ENI's IPv4 and IPv6 records, free and all.
func (p pool) ipsByFamily(eniID string) (free4, all4, free6, all6 int) {
	for _, ip := range p.ips {
		if ip.ENIID != eniID {
			continue
		}
		free := 0
		if ip.Open(p.now) {
			free = 1
		}
		if ip.Addr.Is6() {
			free6, all6 = free6+free, all6+1
		} else {
			free4, all4 = free4+free, all4+1
		}
	}
	return free4, all4, free6, all6
}

// assignDualOnENIs grows owned ready ENIs with IPv6 by pairs, in
// eni_selection_policy order, until need more pods fit: each ENI is brought
// to the same number of IPv4 and IPv6 (a family left short by an earlier
// failed call is topped up first), within perENIDual.
func assignDualOnENIs(ctx context.Context, db Store, cloud eni.Client, node Node, cfg config.Config, p *pool, need int) (added int, blocked, err error) {
	// Slots used are pairs: an ENI full in one family only still has
	// the other to top up (the cap per ENI is checked below).
	cands, blocked := growCandidates(p, node, cfg, func(e store.ENI) int {
		_, all4, _, all6 := p.ipsByFamily(e.ID)
		return min(all4, all6)
	}, time.Now())
candidates:
	for _, c := range cands {
		if added >= need {
			break
		}
		if !c.e.IPv6CIDR.IsValid() {
			continue // made before dual stack, or its vSwitch has no IPv6
		}
		_, all4, _, all6 := p.ipsByFamily(c.e.ID)
		pairs := min(all4, all6)
		target := min(perENIDual(node), pairs+need-added)
		if target <= pairs {
			continue
		}
		for _, f := range []struct {
			what string
			n    int
			call func(k int) ([]netip.Addr, error)
		}{
			{"ips", target - all4, func(k int) ([]netip.Addr, error) { return cloud.AssignPrivateIPs(ctx, c.e.ID, k) }},
			{"ipv6s", target - all6, func(k int) ([]netip.Addr, error) { return cloud.AssignIPv6s(ctx, c.e.ID, k) }},
		} {
			if f.n <= 0 {
				continue
			}
			got, err := assignBatches(ctx, f.n, f.call)
			if aerr := addFreeIPs(db, c.e.ID, got, time.Now()); aerr != nil {
				return added, blocked, aerr
			}
			p.ips = appendFree(p.ips, c.e.ID, got)
			if err != nil {
				if berr := backoffFor(db, cfg, p, err, c.e.ID, c.e.VSwitchID); berr != nil {
					blocked = berr
					continue candidates
				}
				return added, blocked, fmt.Errorf("assign %d %s to eni %s: %w", f.n, f.what, c.e.ID, err)
			}
		}
		_, all4, _, all6 = p.ipsByFamily(c.e.ID)
		added += min(all4, all6) - pairs
	}
	return added, blocked, nil
}

// assignBatches asks for n addresses in calls of at most
// eni.MaxIPsPerAssign and returns what it got, with the first error.
func assignBatches(ctx context.Context, n int, call func(k int) ([]netip.Addr, error)) ([]netip.Addr, error) {
	var out []netip.Addr
	for len(out) < n {
		got, err := call(min(n-len(out), eni.MaxIPsPerAssign))
		out = append(out, got...)
		if err != nil {
			return out, err
		}
		if len(got) == 0 {
			return out, fmt.Errorf("cloud assigned no address: %w", eni.ErrQuotaExceeded)
		}
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
	}
	return out, nil
}

func appendFree(ips []store.IP, eniID string, addrs []netip.Addr) []store.IP {
	for _, a := range addrs {
		ips = append(ips, store.IP{Addr: a, ENIID: eniID, State: store.IPFree})
	}
	return ips
}

// splitFamilies counts the IPv4 and IPv6 of addrs.
func splitFamilies(addrs []netip.Addr) (four, six int) {
	for _, a := range addrs {
		if a.Is6() {
			six++
		} else {
			four++
		}
	}
	return four, six
}

// pairsOf counts the pods a set of an ENI's new addresses makes room for.
func pairsOf(addrs []netip.Addr) int { return min(splitFamilies(addrs)) }

// repairHalves mends what store.Check reports as a half stack or an owner
// without allocation, which no ADD, DEL or GC leaves (they write both
// halves in one transaction) but a damaged or hand-edited store can:
//
//   - an IPv6 held by an owner whose allocation, on the same ENI and in
//     the same state, has no IPv6 rejoins that allocation (the pod is whole
//     again, and the one release path frees both);
//   - an address held by an owner with no allocation, or one that names
//     another address, is freed, unless a pod on the host routes it (then
//     it stays held, and the event says so).
//
// It returns the addresses it freed and rejoined. A dual-stack allocation
// that lacks its IPv6 altogether is left as it is (its pod runs on IPv4;
// taking its IPv4 away would break it): "veni ipam verify" reports it.
func repairHalves(ctx context.Context, db Store, host *hostView, now time.Time) (freed, rejoined []netip.Addr, err error) {
	type orphan struct {
		ip       store.IP
		alloc    store.Allocation
		hasAlloc bool
	}
	var found []orphan
	err = db.View(func(tx *store.ReadTx) error {
		ips, err := tx.IPs()
		if err != nil {
			return err
		}
		allocs, err := tx.Allocations()
		if err != nil {
			return err
		}
		byKey := make(map[store.OwnerKey]store.Allocation, len(allocs))
		for _, a := range allocs {
			byKey[a.Key] = a
		}
		for _, ip := range ips {
			if ip.Owner == "" {
				continue
			}
			a, ok := byKey[ip.Owner]
			if ok && (a.IP == ip.Addr || a.IP6 == ip.Addr) {
				continue
			}
			found = append(found, orphan{ip: ip, alloc: a, hasAlloc: ok})
		}
		return nil
	})
	if err != nil || len(found) == 0 {
		return nil, nil, err
	}
	var keep []netip.Addr
	for _, o := range found {
		if o.hasAlloc && o.ip.Addr.Is6() && !o.alloc.IP6.IsValid() && o.alloc.ENIID == o.ip.ENIID && o.alloc.State == o.ip.State {
			continue // rejoined below, whatever the host says
		}
		if _, used, herr := host.owner(ctx, o.ip.Addr); herr != nil || used {
			keep = append(keep, o.ip.Addr)
		}
	}
	err = db.Update(func(tx *store.WriteTx) error {
		freed, rejoined = nil, nil
		for _, o := range found {
			cur, err := tx.IP(o.ip.Addr)
			if err != nil || cur.Owner != o.ip.Owner || cur.State != o.ip.State {
				continue // changed since: the next pass looks again
			}
			a, aerr := tx.Allocation(cur.Owner)
			switch {
			case aerr == nil && (a.IP == cur.Addr || a.IP6 == cur.Addr):
				continue
			case aerr == nil && cur.Addr.Is6() && !a.IP6.IsValid() && a.ENIID == cur.ENIID && a.State == cur.State:
				a.IP6 = cur.Addr
				if err := tx.PutAllocation(a); err != nil {
					return err
				}
				rejoined = append(rejoined, cur.Addr)
			case slices.Contains(keep, cur.Addr):
				continue
			default:
				cur.State, cur.Owner, cur.FreeSince = store.IPFree, "", now
				if err := tx.PutIP(cur); err != nil {
					return err
				}
				freed = append(freed, cur.Addr)
			}
		}
		if len(freed)+len(rejoined)+len(keep) == 0 {
			return nil
		}
		_, err := tx.AppendEvent(store.Event{
			Time: now, Level: slog.LevelWarn, Reason: "HalfStackRepaired",
			Message: fmt.Sprintf("addresses held without an allocation naming them: freed %v, rejoined to their pod's allocation %v, kept (a pod on the host routes them) %v", freed, rejoined, keep),
		})
		return err
	})
	return freed, rejoined, err
}
