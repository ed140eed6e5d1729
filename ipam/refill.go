package ipam

import (
	"context"
	"crypto/rand"
	"encoding/hex"
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

// Refill grows the pool by need free IPs for the cold path. One process per
// node at a time calls the cloud, the one holding the allocator lease (its
// claim, see store.AllocatorClaim): it assigns up to eni.MaxIPsPerAssign IPs
// per call to owned ENIs with room, then creates, attaches and records new
// ENIs, and releases the lease. The store is never held open across a cloud
// call.
//
// A process that finds the lease held waits on the store until need free
// IPs appear or the holder lets go (then it returns nil: reserve again), or
// until ctx ends or cfg.AllocWait passes (ErrTryAgainLater).
//
// May return an error wrapping ErrTryAgainLater, ErrBackoff (a vSwitch out of
// addresses or a quota reached, recorded in the store's pool state and
// event log), or ErrPoolExhausted.
func Refill(ctx context.Context, db Store, cloud eni.Client, node Node, cfg config.Config, need int) error {
	l, err := acquireAllocator(ctx, db, node, cfg)
	var held *store.LeaseHeldError
	if errors.As(err, &held) {
		// A waiter needs one address, whatever the holder asked for.
		return waitForPool(ctx, db, cfg, 1, held.Lease)
	}
	if err != nil {
		return err
	}
	defer l.release()
	// need is a batch; one address is what the waiting ADD must have.
	_, err = grow(l.ctx, db, cloud, node, cfg, need, 1)
	return err
}

// allocator is a held allocator lease: the claim, and the record that says
// who holds it. Its ctx ends at the lease's deadline (lease_ttl after the
// last renewal), so a holder stuck in a cloud call cannot keep the node's
// pool frozen; renew moves the deadline for work that legitimately takes
// long (a reconcile of many steps).
type allocator struct {
	claim  *store.Claim
	db     Store
	ttl    time.Duration
	lease  store.Lease
	ctx    context.Context
	cancel context.CancelFunc
	parent context.Context
}

// acquireAllocator takes the allocator lease without waiting.
//
// May return a *store.LeaseHeldError (wrapping store.ErrLeaseHeld) naming
// the holder.
func acquireAllocator(ctx context.Context, db Store, node Node, cfg config.Config) (*allocator, error) {
	claim, err := store.TryClaim(store.AllocatorClaim(db.ClaimsDir()), false)
	if errors.Is(err, store.ErrClaimed) {
		held := &store.LeaseHeldError{Lease: store.Lease{Name: store.LeaseAllocator, Holder: "another veni process"}}
		_ = db.View(func(tx *store.ReadTx) error {
			if l, err := tx.Lease(store.LeaseAllocator); err == nil {
				held.Lease = l
			}
			return nil
		})
		return nil, held
	}
	if err != nil {
		return nil, fmt.Errorf("acquire allocator lease: %w", err)
	}
	now := time.Now()
	a := &allocator{
		claim: claim, db: db, ttl: time.Duration(cfg.LeaseTTL), parent: ctx,
		lease: store.Lease{
			Name: store.LeaseAllocator, Token: randomToken(), HolderPID: node.pid(), Holder: node.holder(),
			Acquired: now, Renewed: now, Expires: now.Add(time.Duration(cfg.LeaseTTL)),
		},
	}
	if err := db.Update(func(tx *store.WriteTx) error { return tx.PutLease(a.lease) }); err != nil {
		claim.Release()
		return nil, fmt.Errorf("acquire allocator lease: %w", err)
	}
	a.ctx, a.cancel = context.WithDeadline(ctx, a.lease.Expires)
	return a, nil
}

// renew moves the lease's deadline to lease_ttl from now, in the record and
// in a.ctx.
func (a *allocator) renew() {
	now := time.Now()
	a.lease.Renewed, a.lease.Expires = now, now.Add(a.ttl)
	err := a.db.Update(func(tx *store.WriteTx) error { return tx.PutLease(a.lease) })
	if err != nil {
		slog.Warn("renew allocator lease", "err", err)
	}
	a.cancel()
	a.ctx, a.cancel = context.WithDeadline(a.parent, a.lease.Expires)
}

// release deletes the record, then lets the claim go.
func (a *allocator) release() {
	a.cancel()
	err := a.db.Update(func(tx *store.WriteTx) error { return tx.DeleteLease(store.LeaseAllocator, a.lease.Token) })
	if err != nil {
		// Only a stale record is left; the claim is what others look at.
		slog.Warn("release allocator lease", "err", err)
	}
	if err := a.claim.Release(); err != nil {
		slog.Warn("release allocator claim", "err", err)
	}
}

func randomToken() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// waitForPool polls the store until need free IPs are on ready ENIs or the
// lease holder lets go of the allocator claim (or dies: the kernel lets go
// for it).
func waitForPool(ctx context.Context, db Store, cfg config.Config, need int, holder store.Lease) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(cfg.AllocWait))
	defer cancel()
	tick := time.NewTicker(time.Duration(cfg.PollInterval))
	defer tick.Stop()
	claim := store.AllocatorClaim(db.ClaimsDir())
	for {
		var free int
		err := db.View(func(tx *store.ReadTx) (err error) {
			free, err = countFree(tx)
			return err
		})
		if err != nil {
			return err
		}
		if free >= max(need, 1) {
			return nil
		}
		if held, err := store.Claimed(claim); err != nil || !held {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s (pid %d) to refill the pool: %w", holder.Holder, holder.HolderPID, ErrTryAgainLater)
		case <-tick.C:
		}
	}
}

// countFree counts the free IPs a warm ADD could take now.
func countFree(tx *store.ReadTx) (int, error) {
	enis, err := tx.ENIs()
	if err != nil {
		return 0, err
	}
	ips, err := tx.IPs()
	if err != nil {
		return 0, err
	}
	ps, err := tx.PoolState()
	enis, ips = withoutMembers(enis, ips)
	free, _ := countPool(pool{enis: enis, ips: ips, state: ps, now: time.Now()})
	return free, err
}

// pool is a snapshot of the store for planning cloud calls: the node's
// ENIs in its ENI slots and their addresses (the trunk and exclusive ENIs
// included), never trunk members nor their addresses (withoutMembers).
type pool struct {
	enis  []store.ENI
	ips   []store.IP
	state store.PoolState
	now   time.Time // when it was taken: an address kept for a pod is not free until its time is up
}

func (p pool) ipsOn(eniID string) (free, held int) {
	for _, ip := range p.ips {
		if ip.ENIID != eniID {
			continue
		}
		if ip.Open(p.now) {
			free++
		} else {
			held++
		}
	}
	return free, held
}

func snapshot(db Store) (pool, error) {
	p := pool{now: time.Now()}
	err := db.View(func(tx *store.ReadTx) (err error) {
		if p.enis, err = tx.ENIs(); err != nil {
			return err
		}
		if p.ips, err = tx.IPs(); err != nil {
			return err
		}
		p.state, err = tx.PoolState()
		p.enis, p.ips = withoutMembers(p.enis, p.ips)
		return err
	})
	return p, err
}

// grow adds up to want free IPs, at least need of them if it can, and
// returns how many it added: addresses on ENIs with room up to want, new
// ENIs only while fewer than need were added. It returns an error only
// when it added none.
func grow(ctx context.Context, db Store, cloud eni.Client, node Node, cfg config.Config, want, need int) (int, error) {
	want = max(want, need)
	if want <= 0 {
		return 0, nil
	}
	if err := EnsureMode(db, cfg); err != nil {
		return 0, err
	}
	p, err := snapshot(db)
	if err != nil {
		return 0, err
	}
	assign := assignOnENIs
	switch {
	case v6Prefix(cfg):
		assign = slots6OnENIs
	case cfg.PrefixMode():
		assign = assignPrefixesOnENIs
	case cfg.DualStack():
		assign = assignDualOnENIs
	}
	added, blocked, err := assign(ctx, db, cloud, node, cfg, &p, want)
	if err != nil {
		return added, err
	}
	// A new ENI costs three calls or more (create, attach, describe): make
	// one only for addresses that are needed, not for the rest of a batch.
	for added < need {
		n, err := createENI(ctx, db, cloud, node, cfg, &p, want-added)
		if errors.Is(err, ErrBackoff) || errors.Is(err, ErrPoolExhausted) {
			blocked = err
			break
		}
		if err != nil {
			if added > 0 {
				slog.Warn("grow pool", "added", added, "err", err)
				return added, nil
			}
			return 0, err
		}
		added += n
	}
	if added == 0 && blocked != nil {
		return 0, blocked
	}
	return added, nil
}

// perENI is how many secondary IPs one ENI may carry.
func perENI(node Node) int { return max(node.Limits.IPv4PerENI-1, 0) }

// assignOnENIs assigns IPs to owned ready ENIs with room, in
// eni_selection_policy order: secondary IPv4, or on an IPv6-only node
// (ip_stack ipv6) IPv6 addresses, on ENIs whose vSwitch has IPv6, up to
// the instance type's IPv6 per ENI.
func assignOnENIs(ctx context.Context, db Store, cloud eni.Client, node Node, cfg config.Config, p *pool, need int) (added int, blocked, err error) {
	six := cfg.IPv6Only()
	assign, what := cloud.AssignPrivateIPs, "ips"
	if six {
		assign, what = cloud.AssignIPv6s, "ipv6s"
	}
	cands, blocked := growCandidates(p, node, cfg, func(e store.ENI) int {
		_, all4, _, all6 := p.ipsByFamily(e.ID)
		if six {
			return all6
		}
		return all4
	}, time.Now())
	limit := podsPerENI(node, cfg)
	for _, c := range cands {
		if six && !c.e.IPv6CIDR.IsValid() {
			continue // its vSwitch has no IPv6 (an ENI veni did not create for this stack)
		}
		for added < need && c.used < limit {
			n := min(need-added, limit-c.used, eni.MaxIPsPerAssign)
			got, err := assign(ctx, c.e.ID, n)
			if err != nil {
				if berr := backoffFor(db, cfg, p, err, c.e.ID, c.e.VSwitchID); berr != nil {
					blocked = berr
					break
				}
				return added, blocked, fmt.Errorf("assign %d %s to eni %s: %w", n, what, c.e.ID, err)
			}
			if err := addFreeIPs(db, c.e.ID, got, time.Now()); err != nil {
				return added, blocked, err
			}
			added += len(got)
			c.used += len(got)
		}
		if added >= need {
			break
		}
	}
	return added, blocked, nil
}

// growCandidate is an ENI the pool may grow on, with the slots it uses.
type growCandidate struct {
	e    store.ENI
	used int
}

// growCandidates lists the owned, ready, secondary ENIs that have a free
// slot (used counts an ENI's taken ones: addresses, or prefixes) and no
// active back-off on the ENI or its vSwitch, in eni_selection_policy
// order. blocked is a back-off that kept one out.
func growCandidates(p *pool, node Node, cfg config.Config, used func(store.ENI) int, now time.Time) (cands []growCandidate, blocked error) {
	for _, e := range p.enis {
		if !e.Owned || e.State != store.ENIReady || e.ID == node.PrimaryENIID {
			continue
		}
		u := used(e)
		if u >= podsPerENI(node, cfg) {
			continue
		}
		if b, ok := p.state.ActiveBackoff(store.ENIScope(e.ID), now); ok {
			blocked = &BackoffError{Scope: store.ENIScope(e.ID), Backoff: b}
			continue
		}
		if b, ok := p.state.ActiveBackoff(store.VSwitchScope(e.VSwitchID), now); ok {
			blocked = &BackoffError{Scope: store.VSwitchScope(e.VSwitchID), Backoff: b}
			continue
		}
		cands = append(cands, growCandidate{e, u})
	}
	sortByPolicy(cands, cfg.ENIPolicy, func(c growCandidate) int { return c.used })
	return cands, blocked
}

// sortByPolicy orders ENIs: most_ips packs the fullest ENI first, least_ips
// spreads over the emptiest.
func sortByPolicy[T any](s []T, policy string, ips func(T) int) {
	less := func(a, b T) int { return ips(b) - ips(a) }
	if policy == config.ENILeastIPs {
		less = func(a, b T) int { return ips(a) - ips(b) }
	}
	slices.SortStableFunc(s, less)
}

func addFreeIPs(db Store, eniID string, addrs []netip.Addr, now time.Time) error {
	return db.Update(func(tx *store.WriteTx) error {
		for _, a := range addrs {
			if _, err := tx.IP(a); err == nil {
				continue
			}
			if err := tx.PutIP(store.IP{Addr: a, ENIID: eniID, State: store.IPFree, AddedAt: now}); err != nil {
				return err
			}
		}
		return nil
	})
}

// backoffFor turns a cloud answer that retrying soon will not fix into a
// recorded back-off and returns it as a *BackoffError; nil for any other
// error.
func backoffFor(db Store, cfg config.Config, p *pool, err error, eniID, vswitchID string) error {
	var scope, reason string
	var d time.Duration
	msg := err.Error()
	switch {
	case errors.Is(err, eni.ErrVSwitchExhausted):
		scope, reason, d = store.VSwitchScope(vswitchID), "VSwitchExhausted", time.Duration(cfg.VSwitchBackoff)
		// The same words as when a Describe showed it empty.
		msg = fmt.Sprintf("vswitch %s has no free address: %s", vswitchID, msg)
	case errors.Is(err, eni.ErrQuotaExceeded) && eniID != "":
		scope, reason, d = store.ENIScope(eniID), "IPQuotaExceeded", time.Duration(cfg.QuotaBackoff)
	case errors.Is(err, eni.ErrQuotaExceeded):
		scope, reason, d = store.ScopeENIQuota, "ENIQuotaExceeded", time.Duration(cfg.QuotaBackoff)
	default:
		return nil
	}
	return recordBackoff(db, p, scope, reason, msg, d)
}

// recordBackoff writes a back-off and a warning event, and returns it as a
// *BackoffError.
func recordBackoff(db Store, p *pool, scope, reason, msg string, d time.Duration) error {
	now := time.Now()
	b := store.Backoff{Since: now, Until: now.Add(d), Reason: msg}
	p.state.SetBackoff(scope, b)
	err := db.Update(func(tx *store.WriteTx) error {
		ps, err := tx.PoolState()
		if err != nil {
			return err
		}
		ps.SetBackoff(scope, b)
		ps.UpdatedAt = now
		if err := tx.PutPoolState(ps); err != nil {
			return err
		}
		_, err = tx.AppendEvent(store.Event{
			Time: now, Level: slog.LevelWarn, Reason: reason, Object: scope,
			Message: fmt.Sprintf("%s; not asking again before %s", msg, b.Until.Format(time.RFC3339)),
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("record back-off of %s: %w", scope, err)
	}
	slog.Warn("pool growth backed off", "scope", scope, "reason", msg, "until", b.Until)
	return &BackoffError{Scope: scope, Backoff: b}
}
