package ipam

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/eni"
	"github.com/veni-cni/veni/store"
)

// reconcileExclusive is Reconcile on an exclusive node, under its lease
// (whose ctx each step takes afresh: renew replaces it): the
// warm pool counts ENIs, not addresses. It removes exclusive ENIs a create
// or attach left behind without a pod (attaching for longer than
// attach_timeout: the process that attached them died or gave up), creates
// warm ENIs up to min_pool_size while the node has room, removes warm ENIs
// above max_pool_size once idle for idle_ip_reclaim_after (those in other
// security groups than the node's first: only a pod of the same
// PodNetworking could take them), and sweeps leaked ENIs when due. An ENI a
// pod holds is never touched.
func reconcileExclusive(lease *allocator, db Store, cloud eni.Client, node Node, cfg config.Config, now time.Time, rep *Report) error {
	p, err := snapshot(db)
	if err != nil {
		return err
	}
	nodeGroups := exclusiveGroups(node, cfg, ExclusiveRequest{})
	var warm []store.ENI
	for _, e := range p.enis {
		if e.Kind != store.ENIExclusive || e.Pod != "" {
			continue
		}
		switch {
		case e.State == store.ENIDraining,
			e.State == store.ENIAttaching && now.Sub(e.CreatedAt) >= time.Duration(cfg.AttachTimeout):
			rep.Errors = appendErr(rep.Errors, dropExclusive(lease, db, cloud, node, cfg, e, rep))
		case ready(e):
			warm = append(warm, e)
		}
	}
	if short := cfg.MinPoolSize - len(warm); short > 0 {
		for range short {
			e, err := createExclusive(lease.ctx, db, cloud, node, cfg, nodeGroups, nil, "", nil)
			if errors.Is(err, ErrBackoff) || errors.Is(err, ErrPoolExhausted) {
				rep.Blocked = err
				break
			}
			if err != nil {
				rep.Errors = append(rep.Errors, err)
				break
			}
			rep.AddedIPs++
			warm = append(warm, e)
			lease.renew()
		}
	}
	if excess := len(warm) - cfg.MaxPoolSize; excess > 0 {
		// Other groups first, then the longest idle.
		slices.SortStableFunc(warm, func(a, b store.ENI) int {
			ao, bo := !sameGroups(a.SecurityGroupIDs, nodeGroups), !sameGroups(b.SecurityGroupIDs, nodeGroups)
			switch {
			case ao && !bo:
				return -1
			case bo && !ao:
				return 1
			}
			return a.ReadyAt.Compare(b.ReadyAt)
		})
		for _, e := range warm {
			if excess == 0 {
				break
			}
			if !e.Owned || !idleFor(p, e.ID, now, time.Duration(cfg.IdleReclaimAfter)) || kept(p, e, now) {
				continue
			}
			if err := dropExclusive(lease, db, cloud, node, cfg, e, rep); err != nil {
				rep.Errors = append(rep.Errors, err)
				continue
			}
			excess--
		}
	}
	if leakSweepDue(p.state, cfg, false, now) {
		leaked, err := sweepLeaked(lease.ctx, db, cloud, node, cfg, now)
		rep.DeletedENIs = append(rep.DeletedENIs, leaked...)
		rep.Errors = appendErr(rep.Errors, err)
		if err == nil {
			rep.Errors = appendErr(rep.Errors, db.Update(func(tx *store.WriteTx) error {
				ps, err := tx.PoolState()
				if err != nil {
					return err
				}
				ps.LastLeakSweep = now
				if c := p.state.CreatingSince; ps.CreatingSince.Equal(c) && now.Sub(c) >= time.Duration(cfg.LeaseTTL) {
					ps.CreatingSince = time.Time{}
				}
				return tx.PutPoolState(ps)
			}))
		}
	}
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
		return err
	}
	if p, err = snapshot(db); err != nil {
		return err
	}
	rep.Idle, rep.Used = countExclusive(p)
	return nil
}

// kept reports whether a warm ENI's address is kept for a pod (IP stick).
func kept(p pool, e store.ENI, now time.Time) bool {
	for _, ip := range p.ips {
		if ip.Addr == e.PrimaryIP && ip.ENIID == e.ID {
			return ip.Sticking(now)
		}
	}
	return false
}

// countExclusive counts warm exclusive ENIs and those pods hold.
func countExclusive(p pool) (warm, used int) {
	for _, e := range p.enis {
		switch {
		case e.Kind != store.ENIExclusive || !ready(e):
		case e.Pod == "":
			warm++
		default:
			used++
		}
	}
	return warm, used
}

// dropExclusive detaches and deletes an exclusive ENI no pod holds
// (markDraining refuses one whose address is held, in the transaction that
// checks), then forgets it.
func dropExclusive(lease *allocator, db Store, cloud eni.Client, node Node, cfg config.Config, e store.ENI, rep *Report) error {
	if e.State != store.ENIDraining {
		if err := markDraining(db, e.ID); errors.Is(err, store.ErrInUse) {
			return nil // a pod took it after the snapshot
		} else if err != nil {
			return err
		}
	}
	err := removeENI(lease.ctx, db, cloud, node, cfg, e.ID)
	lease.renew()
	if err != nil {
		return err
	}
	rep.DeletedENIs = append(rep.DeletedENIs, e.ID)
	appendEvent(db, slog.LevelInfo, "ENIDeleted", "eni/"+e.ID, fmt.Sprintf("deleted exclusive eni %s (%s): no pod holds it and the warm pool (max_pool_size %d) does not need it", e.ID, e.State, cfg.MaxPoolSize))
	return nil
}
