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

// syncGrace keeps a free IP the cloud does not list yet: DescribeNetwork
// Interfaces is eventually consistent and may lag an assignment.
const syncGrace = time.Minute

// Report says what one Reconcile did.
type Report struct {
	LeaseHeld   bool          // another process holds the allocator lease; nothing was done
	Idle, Used  int           // free and held IPs on ready ENIs afterwards
	AddedIPs    int           // assigned by the cloud to top the pool up
	SyncedIPs   []netip.Addr  // on our ENIs in the cloud, missing from the store: added as free
	DroppedIPs  []netip.Addr  // free in the store, gone from the cloud: dropped
	LostIPs     []netip.Addr  // held by a pod but gone from the cloud: the VPC no longer routes them
	ReleasedIPs []netip.Addr  // idle above max_pool_size: returned to the cloud
	AdoptedENIs []string      // attached, tagged by veni, unknown to the store
	DeletedENIs []string      // owned, empty and above need
	Blocked     error         // why the pool could not grow (ErrBackoff, ErrPoolExhausted), if it could not
	Errors      []error       // steps that failed; the next Reconcile retries them
	Took        time.Duration // wall time
}

// Reconcile is the daemon's pool maintenance, run on a timer and on store
// writes. Under the allocator lease it syncs the store with the cloud, tops
// the pool up to min_pool_size (and to ip_warm_up_size once), returns IPs
// idle above max_pool_size for idle_ip_reclaim_after to the cloud (at most
// idle_ip_reclaim_batch_size per run) and deletes owned ENIs that hold no
// reserved or bound IP once all their IPs are above max_pool_size (keeping
// min_eni ENIs).
// It never touches the primary ENI or ENIs veni did not create.
//
// Failures of single steps are collected in Report.Errors; the returned
// error is for failures that stop the whole run.
func Reconcile(ctx context.Context, db Store, cloud eni.Client, node Node, cfg config.Config, now time.Time) (Report, error) {
	start := time.Now()
	var rep Report
	release, err := acquireAllocator(db, node, cfg)
	if errors.Is(err, store.ErrLeaseHeld) {
		rep.LeaseHeld = true
		return rep, nil
	}
	if err != nil {
		return rep, err
	}
	defer release()

	if err := syncCloud(ctx, db, cloud, node, cfg, now, &rep); err != nil {
		return rep, err
	}
	p, err := snapshot(db)
	if err != nil {
		return rep, err
	}
	idle, used := countPool(p)
	need := cfg.MinPoolSize - idle
	warmUp := !p.state.WarmedUp && cfg.IPWarmUpSize > 0
	if warmUp {
		need = max(need, cfg.IPWarmUpSize-idle-used)
	}
	if need > 0 {
		rep.AddedIPs, err = grow(ctx, db, cloud, node, cfg, need)
		switch {
		case errors.Is(err, ErrBackoff) || errors.Is(err, ErrPoolExhausted):
			rep.Blocked = err
		case err != nil:
			rep.Errors = append(rep.Errors, err)
		}
	}
	if warmUp && rep.AddedIPs >= need {
		rep.Errors = appendErr(rep.Errors, db.Update(func(tx *store.WriteTx) error {
			ps, err := tx.PoolState()
			if err != nil {
				return err
			}
			ps.WarmedUp = true
			return tx.PutPoolState(ps)
		}))
	}
	if p, err = snapshot(db); err != nil {
		return rep, err
	}
	rep.Errors = appendErr(rep.Errors, reclaimIdle(ctx, db, cloud, node, cfg, p, now, &rep))
	if p, err = snapshot(db); err != nil {
		return rep, err
	}
	rep.Errors = appendErr(rep.Errors, deleteEmptyENIs(ctx, db, cloud, node, cfg, p, now, &rep))

	err = db.Update(func(tx *store.WriteTx) error {
		ps, err := tx.PoolState()
		if err != nil {
			return err
		}
		ps.MinIdle, ps.MaxIdle, ps.UpdatedAt = cfg.MinPoolSize, cfg.MaxPoolSize, now
		ps.PruneBackoffs(now)
		return tx.PutPoolState(ps)
	})
	if err != nil {
		return rep, err
	}
	if p, err = snapshot(db); err != nil {
		return rep, err
	}
	rep.Idle, rep.Used = countPool(p)
	rep.Took = time.Since(start)
	return rep, nil
}

func appendErr(errs []error, err error) []error {
	if err != nil {
		return append(errs, err)
	}
	return errs
}

// countPool counts free and held IPs on ready ENIs.
func countPool(p pool) (idle, used int) {
	ready := make(map[string]bool)
	for _, e := range p.enis {
		ready[e.ID] = e.State == store.ENIReady
	}
	for _, ip := range p.ips {
		switch {
		case !ready[ip.ENIID]:
		case ip.State == store.IPFree:
			idle++
		default:
			used++
		}
	}
	return idle, used
}

// syncCloud makes the store agree with the cloud about this instance's
// ENIs and their IPs.
func syncCloud(ctx context.Context, db Store, cloud eni.Client, node Node, cfg config.Config, now time.Time, rep *Report) error {
	attached, err := cloud.ENIs(ctx, eni.ENIFilter{InstanceID: node.InstanceID})
	if err != nil {
		return fmt.Errorf("sync: list enis of %s: %w", node.InstanceID, err)
	}
	p, err := snapshot(db)
	if err != nil {
		return err
	}
	inCloud := make(map[string]eni.ENI, len(attached))
	for _, c := range attached {
		inCloud[c.ID] = c
	}
	known := make(map[string]bool, len(p.enis))
	for _, e := range p.enis {
		known[e.ID] = true
		c, ok := inCloud[e.ID]
		switch {
		case e.State == store.ENIDraining:
			// deleteEmptyENIs finishes it.
		case !ok:
			// Detached behind our back, or a create/attach cut short by a
			// crash: nothing new goes to it, free IPs are dropped, and
			// once no pod holds an IP it is deleted.
			rep.Errors = appendErr(rep.Errors, markDraining(db, e.ID, now, rep))
		case e.State == store.ENIAttaching && c.Status == eni.StatusInUse:
			if _, err := makeReady(ctx, db, node, e, c); err != nil {
				rep.Errors = append(rep.Errors, err)
			}
		case e.State == store.ENIReady:
			rep.Errors = appendErr(rep.Errors, syncIPs(db, e, c, now, rep))
		}
	}
	for _, c := range attached {
		if known[c.ID] || c.ID == node.PrimaryENIID || c.Type == eni.TypePrimary || c.Status != eni.StatusInUse {
			continue
		}
		ours := c.Tags[TagCreator] == TagCreatorValue && c.Tags[TagInstance] == node.InstanceID
		if !ours && !matchTags(c.Tags, cfg.ENITagFilter) {
			continue
		}
		rec := store.ENI{
			ID: c.ID, MAC: c.MAC.String(), InstanceID: node.InstanceID, ZoneID: c.ZoneID, VSwitchID: c.VSwitchID,
			PrimaryIP: c.PrimaryIP, SecurityGroupIDs: c.SecurityGroupIDs, Owned: ours, State: store.ENIAttaching,
			CreatedAt: c.CreationTime,
		}
		if vs, err := cloud.VSwitches(ctx, c.VSwitchID); err == nil && len(vs) == 1 {
			rec.VSwitchCIDR, rec.Gateway = vs[0].CIDR, gatewayOf(vs[0].CIDR)
		} else {
			rep.Errors = append(rep.Errors, fmt.Errorf("adopt eni %s: describe vswitch %s: %v", c.ID, c.VSwitchID, err))
			continue
		}
		if err := db.Update(func(tx *store.WriteTx) error { return tx.PutENI(rec) }); err != nil {
			return err
		}
		if _, err := makeReady(ctx, db, node, rec, c); err != nil {
			rep.Errors = append(rep.Errors, err)
			continue
		}
		rep.AdoptedENIs = append(rep.AdoptedENIs, c.ID)
		appendEvent(db, slog.LevelInfo, "ENIAdopted", "eni/"+c.ID, fmt.Sprintf("eni %s attached to %s was not in the store; adopted", c.ID, node.InstanceID))
	}
	return nil
}

// matchTags reports whether tags carry every pair of filter; an empty
// filter matches nothing, so veni adopts only its own ENIs by default.
func matchTags(tags, filter map[string]string) bool {
	if len(filter) == 0 {
		return false
	}
	for k, v := range filter {
		if tags[k] != v {
			return false
		}
	}
	return true
}

// syncIPs adds IPs the cloud lists on e that the store lacks, and drops
// free IPs the cloud no longer has; held ones are reported as lost.
func syncIPs(db Store, e store.ENI, c eni.ENI, now time.Time, rep *Report) error {
	return db.Update(func(tx *store.WriteTx) error {
		ips, err := tx.IPs()
		if err != nil {
			return err
		}
		inStore := make(map[netip.Addr]store.IP)
		for _, ip := range ips {
			if ip.ENIID == e.ID {
				inStore[ip.Addr] = ip
			}
		}
		for _, a := range c.PrivateIPs {
			if a == c.PrimaryIP {
				continue
			}
			if _, ok := inStore[a]; ok {
				delete(inStore, a)
				continue
			}
			if err := tx.PutIP(store.IP{Addr: a, ENIID: e.ID, State: store.IPFree, AddedAt: now}); err != nil {
				return err
			}
			rep.SyncedIPs = append(rep.SyncedIPs, a)
		}
		for _, a := range slices.SortedFunc(maps.Keys(inStore), netip.Addr.Compare) {
			ip := inStore[a]
			switch {
			case ip.State != store.IPFree:
				rep.LostIPs = append(rep.LostIPs, a)
			case now.Sub(ip.AddedAt) >= syncGrace:
				if err := tx.DeleteIP(a); err != nil {
					return err
				}
				rep.DroppedIPs = append(rep.DroppedIPs, a)
			}
		}
		return nil
	})
}

// markDraining stops handing out IPs of an ENI and drops its free IPs from
// the store (they are still assigned in the cloud until the ENI is deleted
// or, if kept, unassigned by the caller).
func markDraining(db Store, id string, now time.Time, rep *Report) error {
	return db.Update(func(tx *store.WriteTx) error {
		e, err := tx.ENI(id)
		if err != nil {
			return err
		}
		ips, err := tx.IPs()
		if err != nil {
			return err
		}
		for _, ip := range ips {
			if ip.ENIID != id {
				continue
			}
			if ip.State != store.IPFree {
				if rep != nil && e.State == store.ENIReady {
					rep.LostIPs = append(rep.LostIPs, ip.Addr)
				}
				continue
			}
			if err := tx.DeleteIP(ip.Addr); err != nil {
				return err
			}
		}
		e.State = store.ENIDraining
		return tx.PutENI(e)
	})
}
