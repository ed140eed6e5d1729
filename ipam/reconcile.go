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

// An ENI the cloud stops listing as attached is acted on only once it has
// been missing for missingSyncs syncs in a row and for at least missingFor:
// one Describe that omits it (eventual consistency) must not take it away.
const (
	missingSyncs = 3
	missingFor   = 2 * time.Minute
)

// Report says what one Reconcile did.
type Report struct {
	LeaseHeld    bool         // another process holds the allocator lease; nothing was done
	Idle, Used   int          // free and held IPs on ready ENIs afterwards
	AddedIPs     int          // assigned by the cloud to top the pool up
	SyncedIPs    []netip.Addr // on our ENIs in the cloud, missing from the store: added as free
	RecoveredIPs []netip.Addr // on our ENIs in the cloud, missing from the store, in use by a pod on the host: recorded as bound
	DroppedIPs   []netip.Addr // free in the store, gone from the cloud: dropped
	LostIPs      []netip.Addr // held by a pod but gone from the cloud: the VPC no longer routes them
	ReleasedIPs  []netip.Addr // idle above max_pool_size: returned to the cloud
	// ReleasedPrefixes are the /28s returned to the cloud (prefix mode);
	// their addresses are in ReleasedIPs too.
	ReleasedPrefixes []netip.Prefix
	AdoptedENIs      []string      // attached, tagged by veni, unknown to the store
	MissingENIs      []string      // in the store, not listed as attached by the cloud (see missingSyncs)
	DeletedENIs      []string      // owned, empty and above need
	Blocked          error         // why the pool could not grow (ErrBackoff, ErrPoolExhausted), if it could not
	Errors           []error       // steps that failed; the next Reconcile retries them
	Took             time.Duration // wall time
	ReclaimSkipped   bool          // idle reclaim waited for idle_ip_reclaim_interval
	CloudSync        string        // why the ENIs were described through the OpenAPI; "" when metadata agreed with the store
	RepairedIPs      []netip.Addr  // held without an allocation naming them: freed, or an IPv6 rejoined to its pod (repairHalves)
}

// Reconcile is the daemon's pool maintenance, run on a timer and on store
// writes. Under the allocator lease it syncs the store with the cloud, tops
// the pool up to min_pool_size (and to ip_warm_up_size once), returns IPs
// idle above max_pool_size for idle_ip_reclaim_after to the cloud (at most
// idle_ip_reclaim_batch_size per idle_ip_reclaim_interval) and deletes owned
// ENIs that hold no reserved or bound IP once all their IPs are above
// max_pool_size (keeping min_eni ENIs). It renews the lease between steps.
// It never touches the primary ENI or ENIs veni did not create.
//
// Failures of single steps are collected in Report.Errors; the returned
// error is for failures that stop the whole run.
func Reconcile(ctx context.Context, db Store, cloud eni.Client, node Node, cfg config.Config, now time.Time) (Report, error) {
	start := time.Now()
	var rep Report
	lease, err := acquireAllocator(ctx, db, node, cfg)
	if errors.Is(err, store.ErrLeaseHeld) {
		rep.LeaseHeld = true
		return rep, nil
	}
	if err != nil {
		return rep, err
	}
	defer lease.release()
	if err := checkAndNoteMode(db, cfg); err != nil {
		return rep, err
	}
	// Fixed ENIs first: a kept one parked now is free for its pod's next
	// node sooner.
	tendFixed(lease, db, cloud, node, cfg, now, &rep)
	if cfg.ExclusiveENI() {
		err := reconcileExclusive(lease, db, cloud, node, cfg, now, &rep)
		rep.Took = time.Since(start)
		return rep, err
	}
	// A half stack or an owner without allocation is repaired before the
	// pool is counted (see repairHalves).
	freed, rejoined, err := repairHalves(lease.ctx, db, &hostView{node: node}, now)
	if err != nil {
		rep.Errors = append(rep.Errors, fmt.Errorf("repair half stacks: %w", err))
	}
	rep.RepairedIPs = append(freed, rejoined...)

	p, err := snapshot(db)
	if err != nil {
		return rep, err
	}
	synced := false
	if why := cloudSyncDue(lease.ctx, node, cfg, p, now); why != "" {
		host := &hostView{node: node}
		if err := syncCloud(lease.ctx, db, cloud, node, cfg, now, host, &rep); err != nil {
			return rep, err
		}
		rep.CloudSync, synced = why, true
		lease.renew()
		if p, err = snapshot(db); err != nil {
			return rep, err
		}
	}
	idle, used := countPool(p)
	// Below min_pool_size the pool is filled towards max_pool_size in one
	// call (up to 10 addresses): topping up one address per ADD made one
	// Assign call per pod.
	need, want := 0, 0
	if idle < cfg.MinPoolSize {
		need = cfg.MinPoolSize - idle
		want = max(need, min(cfg.MaxPoolSize-idle, perCall(cfg)))
	}
	if short := cfg.IPv4PrefixCount - p.prefixes(); cfg.PrefixMode() && short > 0 {
		// ipv4_prefix_count: the node keeps that many /28s delegated.
		need = max(need, short*PrefixSize)
		want = max(want, need)
	}
	warmUp := !p.state.WarmedUp && cfg.IPWarmUpSize > 0
	if warmUp {
		need = max(need, cfg.IPWarmUpSize-idle-used)
	}
	if need > 0 {
		rep.AddedIPs, err = grow(lease.ctx, db, cloud, node, cfg, want, need)
		switch {
		case errors.Is(err, ErrBackoff) || errors.Is(err, ErrPoolExhausted):
			rep.Blocked = err
		case err != nil:
			rep.Errors = append(rep.Errors, err)
		}
		lease.renew()
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
	reclaimed := false
	if now.Sub(p.state.LastReclaim) >= time.Duration(cfg.IdleReclaimEvery) {
		reclaim := reclaimIdle
		if cfg.PrefixMode() {
			reclaim = reclaimIdlePrefixes
		}
		rep.Errors = appendErr(rep.Errors, reclaim(lease.ctx, db, cloud, node, cfg, p, now, &rep))
		reclaimed = true
		lease.renew()
		if p, err = snapshot(db); err != nil {
			return rep, err
		}
	} else {
		rep.ReclaimSkipped = true
	}
	rep.Errors = appendErr(rep.Errors, deleteEmptyENIs(lease.ctx, db, cloud, node, cfg, p, now, &rep))
	rep.Errors = appendErr(rep.Errors, reclaimMembers(lease.ctx, db, cloud, node, cfg, now, &rep))
	swept := false
	if leakSweepDue(p.state, cfg, synced, now) {
		leaked, err := sweepLeaked(lease.ctx, db, cloud, node, cfg, now)
		rep.DeletedENIs = append(rep.DeletedENIs, leaked...)
		rep.Errors = appendErr(rep.Errors, err)
		swept = err == nil
	}

	err = db.Update(func(tx *store.WriteTx) error {
		ps, err := tx.PoolState()
		if err != nil {
			return err
		}
		ps.MinIdle, ps.MaxIdle, ps.UpdatedAt = cfg.MinPoolSize, cfg.MaxPoolSize, now
		if reclaimed {
			ps.LastReclaim = now
		}
		if swept {
			ps.LastLeakSweep = now
			// Any create cut short before this pass is now swept (the
			// sweep takes ENIs older than lease_ttl; the mark is older).
			if c := p.state.CreatingSince; ps.CreatingSince.Equal(c) && now.Sub(c) >= time.Duration(cfg.LeaseTTL) {
				ps.CreatingSince = time.Time{}
			}
		}
		if synced || ps.LastCloudSync.IsZero() {
			ps.LastCloudSync = now
		}
		if synced && ps.DelegatingSince.Equal(p.state.DelegatingSince) {
			ps.DelegatingSince = time.Time{} // the sync recorded what it left
		}
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

// countPool counts free and held IPs on the ENIs that hand addresses out
// (usable). On a dual-stack node it counts pods: an ENI's idle are the
// pairs of a free IPv4 and a free IPv6 it can give (with a /80: its free
// IPv4), its used the IPv4 its pods hold.
func countPool(p pool) (idle, used int) {
	ok := make(map[string]bool, len(p.enis))
	for _, e := range p.enis {
		ok[e.ID] = usable(e)
	}
	if p.state.Stack == config.IPStackDual {
		for _, e := range p.enis {
			if !ok[e.ID] || !e.IPv6CIDR.IsValid() {
				continue
			}
			free4, all4, free6, _ := p.ipsByFamily(e.ID)
			if len(e.IPv6Prefixes) > 0 {
				free6 = free4 // a /80 never runs short (prefix6.go)
			}
			idle += min(free4, free6)
			used += all4 - free4
		}
		return idle, used
	}
	for _, ip := range p.ips {
		switch {
		case !ok[ip.ENIID]:
		case ip.Open(p.now): // an address kept for a pod counts as used: no other pod may have it
			idle++
		default:
			used++
		}
	}
	return idle, used
}

// cloudSyncDue says why Reconcile must describe the node's ENIs through
// the OpenAPI, or "" when instance metadata agrees with the store and the
// safety sync is not due: the steady state costs no API call (Terway's
// node daemon and AWS's ipamd do the same; a Describe per node per minute
// is most of an account's budget at a thousand nodes).
func cloudSyncDue(ctx context.Context, node Node, cfg config.Config, p pool, now time.Time) string {
	if node.AttachedENIs == nil {
		return "no instance metadata"
	}
	if !p.state.DelegatingSince.IsZero() {
		// The caller holds the allocator lease: whoever set it is gone.
		return "a prefix delegation was cut short (metadata lists no prefixes)"
	}
	// A new store starts the interval's clock (Reconcile sets it) rather
	// than sync at once: thousands of nodes booting together would spend
	// the account's Describe budget on nodes that have nothing to adopt.
	// If metadata lists an ENI the store lacks, that is a disagreement.
	last := p.state.LastCloudSync
	if every := jittered(time.Duration(cfg.CloudSyncInterval), node.InstanceID); !last.IsZero() && now.Sub(last) >= every {
		return "cloud_sync_interval"
	}
	attached, err := node.AttachedENIs(ctx)
	if err != nil {
		return "instance metadata unreadable: " + err.Error()
	}
	return disagreement(node, p, attached)
}

// jittered spreads a period over [0.75, 1.25) of itself by the instance id,
// so nodes started together do not sync together.
func jittered(d time.Duration, id string) time.Duration {
	var h uint32 = 2166136261
	for i := 0; i < len(id); i++ {
		h = (h ^ uint32(id[i])) * 16777619
	}
	return d*3/4 + time.Duration(float64(d/2)*float64(h%1000)/1000)
}

// disagreement says how metadata and the store differ, "" when they agree:
// the same ENIs (veni's, by MAC, the primary aside) holding the same
// addresses, every recorded ENI ready.
func disagreement(node Node, p pool, attached []eni.MetadataENI) string {
	byMAC := make(map[string]eni.MetadataENI, len(attached))
	for _, m := range attached {
		if m.ID != node.PrimaryENIID {
			byMAC[m.MAC.String()] = m
		}
	}
	for _, e := range p.enis {
		if e.State == store.ENIDraining {
			delete(byMAC, e.MAC)
			continue
		}
		m, ok := byMAC[e.MAC]
		switch {
		case !ok:
			return "eni " + e.ID + " is not attached in metadata"
		case e.State != store.ENIReady || e.Missing():
			return "eni " + e.ID + " is " + string(e.State)
		}
		delete(byMAC, e.MAC)
		want := make(map[netip.Addr]bool)
		for _, a := range m.PrivateIPs {
			if a != m.PrimaryIP && a != e.PrimaryIP {
				want[a] = true
			}
		}
		for _, ip := range p.ips {
			// Metadata has no keys for delegated prefixes, and veni
			// reads no IPv6 from it: their addresses are checked by
			// the API sync only.
			if ip.ENIID != e.ID || ip.Prefix.IsValid() || ip.Addr.Is6() {
				continue
			}
			if !want[ip.Addr] {
				return "address " + ip.Addr.String() + " of eni " + e.ID + " is not in metadata"
			}
			delete(want, ip.Addr)
		}
		if len(want) > 0 {
			return "metadata lists addresses of eni " + e.ID + " the store lacks"
		}
	}
	for mac := range byMAC {
		return "an ENI the store lacks is attached (mac " + mac + ")"
	}
	return ""
}

// syncCloud makes the store agree with the cloud about this instance's
// ENIs and their IPs. An address the cloud lists that the store lacks is
// recorded as free only once the host says no pod uses it (host): after the
// store was lost or damaged, the pods still running must keep theirs.
func syncCloud(ctx context.Context, db Store, cloud eni.Client, node Node, cfg config.Config, now time.Time, host *hostView, rep *Report) error {
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
		case !ok && e.State == store.ENIAttaching && now.Sub(e.CreatedAt) >= missingFor:
			// A create or attach cut short by a crash long ago (this
			// process holds the allocator lease: nobody is attaching it
			// now). It never handed out an address: clean it up.
			rep.Errors = appendErr(rep.Errors, markDraining(db, e.ID))
		case !ok:
			rep.Errors = appendErr(rep.Errors, noteMissing(db, e, now, rep))
		case e.Missing():
			rep.Errors = appendErr(rep.Errors, noteFound(db, e.ID))
			fallthrough
		case e.State == store.ENIAttaching && c.Status == eni.StatusInUse:
			if e.State == store.ENIAttaching {
				if _, err := makeReady(ctx, db, node, e, c, host); err != nil {
					rep.Errors = append(rep.Errors, err)
				}
				continue
			}
			fallthrough
		case e.State == store.ENIReady && !e.Dedicated():
			// A dedicated ENI's one address is its primary: nothing
			// to sync.
			rep.Errors = appendErr(rep.Errors, syncIPs(ctx, db, e, c, now, host, rep))
		}
	}
	for _, c := range attached {
		// Members are not the pool's: recorded by the ADD that made them,
		// swept as leaks when it died first (sweepLeaked).
		if known[c.ID] || c.ID == node.PrimaryENIID || c.Type == eni.TypePrimary || c.Type == eni.TypeMember || c.Status != eni.StatusInUse {
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
		if c.Type == eni.TypeTrunk {
			rec.Kind = store.ENITrunk
		}
		if vs, err := cloud.VSwitches(ctx, c.VSwitchID); err == nil && len(vs) == 1 {
			rec.VSwitchCIDR, rec.Gateway = vs[0].CIDR, gatewayOf(vs[0].CIDR)
			if cfg.WantsIPv6() {
				// As createENI records it: without the /64 an adopted
				// ENI would hand out no IPv6, so no dual-stack pod.
				rec.IPv6CIDR, rec.Gateway6 = vs[0].IPv6CIDR.Masked(), gateway6Of(vs[0].IPv6CIDR)
			}
		} else {
			rep.Errors = append(rep.Errors, fmt.Errorf("adopt eni %s: describe vswitch %s: %v", c.ID, c.VSwitchID, err))
			continue
		}
		if err := db.Update(func(tx *store.WriteTx) error { return tx.PutENI(rec) }); err != nil {
			return err
		}
		n, err := makeReady(ctx, db, node, rec, c, host)
		if err != nil {
			rep.Errors = append(rep.Errors, err)
			continue
		}
		rep.AdoptedENIs = append(rep.AdoptedENIs, c.ID)
		rep.RecoveredIPs = append(rep.RecoveredIPs, n.recovered...)
		appendEvent(db, slog.LevelInfo, "ENIAdopted", "eni/"+c.ID,
			fmt.Sprintf("eni %s attached to %s was not in the store; adopted with %d free and %d in-use addresses", c.ID, node.InstanceID, n.free, len(n.recovered)))
	}
	return nil
}

// noteMissing counts one more sync in which the cloud did not list e as
// attached. Once that is confirmed (missingSyncs syncs, missingFor), no new
// pod gets an address on it (readyENIs), and it is drained if no pod holds
// one; if pods do, they have lost their network: that is reported, and the
// ENI is kept until they are gone.
func noteMissing(db Store, e store.ENI, now time.Time, rep *Report) error {
	rep.MissingENIs = append(rep.MissingENIs, e.ID)
	var cur store.ENI
	var firstConfirmed bool
	var held []netip.Addr
	err := db.Update(func(tx *store.WriteTx) (err error) {
		if cur, err = tx.ENI(e.ID); err != nil {
			return err
		}
		if cur.MissingSince.IsZero() {
			cur.MissingSince = now
		}
		cur.MissingSyncs++
		if !cur.Gone() && cur.MissingSyncs >= missingSyncs && now.Sub(cur.MissingSince) >= missingFor {
			cur.MissingConfirmed, firstConfirmed = now, true
		}
		if held, err = heldOn(tx, e.ID); err != nil {
			return err
		}
		return tx.PutENI(cur)
	})
	if err != nil || !cur.Gone() {
		return err
	}
	if len(held) == 0 {
		err := markDraining(db, e.ID)
		if errors.Is(err, store.ErrInUse) {
			return nil // an ADD reserved on it meanwhile; next sync decides again
		}
		if err == nil {
			appendEvent(db, slog.LevelWarn, "ENIMissing", "eni/"+e.ID,
				fmt.Sprintf("eni %s is not attached to this instance in the cloud since %s; it holds no pod address and is removed", e.ID, cur.MissingSince.Format(time.RFC3339)))
		}
		return err
	}
	rep.LostIPs = append(rep.LostIPs, held...)
	if firstConfirmed {
		appendEvent(db, slog.LevelError, "ENIMissing", "eni/"+e.ID,
			fmt.Sprintf("eni %s is not attached to this instance in the cloud since %s, but pods hold %v on it: they have no network; no new pod gets an address there", e.ID, cur.MissingSince.Format(time.RFC3339), held))
	}
	return nil
}

// noteFound clears the missing mark of an ENI the cloud lists again.
func noteFound(db Store, id string) error {
	return db.Update(func(tx *store.WriteTx) error {
		e, err := tx.ENI(id)
		if err != nil {
			return err
		}
		e.MissingSince, e.MissingSyncs, e.MissingConfirmed = time.Time{}, 0, time.Time{}
		return tx.PutENI(e)
	})
}

// heldOn returns the reserved or bound addresses on an ENI.
func heldOn(tx *store.WriteTx, eniID string) ([]netip.Addr, error) {
	ips, err := tx.IPs()
	var held []netip.Addr
	for _, ip := range ips {
		if ip.ENIID == eniID && ip.State != store.IPFree {
			held = append(held, ip.Addr)
		}
	}
	return held, err
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

// syncIPs adds IPs the cloud lists on e that the store lacks (as free, or
// as bound when a pod on the host uses them), and drops free IPs the cloud
// no longer has; held ones are reported as lost.
func syncIPs(ctx context.Context, db Store, e store.ENI, c eni.ENI, now time.Time, host *hostView, rep *Report) error {
	var inStore map[netip.Addr]store.IP
	err := db.View(func(tx *store.ReadTx) error {
		ips, err := tx.IPs()
		inStore = make(map[netip.Addr]store.IP)
		for _, ip := range ips {
			if ip.ENIID == e.ID {
				inStore[ip.Addr] = ip
			}
		}
		return err
	})
	if err != nil {
		return err
	}
	var unknown []netip.Addr
	addrs, prefixes := knownAddrs(ctx, c, e.PrimaryIP, host)
	for _, a := range addrs {
		if _, ok := inStore[a]; !ok {
			unknown = append(unknown, a)
		}
	}
	if len(unknown) > 0 {
		n, err := recordCloudIPs(ctx, db, e.ID, unknown, prefixes, now, host)
		if err != nil {
			return err
		}
		rep.SyncedIPs = append(rep.SyncedIPs, n.freeAddrs...)
		rep.RecoveredIPs = append(rep.RecoveredIPs, n.recovered...)
	}
	inCloud := make(map[netip.Addr]bool, len(addrs))
	for _, a := range addrs {
		inCloud[a] = true
	}
	return db.Update(func(tx *store.WriteTx) error {
		// A /80's addresses have records only once handed out
		// (prefix6.go): they are in the cloud while the /80 is, and a /80
		// the store missed (a crash right after its call) is recorded.
		if err := notePrefixes(tx, e.ID, c.IPv6Prefixes); err != nil {
			return err
		}
		for _, a := range slices.SortedFunc(maps.Keys(inStore), netip.Addr.Compare) {
			if inCloud[a] || inPrefixes(c.IPv6Prefixes, a) {
				continue
			}
			ip, err := tx.IP(a)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
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
		return forgetPrefixes(tx, e.ID, slices.Concat(c.Prefixes, c.IPv6Prefixes))
	})
}

// markDraining stops handing out IPs of an ENI and drops its free IPs from
// the store (they are still assigned in the cloud until the ENI is deleted
// or, if kept, unassigned by the caller). It refuses, in the same
// transaction as the check, when any address of the ENI is reserved or
// bound: an ADD that reserved after the caller looked must keep its ENI.
//
// May return an error wrapping store.ErrInUse.
func markDraining(db Store, id string) error {
	return db.Update(func(tx *store.WriteTx) error {
		e, err := tx.ENI(id)
		if err != nil {
			return err
		}
		held, err := heldOn(tx, id)
		if err != nil {
			return err
		}
		if len(held) > 0 {
			return fmt.Errorf("drain eni %s: pods hold %v: %w", id, held, store.ErrInUse)
		}
		ips, err := tx.IPs()
		if err != nil {
			return err
		}
		for _, ip := range ips {
			if ip.ENIID != id {
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
