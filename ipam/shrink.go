package ipam

import (
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

// reclaimIdle returns free IPs above max_pool_size that have been free for
// idle_ip_reclaim_after to the cloud, at most idle_ip_reclaim_batch_size per
// run. It prefers IPs on ENIs with the fewest held IPs, so that ENIs empty
// out and can be deleted.
func reclaimIdle(ctx context.Context, db Store, cloud eni.Client, node Node, cfg config.Config, p pool, now time.Time, rep *Report) error {
	idle, _ := countPool(p)
	excess := idle - cfg.MaxPoolSize
	if cfg.IdleReclaimBatch > 0 {
		excess = min(excess, cfg.IdleReclaimBatch)
	}
	if excess <= 0 {
		return nil
	}
	held := make(map[string]int)
	owned := make(map[string]bool)
	for _, e := range p.enis {
		owned[e.ID] = e.Owned && e.State == store.ENIReady && e.ID != node.PrimaryENIID && !e.Dedicated()
		_, held[e.ID] = p.ipsOn(e.ID)
	}
	var cands []store.IP
	for _, ip := range p.ips {
		// Only on ENIs veni created: an adopted ENI's addresses belong
		// to whoever made it.
		if owned[ip.ENIID] && ip.Open(now) && now.Sub(ip.FreeSince) >= time.Duration(cfg.IdleReclaimAfter) {
			cands = append(cands, ip)
		}
	}
	slices.SortStableFunc(cands, func(a, b store.IP) int {
		if d := held[a.ENIID] - held[b.ENIID]; d != 0 {
			return d
		}
		return a.Addr.Compare(b.Addr)
	})
	if p.state.Stack == config.IPStackDual {
		// excess counts pods: give back as many of each family.
		var v4, v6 []store.IP
		for _, c := range cands {
			if c.Addr.Is6() {
				v6 = append(v6, c)
			} else {
				v4 = append(v4, c)
			}
		}
		cands = append(v4[:min(excess, len(v4))], v6[:min(excess, len(v6))]...)
	} else {
		cands = cands[:min(excess, len(cands))]
	}

	// Out of the store first: from here no CNI can reserve them.
	var gone []store.IP
	err := db.Update(func(tx *store.WriteTx) error {
		for _, c := range cands {
			ip, err := tx.IP(c.Addr)
			if err != nil || !ip.Open(now) {
				continue
			}
			if err := tx.DeleteIP(c.Addr); err != nil {
				return err
			}
			gone = append(gone, ip)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reclaim idle ips: %w", err)
	}
	byENI := make(map[string][]netip.Addr)
	for _, ip := range gone {
		byENI[ip.ENIID] = append(byENI[ip.ENIID], ip.Addr)
	}
	var errs []error
	for _, id := range slices.Sorted(maps.Keys(byENI)) {
		// Sorted: IPv4 first, then IPv6, so a chunk is of one family.
		addrs := slices.SortedFunc(slices.Values(byENI[id]), netip.Addr.Compare)
		four := slices.IndexFunc(addrs, netip.Addr.Is6)
		if four < 0 {
			four = len(addrs)
		}
		chunks := slices.Collect(slices.Chunk(addrs[:four], eni.MaxIPsPerAssign))
		chunks = append(chunks, slices.Collect(slices.Chunk(addrs[four:], eni.MaxIPsPerAssign))...)
		for _, chunk := range chunks {
			unassign := cloud.UnassignPrivateIPs
			if chunk[0].Is6() {
				unassign = cloud.UnassignIPv6s
			}
			if err := unassign(ctx, id, chunk); err != nil {
				// Still assigned in the cloud: put them back so they are
				// used, not leaked; the next run tries again.
				errs = append(errs, fmt.Errorf("unassign %v from eni %s: %w", chunk, id, err))
				errs = appendErr(errs, addFreeIPs(db, id, chunk, now))
				continue
			}
			appendEvent(db, slog.LevelInfo, "IdleIPReleased", "eni/"+id, fmt.Sprintf("returned %d idle ips to the cloud: %v", len(chunk), chunk))
			rep.ReleasedIPs = append(rep.ReleasedIPs, chunk...)
		}
	}
	return errors.Join(errs...)
}

// deleteEmptyENIs deletes owned ENIs that hold no reserved or bound IP when
// the pool does not need them: their free IPs, if any, are all above
// max_pool_size and have been free for idle_ip_reclaim_after, and without
// them the node keeps min_eni ENIs. It also finishes ENIs left draining. The primary ENI
// and ENIs veni did not create are never deleted.
func deleteEmptyENIs(ctx context.Context, db Store, cloud eni.Client, node Node, cfg config.Config, p pool, now time.Time, rep *Report) error {
	idle, _ := countPool(p)
	enis := 0
	for _, e := range p.enis {
		if e.ID != node.PrimaryENIID {
			enis++
		}
	}
	var errs []error
	for _, e := range p.enis {
		switch {
		case !e.Owned || e.ID == node.PrimaryENIID:
			continue
		case e.Dedicated():
			continue // a pod's own ENI is its pool's (reconcileExclusive, reclaimMembers)
		case e.Kind == store.ENITrunk && TrunkEnabled(node, cfg):
			continue // the trunk stays while the node uses trunking: its members ride it
		}
		free, held := p.ipsOn(e.ID)
		if held > 0 {
			continue
		}
		if e.State == store.ENIReady {
			// Like Terway, an ENI goes only when all its free IPs are
			// excess above max_pool_size (usually: reclaimIdle took them
			// all), never to shrink a pool that is within its bounds.
			excess := free == 0 || idle-free >= cfg.MaxPoolSize
			// ipv4_prefix_count prefixes stay delegated (prefix mode).
			keepPrefixes := cfg.PrefixMode() && len(e.Prefixes) > 0 && p.prefixes()-len(e.Prefixes) < cfg.IPv4PrefixCount
			if !excess || keepPrefixes || enis-1 < cfg.MinENI || !idleFor(p, e.ID, now, time.Duration(cfg.IdleReclaimAfter)) {
				continue
			}
			if err := markDraining(db, e.ID); errors.Is(err, store.ErrInUse) {
				continue // an ADD reserved on it after the snapshot: it stays
			} else if err != nil {
				errs = append(errs, err)
				continue
			}
			idle -= free
		} else if e.State != store.ENIDraining {
			continue
		}
		if err := removeENI(ctx, db, cloud, node, cfg, e.ID); err != nil {
			errs = append(errs, err)
			continue
		}
		enis--
		rep.DeletedENIs = append(rep.DeletedENIs, e.ID)
		appendEvent(db, slog.LevelInfo, "ENIDeleted", "eni/"+e.ID, fmt.Sprintf("deleted empty eni %s", e.ID))
	}
	return errors.Join(errs...)
}

// idleFor reports whether every IP of the ENI has been free for d.
func idleFor(p pool, eniID string, now time.Time, d time.Duration) bool {
	for _, ip := range p.ips {
		if ip.ENIID == eniID && now.Sub(ip.FreeSince) < d {
			return false
		}
	}
	return true
}

// removeENI detaches a draining ENI, waits until it is Available, deletes
// it, then forgets it. An ENI already gone from the cloud is just forgotten.
func removeENI(ctx context.Context, db Store, cloud eni.Client, node Node, cfg config.Config, id string) error {
	// markDraining refused ENIs with held addresses and a draining ENI
	// hands none out, so this holds; it is checked again because detaching
	// an ENI under a pod is the one thing this must never do.
	err := db.View(func(tx *store.ReadTx) error {
		e, err := tx.ENI(id)
		if err != nil {
			return err
		}
		if e.State != store.ENIDraining {
			return fmt.Errorf("delete eni %s: it is %s, not draining: %w", id, e.State, store.ErrInUse)
		}
		ips, err := tx.IPs()
		for _, ip := range ips {
			if ip.ENIID == id && ip.State != store.IPFree {
				return fmt.Errorf("delete eni %s: %s is %s by %s: %w", id, ip.Addr, ip.State, ip.Owner, store.ErrInUse)
			}
		}
		return err
	})
	if err != nil {
		return err
	}
	got, err := cloud.ENIs(ctx, eni.ENIFilter{IDs: []string{id}})
	if err != nil {
		return fmt.Errorf("delete eni %s: %w", id, err)
	}
	if len(got) == 1 {
		if got[0].Status != eni.StatusAvailable {
			err := cloud.DetachENI(ctx, id, node.InstanceID)
			if err != nil && !errors.Is(err, eni.ErrInvalidState) && !errors.Is(err, eni.ErrNotFound) {
				return fmt.Errorf("detach eni %s from %s: %w", id, node.InstanceID, err)
			}
			if _, err := waitENIStatus(ctx, cloud, cfg, id, eni.StatusAvailable); err != nil {
				return err
			}
		}
		if err := cloud.DeleteENI(ctx, id); err != nil && !errors.Is(err, eni.ErrNotFound) {
			return fmt.Errorf("delete eni %s: %w", id, err)
		}
	}
	return db.Update(func(tx *store.WriteTx) error { return tx.DeleteENI(id) })
}
