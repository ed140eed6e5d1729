package ipam

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/eni"
	"github.com/veni-cni/veni/store"
)

// Exclusive ENI mode (exclusive_eni_type eniOnly): every pod gets an ENI of
// its own. The ENI is a store.ENI of kind store.ENIExclusive whose Pod names
// its pod while one holds it; its primary address is an ordinary IP record
// on it, so a pod's allocation, Commit, release, GC and the store's
// consistency check are the shared path's. The shared pool never hands out
// an address of a dedicated ENI (usable), and an exclusive ENI without a pod
// is a warm ENI: the next pod takes it with no cloud call. The daemon keeps
// between min_pool_size and max_pool_size warm ENIs (reconcileExclusive).
//
// A release (podnet.Release, through ReleaseAllocation) gives the ENI back to
// the warm pool in the transaction that frees its address; it never calls
// the cloud. The daemon detaches and deletes warm ENIs above max_pool_size.

// ExclusiveRequest is what a pod's own ENI must be.
type ExclusiveRequest struct {
	// Pod is "namespace/name": the ENI's owner in the store.
	Pod string
	// SecurityGroupIDs and VSwitchIDs are the pod's PodNetworking's;
	// empty means the node's (eni_conf, else the primary ENI's).
	SecurityGroupIDs []string
	VSwitchIDs       []string
	// Fixed, when set, keeps the ENI for the pod across its deletion
	// (fixed.go): the pod takes its own fixed ENI (kept here, or from the
	// cloud) and never a warm one.
	Fixed *store.Fixed
}

// MaxExclusivePods is how many exclusive-ENI pods fit on the node: one per
// secondary ENI, the instance type's ENIs minus the primary (Terway's
// EniQuantity − 1), capped by max_eni.
func MaxExclusivePods(node Node, cfg config.Config) int { return maxSecondaryENIs(node, cfg) }

// eniModeOf returns the store's ENI mode: the recorded one, else what its
// ENIs are (any exclusive ENI: exclusive; any address: shared), else "" for
// a store that never held any.
func eniModeOf(tx *store.ReadTx) (string, error) {
	ps, err := tx.PoolState()
	if err != nil || ps.ENIMode != "" {
		return ps.ENIMode, err
	}
	enis, err := tx.ENIs()
	if err != nil {
		return "", err
	}
	for _, e := range enis {
		if e.Kind == store.ENIExclusive {
			return config.ENIModeExclusive, nil
		}
	}
	if ips, err := tx.IPs(); err != nil || len(ips) > 0 || len(enis) > 0 {
		return config.ENIModeShared, err
	}
	return "", nil
}

// checkENIMode returns an error wrapping ErrModeMismatch when the store's
// ENI mode is not cfg's.
func checkENIMode(tx *store.ReadTx, cfg config.Config) error {
	have, err := eniModeOf(tx)
	if err != nil || have == "" || have == cfg.ENIMode() {
		return err
	}
	return fmt.Errorf("node's store is in %s ENI mode but the node's configuration asks for %s ENI mode "+
		"(exclusive_eni_type, from the node label k8s.aliyun.com/exclusive-mode-eni-type, counts only when a node is set up): "+
		"set it back, or drain the node, stop veni, remove its store (store_path, default %s) and start it again: %w",
		have, cfg.ENIMode(), store.DefaultPath, ErrModeMismatch)
}

// sameGroups reports whether two lists name the same security groups.
func sameGroups(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

// exclusiveGroups returns the security groups a pod's ENI is created in.
func exclusiveGroups(node Node, cfg config.Config, req ExclusiveRequest) []string {
	if len(req.SecurityGroupIDs) > 0 {
		return req.SecurityGroupIDs
	}
	if sgs := cfg.SecurityGroupIDs(); len(sgs) > 0 {
		return sgs
	}
	return node.SecurityGroupIDs
}

// exclusiveConfig is cfg with the pod's vSwitches as the zone's candidates,
// so pickVSwitch chooses among them.
func exclusiveConfig(node Node, cfg config.Config, req ExclusiveRequest) config.Config {
	if len(req.VSwitchIDs) == 0 {
		return cfg
	}
	vs := maps.Clone(cfg.VSwitches)
	if vs == nil {
		vs = make(map[string][]string)
	}
	vs[node.ZoneID] = req.VSwitchIDs
	cfg.VSwitches = vs
	return cfg
}

// fitsRequest reports whether a warm ENI may serve the pod: same groups,
// and on one of its vSwitches when it names any.
func fitsRequest(e store.ENI, sgs, vsws []string) bool {
	return sameGroups(e.SecurityGroupIDs, sgs) && (len(vsws) == 0 || slices.Contains(vsws, e.VSwitchID))
}

// warmENI reports whether e is an exclusive ENI no pod holds, ready to be
// given to one.
func warmENI(e store.ENI) bool {
	return e.Kind == store.ENIExclusive && e.Pod == "" && ready(e)
}

// AllocateExclusive is the CNI ADD's way to get an ENI of the pod's own on
// an exclusive node: a warm ENI that fits the request (same security
// groups, one of its vSwitches) taken in one store transaction, else a new
// one created, attached and recorded under the allocator lease, owner first
// (the ENI names its pod and the pod's reservation holds its address before
// it is attached), so a crash at any point leaves an ENI the store knows.
// Other processes wait for the lease until cfg.AllocWait passes.
//
// The reservation's IP is the ENI's primary address; Commit and Release
// work on it as on a shared address, and releasing it gives the ENI back
// to the warm pool.
//
// May return an error wrapping ErrTryAgainLater, ErrBackoff,
// ErrPoolExhausted (the node has all the ENIs its instance type allows:
// one pod per secondary ENI) or ErrModeMismatch.
func AllocateExclusive(ctx context.Context, db Store, cloud eni.Client, node Node, cfg config.Config, owner Owner, req ExclusiveRequest) (Reservation, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(cfg.AllocWait))
	defer cancel()
	sgs := exclusiveGroups(node, cfg, req)
	if len(sgs) == 0 {
		return Reservation{}, fmt.Errorf("exclusive eni for %s: no security group (set security_group or security_groups in eni_conf): %w", req.Pod, config.ErrInvalid)
	}
	for {
		res, err := reserveExclusive(db, owner, cfg, req.Pod, sgs, req.VSwitchIDs, req.Fixed)
		if !errors.Is(err, ErrPoolEmpty) {
			return res, err
		}
		l, err := acquireAllocator(ctx, db, node, cfg)
		var held *store.LeaseHeldError
		switch {
		case errors.As(err, &held):
			// Another process creates an ENI (for its own pod, or
			// the daemon warm ones): look again in a moment.
			select {
			case <-ctx.Done():
				return Reservation{}, fmt.Errorf("exclusive eni for %s: %s holds the allocator lease: %w", req.Pod, held.Lease.Holder, ErrTryAgainLater)
			case <-time.After(time.Duration(cfg.PollInterval)):
			}
			continue
		case err != nil:
			return Reservation{}, err
		}
		if req.Fixed != nil {
			res, err = fixedExclusive(l.ctx, db, cloud, node, cfg, owner, req, sgs)
			l.release()
			if err != nil {
				return Reservation{}, fmt.Errorf("exclusive eni for %s: %w", req.Pod, err)
			}
			return res, nil
		}
		// Warm ENIs may have come while the lease was taken.
		res, err = reserveExclusive(db, owner, cfg, req.Pod, sgs, req.VSwitchIDs, nil)
		if errors.Is(err, ErrPoolEmpty) {
			var e store.ENI
			e, err = createExclusive(l.ctx, db, cloud, node, exclusiveConfig(node, cfg, req), sgs, &owner, req.Pod, nil)
			if err == nil {
				res = Reservation{Key: owner.Key(), IP: e.PrimaryIP, State: store.IPReserved, ENI: e}
			}
		}
		l.release()
		if err != nil {
			return Reservation{}, fmt.Errorf("exclusive eni for %s: %w", req.Pod, err)
		}
		return res, nil
	}
}

// reserveExclusive takes, in one transaction, the warm ENI that fits and is
// kept for the pod (IP stick: the ENI, and so the address, it had), else
// the one free the longest that is kept for no other pod: the ENI names the pod, its primary
// address is reserved for owner. A reservation that exists for the
// attachment is returned as it is. A fixed pod (fixed set) takes only its
// own fixed ENI kept on this node. It returns an error wrapping
// ErrPoolEmpty when no warm ENI fits.
func reserveExclusive(db Store, owner Owner, cfg config.Config, pod string, sgs, vsws []string, fixed *store.Fixed) (Reservation, error) {
	key := owner.Key()
	if owner.ContainerID == "" || owner.IfName == "" {
		return Reservation{}, fmt.Errorf("reserve eni: empty container id or ifname")
	}
	var res Reservation
	err := db.Update(func(tx *store.WriteTx) error {
		if err := checkForLife(&tx.ReadTx, cfg); err != nil {
			return err
		}
		if a, err := tx.Allocation(key); err == nil {
			e, err := tx.ENI(a.ENIID)
			res = Reservation{Key: key, IP: a.IP, State: a.State, ENI: e}
			return err
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if fixed != nil {
			e, ok, err := takeKept(tx, owner, store.ENIExclusive, fixed, "")
			if err != nil {
				return err
			}
			if !ok {
				return ErrPoolEmpty
			}
			res = Reservation{Key: key, IP: e.PrimaryIP, State: store.IPReserved, ENI: e}
			return nil
		}
		enis, err := tx.ENIs()
		if err != nil {
			return err
		}
		var (
			best   store.ENI
			bestIP store.IP
			found  bool
			stuck  bool // best is the ENI kept for this pod (IP stick)
			now    = time.Now()
		)
		for _, e := range enis {
			if !warmENI(e) || !fitsRequest(e, sgs, vsws) {
				continue
			}
			ip, err := tx.IP(e.PrimaryIP)
			if err != nil || ip.ENIID != e.ID {
				continue
			}
			mine := ip.Sticking(now) && ip.StickTo == pod
			switch {
			case stuck:
			case mine:
				best, bestIP, found, stuck = e, ip, true, true
			case !ip.Open(now):
			case !found || ip.FreeSince.Before(bestIP.FreeSince):
				best, bestIP, found = e, ip, true
			}
		}
		if !found {
			return ErrPoolEmpty
		}
		best.Pod = pod
		if err := tx.PutENI(best); err != nil {
			return err
		}
		if err := holdExclusive(tx, owner, best, time.Now()); err != nil {
			return err
		}
		res = Reservation{Key: key, IP: best.PrimaryIP, State: store.IPReserved, ENI: best}
		return nil
	})
	if err != nil {
		return Reservation{}, fmt.Errorf("reserve eni for %s: %w", key, err)
	}
	return res, nil
}

// holdExclusive reserves e's primary address for owner in tx.
func holdExclusive(tx *store.WriteTx, owner Owner, e store.ENI, now time.Time) error {
	key := owner.Key()
	ip := store.IP{Addr: e.PrimaryIP, ENIID: e.ID, State: store.IPReserved, Owner: key, AddedAt: now}
	if have, err := tx.IP(e.PrimaryIP); err == nil {
		ip.AddedAt = have.AddedAt
	}
	if err := tx.PutIP(ip); err != nil {
		return err
	}
	pid := owner.PID
	if pid == 0 {
		pid = os.Getpid()
	}
	return tx.PutAllocation(store.Allocation{
		Key: key, ContainerID: owner.ContainerID, IfName: owner.IfName, Network: owner.Network,
		PodNamespace: owner.PodNamespace, PodName: owner.PodName, PodUID: owner.PodUID,
		NetNS: owner.NetNS, NetNSID: owner.NetNSID,
		IP: e.PrimaryIP, ENIID: e.ID, State: store.IPReserved, ReservedBy: pid, ReservedAt: now,
		StickFor: owner.StickFor,
	})
}

// exclusiveCapacity returns an error wrapping ErrPoolExhausted when the node
// has every secondary ENI it may have.
func exclusiveCapacity(node Node, cfg config.Config, p pool, pod string) error {
	have := 0
	for _, e := range p.enis {
		if e.ID != node.PrimaryENIID {
			have++
		}
	}
	limit := maxSecondaryENIs(node, cfg)
	if have < limit {
		return nil
	}
	what := "a warm eni"
	if pod != "" {
		what = "pod " + pod
	}
	return fmt.Errorf("exclusive eni mode: node has %d of %d secondary enis, one per pod (instance type %s allows %d enis, one is the primary; max_eni %d), no room for %s: %w",
		have, limit, node.Limits.InstanceType, node.Limits.ENIs, cfg.MaxENI, what, ErrPoolExhausted)
}

// createExclusive creates, attaches and records one exclusive ENI in groups
// sgs on one of cfg's vSwitches. With owner set the ENI is the pod's and its
// address is reserved for owner in the transaction that first records the
// ENI, before the attach; without, it is a warm ENI. The caller holds the
// allocator lease. When the attach or the wait fails, an owner's
// reservation is dropped again and the ENI stays recorded without a pod:
// reconcileExclusive finishes or removes it.
//
// May return an error wrapping ErrBackoff or ErrPoolExhausted.
func createExclusive(ctx context.Context, db Store, cloud eni.Client, node Node, cfg config.Config, sgs []string, owner *Owner, pod string, fixed *store.Fixed) (store.ENI, error) {
	if err := EnsureMode(db, cfg); err != nil {
		return store.ENI{}, err
	}
	p, err := snapshot(db)
	if err != nil {
		return store.ENI{}, err
	}
	if err := exclusiveCapacity(node, cfg, p, pod); err != nil {
		return store.ENI{}, err
	}
	now := time.Now()
	if b, ok := p.state.ActiveBackoff(store.ScopeENIQuota, now); ok {
		return store.ENI{}, &BackoffError{Scope: store.ScopeENIQuota, Backoff: b}
	}
	vsw, err := pickVSwitch(ctx, db, cloud, node, cfg, &p)
	if err != nil {
		return store.ENI{}, err
	}
	tags := creationTags(cfg, node, pod, fixed)
	desc := "veni exclusive eni (warm) for " + node.InstanceID
	if pod != "" {
		desc = "veni exclusive eni of pod " + pod + " on " + node.InstanceID
	}
	mark, err := markCreating(db, now)
	if err != nil {
		return store.ENI{}, err
	}
	created, err := cloud.CreateENI(ctx, eni.CreateENIOptions{
		VSwitchID:        vsw.ID,
		SecurityGroupIDs: sgs,
		Tags:             tags,
		Description:      desc,
		ResourceGroupID:  cfg.ResourceGroupID,
		ClientToken:      "veni-" + node.InstanceID + "-" + strconv.FormatInt(now.UnixNano(), 36),
	})
	if err != nil {
		if berr := backoffFor(db, cfg, &p, err, "", vsw.ID); berr != nil {
			return store.ENI{}, berr
		}
		return store.ENI{}, fmt.Errorf("create eni on %s: %w", vsw.ID, err)
	}
	rec := store.ENI{
		ID: created.ID, MAC: created.MAC.String(), InstanceID: node.InstanceID, ZoneID: vsw.ZoneID,
		VSwitchID: vsw.ID, VSwitchCIDR: vsw.CIDR, Gateway: gatewayOf(vsw.CIDR), PrimaryIP: created.PrimaryIP,
		SecurityGroupIDs: sgs, Owned: true, State: store.ENIAttaching, CreatedAt: now,
		Kind: store.ENIExclusive, Pod: pod, Fixed: fixedCopy(fixed),
	}
	// Recorded, with its owner, before attaching: from here on a crash
	// leaves an ENI the store knows and an allocation GC releases.
	err = db.Update(func(tx *store.WriteTx) error {
		if err := tx.PutENI(rec); err != nil {
			return err
		}
		if owner != nil {
			if err := holdExclusive(tx, *owner, rec, now); err != nil {
				return err
			}
		} else if err := tx.PutIP(store.IP{Addr: rec.PrimaryIP, ENIID: rec.ID, State: store.IPFree, AddedAt: now, FreeSince: now}); err != nil {
			return err
		}
		ps, err := tx.PoolState()
		if err != nil || mark.IsZero() || !ps.CreatingSince.Equal(mark) {
			return err
		}
		ps.CreatingSince = time.Time{}
		return tx.PutPoolState(ps)
	})
	if err != nil {
		return store.ENI{}, err
	}
	ready, err := attachExclusive(ctx, db, cloud, node, cfg, rec, created)
	if err != nil && owner != nil {
		err = errors.Join(err, Release(db, owner.Key()))
	}
	if err != nil {
		return store.ENI{}, err
	}
	appendEvent(db, slog.LevelInfo, "ENICreated", "eni/"+rec.ID, fmt.Sprintf("created exclusive eni %s (%s) on %s in %v for %s", rec.ID, rec.PrimaryIP, vsw.ID, sgs, cmp.Or(pod, "the warm pool")))
	return ready, nil
}

// attachExclusive attaches a recorded exclusive ENI, waits until the cloud
// says it is in use and the node sees its link, and marks it ready.
func attachExclusive(ctx context.Context, db Store, cloud eni.Client, node Node, cfg config.Config, rec store.ENI, created eni.ENI) (store.ENI, error) {
	if err := cloud.AttachENI(ctx, rec.ID, node.InstanceID); err != nil {
		return store.ENI{}, fmt.Errorf("attach eni %s to %s: %w", rec.ID, node.InstanceID, err)
	}
	if _, err := waitAttached(ctx, cloud, node, cfg, created); err != nil {
		return store.ENI{}, err
	}
	if node.WaitLink != nil {
		if err := node.WaitLink(ctx, created.MAC); err != nil {
			return store.ENI{}, fmt.Errorf("wait for link of eni %s (%s): %w", rec.ID, created.MAC, err)
		}
	}
	var out store.ENI
	err := db.Update(func(tx *store.WriteTx) error {
		e, err := tx.ENI(rec.ID)
		if err != nil {
			return err
		}
		e.State, e.ReadyAt = store.ENIReady, time.Now()
		out = e
		return tx.PutENI(e)
	})
	return out, err
}

// RetireExclusive takes an exclusive ENI out of service whatever holds it:
// the node has lost its link, so no pod may be given it again. It is marked
// draining (its pod's address is freed by that pod's release as usual) and
// reconcileExclusive detaches and deletes it once no pod holds it.
func RetireExclusive(db Store, id, why string) error {
	err := db.Update(func(tx *store.WriteTx) error {
		e, err := tx.ENI(id)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		e.State = store.ENIDraining
		if err := tx.PutENI(e); err != nil {
			return err
		}
		_, err = tx.AppendEvent(store.Event{Time: time.Now(), Level: slog.LevelWarn, Reason: "ENILost", Object: "eni/" + id,
			Message: fmt.Sprintf("exclusive eni %s is retired: %s", id, why)})
		return err
	})
	if err != nil {
		return fmt.Errorf("retire eni %s: %w", id, err)
	}
	return nil
}
