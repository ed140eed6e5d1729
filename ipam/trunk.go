package ipam

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/eni"
	"github.com/veni-cni/veni/store"
)

// Trunking (enable_eni_trunking). The node's first ENI veni creates is its
// trunk (CreateNetworkInterface InstanceType=Trunk): a shared ENI like any
// other, whose addresses the pool hands out, and the one that carries the
// members. A pod that asks for a network of its own (a PodNetworking of
// eniType Trunk, or Default on a trunk node) gets a member ENI: created as
// a Secondary ENI with the pod's security groups and vSwitch, attached
// through the trunk (TrunkNetworkInstanceId), its VLAN ID the member's
// Attachment.DeviceIndex. The member's primary address is the pod's. On
// the node the pod keeps the shared pods' veth and policy routing through
// the trunk's table; its traffic rides the trunk tagged (package
// ebpf/vlan).
//
// Store: a member is an ENI record of Kind ENIMember with TrunkID, VLANID
// and Pod ("namespace/name" while a pod holds it), and one IP record, its
// primary address, reserved and bound like any pod address. The shared
// pool never sees members (snapshot, countFree, readyENIs leave them out):
// their addresses are never handed out, grown, reclaimed or deleted by the
// pool code. A member whose pod is gone is idle: the next pod asking for
// the same security groups and vSwitch takes it with no cloud call (warm),
// and Reconcile detaches and deletes it after idle_ip_reclaim_after.
//
// Crash safety: a member is recorded, already reserved for its pod, in
// the transaction that learns its VLAN ID; GC releases a reservation
// whose ADD died, which leaves the member idle. A process killed between
// CreateNetworkInterface and that record leaves an ENI the store does not
// know, tagged for this instance: the leak sweep deletes it, detaching it
// from the trunk first when it was attached.

// Errors of member allocation.
var (
	// ErrNoTrunk: the pod asks for a member ENI and the node cannot have
	// a trunk (enable_eni_trunking off, an instance type without
	// trunking, or no ENI slot left for one).
	ErrNoTrunk = errors.New("node has no trunk ENI")
	// ErrMemberLimit: the trunk carries as many members as the instance
	// type allows (EniTotalQuantity − EniQuantity).
	ErrMemberLimit = errors.New("trunk member ENI limit reached")
)

// TrunkEnabled reports whether the node uses trunking: enable_eni_trunking
// on an instance type with member ENIs (as Terway: a type that reports
// none gets no trunk).
func TrunkEnabled(node Node, cfg config.Config) bool {
	return cfg.Trunking() && node.Limits.TrunkSupported && node.Limits.MemberENIs > 0
}

// wantTrunk reports whether the next ENI createENI makes should be the
// node's trunk: trunking is on and the pool has none.
func wantTrunk(node Node, cfg config.Config, p *pool) bool {
	if !TrunkEnabled(node, cfg) {
		return false
	}
	return !slices.ContainsFunc(p.enis, func(e store.ENI) bool { return e.Kind == store.ENITrunk })
}

// withoutMembers leaves trunk members, and their addresses, out of a view
// of the store: they ride the trunk outside the instance's ENI slots and
// belong to their pods, so the pool's code (slots, counts, growth,
// reclaim) never sees them. Exclusive ENIs stay: they take ENI slots, and
// the exclusive pool's code works on this view; the shared code skips them
// by ENI.Dedicated.
func withoutMembers(enis []store.ENI, ips []store.IP) ([]store.ENI, []store.IP) {
	member := make(map[string]bool)
	enis = slices.DeleteFunc(enis, func(e store.ENI) bool {
		member[e.ID] = e.Kind == store.ENIMember
		return member[e.ID]
	})
	ips = slices.DeleteFunc(ips, func(ip store.IP) bool { return member[ip.ENIID] })
	return enis, ips
}

// MemberRequest is the network a member pod asks for; empty fields mean
// the node's (eni_conf security groups, the trunk's vSwitch).
type MemberRequest struct {
	SecurityGroupIDs []string
	VSwitchIDs       []string
	// Fixed, when set, keeps the member for the pod across its deletion
	// (fixed.go): the pod takes its own fixed ENI (kept here, or from the
	// cloud) and never an idle member of another pod.
	Fixed *store.Fixed
}

// MemberReservation is a member ENI held for a pod: Reservation.ENI is
// the trunk (what the pod is plumbed on), Member the pod's own ENI
// (Reservation.IP is its primary address).
type MemberReservation struct {
	Reservation
	Member store.ENI
}

// AllocateMember is the CNI ADD's way to get a member ENI: the pod's
// reservation if it has one, else an idle member with the pod's security
// groups and vSwitch (no cloud call), else, under the allocator lease, a
// new member created and attached through the trunk (and the trunk first,
// when the node has none yet). Commit and Release work on it as on any
// reservation.
//
// May return an error wrapping ErrNoTrunk, ErrMemberLimit,
// ErrTryAgainLater (another process holds the lease past alloc_wait), or
// a cloud error.
func AllocateMember(ctx context.Context, db Store, cloud eni.Client, node Node, cfg config.Config, owner Owner, req MemberRequest) (MemberReservation, error) {
	if !TrunkEnabled(node, cfg) {
		why := "enable_eni_trunking is off"
		if cfg.Trunking() {
			why = fmt.Sprintf("instance type %s has no trunk member ENIs", node.Limits.InstanceType)
		}
		return MemberReservation{}, fmt.Errorf("member eni for %s/%s: %w (%s)", owner.PodNamespace, owner.PodName, ErrNoTrunk, why)
	}
	if _, ok := cloud.(eni.Trunking); !ok {
		return MemberReservation{}, fmt.Errorf("member eni: cloud client %T cannot attach members: %w", cloud, ErrNoTrunk)
	}
	if owner.ContainerID == "" || owner.IfName == "" {
		return MemberReservation{}, fmt.Errorf("reserve member eni: empty container id or ifname")
	}
	req.SecurityGroupIDs = slices.Sorted(slices.Values(cmpOr(req.SecurityGroupIDs, cfg.SecurityGroupIDs(), node.SecurityGroupIDs)))
	ctx, cancel := context.WithTimeout(ctx, time.Duration(cfg.AllocWait))
	defer cancel()
	for {
		res, need, err := reserveMember(db, owner, req, node)
		if err != nil || need == needNothing {
			return res, err
		}
		lease, err := acquireAllocator(ctx, db, node, cfg)
		var held *store.LeaseHeldError
		if errors.As(err, &held) {
			// Another process calls the cloud for this node: it may be
			// making the trunk, or free a member; look again shortly.
			if err := sleepCtx(ctx, time.Duration(cfg.PollInterval)); err != nil {
				return MemberReservation{}, fmt.Errorf("member eni for %s: %w (%s holds the allocator lease)", owner.Key(), ErrTryAgainLater, held.Lease.Holder)
			}
			continue
		}
		if err != nil {
			return MemberReservation{}, err
		}
		created := false
		switch need {
		case needTrunk:
			created, err = ensureTrunk(lease.ctx, db, cloud, node, cfg)
		case needMember:
			if req.Fixed != nil {
				res, err = fixedMember(lease.ctx, db, cloud, node, cfg, owner, req)
			} else {
				res, err = createMember(lease.ctx, db, cloud, node, cfg, owner, req)
			}
		}
		lease.release()
		if err != nil || need == needMember {
			return res, err
		}
		if !created {
			// The store has a trunk, not usable yet (attaching, or missing
			// from the cloud): Reconcile finishes it or drops it.
			if err := sleepCtx(ctx, time.Duration(cfg.PollInterval)); err != nil {
				return MemberReservation{}, fmt.Errorf("member eni for %s: %w (the node's trunk is not ready)", owner.Key(), ErrTryAgainLater)
			}
		}
	}
}

func cmpOr(ss ...[]string) []string {
	for _, s := range ss {
		if len(s) > 0 {
			return slices.Clone(s)
		}
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

type memberNeed int

const (
	needNothing memberNeed = iota
	needTrunk
	needMember
)

// reserveMember is the member's transaction 1: the owner's reservation
// when it has one, else an idle member matching req reserved for owner.
// need says what the cloud must make first when neither exists.
func reserveMember(db Store, owner Owner, req MemberRequest, node Node) (res MemberReservation, need memberNeed, err error) {
	key := owner.Key()
	err = db.Update(func(tx *store.WriteTx) error {
		enis, err := tx.ENIs()
		if err != nil {
			return err
		}
		byID := make(map[string]store.ENI, len(enis))
		for _, e := range enis {
			byID[e.ID] = e
		}
		if a, err := tx.Allocation(key); err == nil {
			m, ok := byID[a.ENIID]
			trunk, tok := byID[m.TrunkID]
			if !ok || m.Kind != store.ENIMember || !tok {
				return fmt.Errorf("attachment %s already holds %s on eni %s, not a member of this node's trunk", key, a.IP, a.ENIID)
			}
			res = MemberReservation{Reservation: Reservation{Key: key, IP: a.IP, State: a.State, ENI: trunk}, Member: m}
			return nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		i := slices.IndexFunc(enis, func(e store.ENI) bool { return e.Kind == store.ENITrunk && usable(e) })
		if i < 0 {
			need = needTrunk
			return nil
		}
		trunk := enis[i]
		if req.Fixed != nil {
			// A fixed pod takes its own ENI back, or goes to the cloud
			// for it (fixedMember); never another pod's idle member.
			m, ok, err := takeKept(tx, owner, store.ENIMember, req.Fixed, trunk.ID)
			if err != nil {
				return err
			}
			if ok {
				res = MemberReservation{Reservation: Reservation{Key: key, IP: m.PrimaryIP, State: store.IPReserved, ENI: trunk}, Member: m}
			} else {
				need = needMember
			}
			return nil
		}
		ips, err := tx.IPs()
		if err != nil {
			return err
		}
		for _, m := range enis {
			if m.Kind != store.ENIMember || m.TrunkID != trunk.ID || m.Pod != "" || m.State != store.ENIReady || m.Gone() ||
				!matches(m, req, trunk) {
				continue
			}
			j := slices.IndexFunc(ips, func(ip store.IP) bool { return ip.ENIID == m.ID && ip.Addr == m.PrimaryIP })
			if j < 0 || ips[j].State != store.IPFree {
				continue
			}
			if err := holdMember(tx, owner, &m, ips[j], time.Now()); err != nil {
				return err
			}
			res = MemberReservation{Reservation: Reservation{Key: key, IP: m.PrimaryIP, State: store.IPReserved, ENI: trunk}, Member: m}
			return nil
		}
		need = needMember
		return nil
	})
	if err != nil {
		return MemberReservation{}, needNothing, fmt.Errorf("reserve member eni for %s: %w", key, err)
	}
	return res, need, nil
}

// matches reports whether member m gives what req asks: the same security
// groups, and its vSwitch among req's (or the trunk's when req names
// none).
func matches(m store.ENI, req MemberRequest, trunk store.ENI) bool {
	if !slices.Equal(slices.Sorted(slices.Values(m.SecurityGroupIDs)), req.SecurityGroupIDs) {
		return false
	}
	if len(req.VSwitchIDs) == 0 {
		return m.VSwitchID == trunk.VSwitchID
	}
	return slices.Contains(req.VSwitchIDs, m.VSwitchID)
}

// holdMember reserves member m's address ip for owner in tx: the IP
// record, the allocation, and the member's Pod.
func holdMember(tx *store.WriteTx, owner Owner, m *store.ENI, ip store.IP, now time.Time) error {
	key := owner.Key()
	m.Pod = owner.PodNamespace + "/" + owner.PodName
	if err := tx.PutENI(*m); err != nil {
		return err
	}
	ip.State, ip.Owner = store.IPReserved, key
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
		IP: ip.Addr, ENIID: m.ID, State: store.IPReserved, ReservedBy: pid, ReservedAt: now,
	})
}

// ensureTrunk makes the node's trunk unless the store has one (created
// says whether it did): createENI makes the first ENI of a trunk node a
// trunk, with a batch of shared addresses. The caller holds the allocator
// lease.
func ensureTrunk(ctx context.Context, db Store, cloud eni.Client, node Node, cfg config.Config) (created bool, err error) {
	p, err := snapshot(db)
	if err != nil {
		return false, err
	}
	if !wantTrunk(node, cfg, &p) {
		return false, nil
	}
	if _, err := createENI(ctx, db, cloud, node, cfg, &p, coldBatch(cfg)); err != nil {
		if errors.Is(err, ErrPoolExhausted) {
			return false, fmt.Errorf("%w: no ENI slot left for a trunk (%w)", ErrNoTrunk, err)
		}
		return false, fmt.Errorf("create trunk eni: %w", err)
	}
	return true, nil
}

// trunkOf returns the node's usable trunk and how many members it has.
func trunkOf(db Store) (trunk store.ENI, members int, err error) {
	err = db.View(func(tx *store.ReadTx) error {
		enis, err := tx.ENIs()
		for _, e := range enis {
			switch {
			case e.Kind == store.ENITrunk && usable(e):
				trunk = e
			case e.Kind == store.ENIMember:
				members++
			}
		}
		return err
	})
	if err == nil && trunk.ID == "" {
		err = fmt.Errorf("member eni: %w (the trunk went away)", ErrTryAgainLater)
	}
	return trunk, members, err
}

// createMember creates a member ENI for owner, attaches it through the
// trunk, and records it reserved for owner in the transaction that learns
// its VLAN ID. The caller holds the allocator lease.
func createMember(ctx context.Context, db Store, cloud eni.Client, node Node, cfg config.Config, owner Owner, req MemberRequest) (MemberReservation, error) {
	trunk, members, err := trunkOf(db)
	if err != nil {
		return MemberReservation{}, err
	}
	if members >= node.Limits.MemberENIs {
		return MemberReservation{}, fmt.Errorf("member eni for %s/%s: trunk %s carries %d members, instance type %s allows %d: %w",
			owner.PodNamespace, owner.PodName, trunk.ID, members, node.Limits.InstanceType, node.Limits.MemberENIs, ErrMemberLimit)
	}
	vsw, err := memberVSwitch(ctx, db, cloud, node, trunk, req)
	if err != nil {
		return MemberReservation{}, err
	}
	if len(req.SecurityGroupIDs) == 0 {
		return MemberReservation{}, fmt.Errorf("member eni: no security group (set security_group in eni_conf or securityGroupIDs in the PodNetworking): %w", config.ErrInvalid)
	}
	pod := owner.PodNamespace + "/" + owner.PodName
	tags := creationTags(cfg, node, pod, req.Fixed)
	now := time.Now()
	mark, err := markCreating(db, now)
	if err != nil {
		return MemberReservation{}, err
	}
	created, err := cloud.CreateENI(ctx, eni.CreateENIOptions{
		VSwitchID:        vsw.ID,
		SecurityGroupIDs: req.SecurityGroupIDs,
		Tags:             tags,
		Description:      "veni member eni of " + pod + " on " + node.InstanceID,
		ResourceGroupID:  cfg.ResourceGroupID,
		ClientToken:      "veni-" + node.InstanceID + "-m-" + strconv.FormatInt(now.UnixNano(), 36),
	})
	if err != nil {
		return MemberReservation{}, fmt.Errorf("create member eni on %s: %w", vsw.ID, err)
	}
	trunking := cloud.(eni.Trunking) // AllocateMember checked
	if err := trunking.AttachMember(ctx, created.ID, node.InstanceID, trunk.ID); err != nil {
		// Never attached: delete it now rather than leave it to the sweep.
		if derr := cloud.DeleteENI(ctx, created.ID); derr != nil {
			slog.Warn("delete unattached member eni", "eni", created.ID, "err", derr)
		}
		if errors.Is(err, eni.ErrQuotaExceeded) {
			return MemberReservation{}, fmt.Errorf("member eni for %s: %w (%w)", pod, ErrMemberLimit, err)
		}
		return MemberReservation{}, err
	}
	attached, err := waitENIStatus(ctx, cloud, cfg, created.ID, eni.StatusInUse)
	if err != nil {
		return MemberReservation{}, err
	}
	if attached.TrunkID != trunk.ID || attached.DeviceIndex < 1 {
		return MemberReservation{}, fmt.Errorf("member eni %s: attached through %q with device index %d, want trunk %s and a VLAN ID", created.ID, attached.TrunkID, attached.DeviceIndex, trunk.ID)
	}
	m := store.ENI{
		ID: created.ID, MAC: created.MAC.String(), InstanceID: node.InstanceID, ZoneID: attached.ZoneID,
		VSwitchID: vsw.ID, PrimaryIP: created.PrimaryIP, SecurityGroupIDs: req.SecurityGroupIDs, Owned: true,
		State: store.ENIReady, CreatedAt: now, ReadyAt: time.Now(),
		Kind: store.ENIMember, TrunkID: trunk.ID, VLANID: attached.DeviceIndex, Fixed: fixedCopy(req.Fixed),
	}
	if vsw.ID == trunk.VSwitchID {
		m.VSwitchCIDR, m.Gateway = trunk.VSwitchCIDR, trunk.Gateway
	} else if vsw.CIDR.IsValid() {
		m.VSwitchCIDR, m.Gateway = vsw.CIDR, gatewayOf(vsw.CIDR)
	}
	var res MemberReservation
	err = db.Update(func(tx *store.WriteTx) error {
		ip := store.IP{Addr: m.PrimaryIP, ENIID: m.ID, State: store.IPFree, AddedAt: now, FreeSince: now}
		if err := holdMember(tx, owner, &m, ip, now); err != nil {
			return err
		}
		ps, err := tx.PoolState()
		if err != nil {
			return err
		}
		if !mark.IsZero() && ps.CreatingSince.Equal(mark) {
			ps.CreatingSince = time.Time{}
			if err := tx.PutPoolState(ps); err != nil {
				return err
			}
		}
		what := "member eni"
		if m.Fixed != nil {
			what = "fixed member eni"
		}
		_, err = tx.AppendEvent(store.Event{Level: slog.LevelInfo, Reason: "MemberENICreated", Object: "eni/" + m.ID,
			Message: fmt.Sprintf("created %s %s (%s, vlan %d on trunk %s, %s) for pod %s", what, m.ID, m.PrimaryIP, m.VLANID, trunk.ID, vsw.ID, pod)})
		return err
	})
	if err != nil {
		return MemberReservation{}, fmt.Errorf("record member eni %s: %w", m.ID, err)
	}
	res = MemberReservation{Reservation: Reservation{Key: owner.Key(), IP: m.PrimaryIP, State: store.IPReserved, ENI: trunk}, Member: m}
	return res, nil
}

// memberVSwitch picks the member's vSwitch: the trunk's when req names
// none; else the first of req's in the node's zone with free addresses
// (a member must be in its instance's zone). Zones the store already
// knows (the node's ENIs) cost no call; otherwise one DescribeVSwitches.
//
// May return an error wrapping config.ErrInvalid (none of req's vSwitches
// is in the node's zone) or eni.ErrVSwitchExhausted (all that are, are
// out of addresses).
func memberVSwitch(ctx context.Context, db Store, cloud eni.Client, node Node, trunk store.ENI, req MemberRequest) (eni.VSwitch, error) {
	if len(req.VSwitchIDs) == 0 {
		return eni.VSwitch{ID: trunk.VSwitchID, ZoneID: trunk.ZoneID, CIDR: trunk.VSwitchCIDR}, nil
	}
	known := make(map[string]eni.VSwitch)
	_ = db.View(func(tx *store.ReadTx) error {
		enis, err := tx.ENIs()
		for _, e := range enis {
			if e.ZoneID != "" && e.VSwitchCIDR.IsValid() {
				known[e.VSwitchID] = eni.VSwitch{ID: e.VSwitchID, ZoneID: e.ZoneID, CIDR: e.VSwitchCIDR}
			}
		}
		return err
	})
	for _, id := range req.VSwitchIDs {
		if v, ok := known[id]; ok && (node.ZoneID == "" || v.ZoneID == node.ZoneID) {
			return v, nil
		}
	}
	vs, err := cloud.VSwitches(ctx, req.VSwitchIDs...)
	if err != nil {
		return eni.VSwitch{}, fmt.Errorf("member eni: describe vswitches %v: %w", req.VSwitchIDs, err)
	}
	var zones []string
	exhausted := false
	for _, id := range req.VSwitchIDs {
		for _, v := range vs {
			if v.ID != id {
				continue
			}
			zones = append(zones, v.ID+"@"+v.ZoneID)
			switch {
			case node.ZoneID != "" && v.ZoneID != node.ZoneID:
			case v.AvailableIPs == 0:
				exhausted = true
			default:
				return v, nil
			}
		}
	}
	if exhausted {
		return eni.VSwitch{}, fmt.Errorf("member eni: every vswitch of %v in zone %s is out of addresses: %w", req.VSwitchIDs, node.ZoneID, eni.ErrVSwitchExhausted)
	}
	return eni.VSwitch{}, fmt.Errorf("member eni: no vswitch of the PodNetworking (%v) is in the node's zone %s: %w", zones, node.ZoneID, config.ErrInvalid)
}

// reclaimMembers detaches and deletes the members that have been idle for
// idle_ip_reclaim_after, and forgets members the cloud no longer has
// attached. The caller holds the allocator lease.
func reclaimMembers(ctx context.Context, db Store, cloud eni.Client, node Node, cfg config.Config, now time.Time, rep *Report) error {
	var idle []store.ENI
	err := db.View(func(tx *store.ReadTx) error {
		enis, err := tx.ENIs()
		if err != nil {
			return err
		}
		ips, err := tx.IPs()
		if err != nil {
			return err
		}
		for _, m := range enis {
			if m.Kind != store.ENIMember || m.Pod != "" {
				continue
			}
			held := slices.ContainsFunc(ips, func(ip store.IP) bool {
				return ip.ENIID == m.ID && (ip.State != store.IPFree || now.Sub(ip.FreeSince) < time.Duration(cfg.IdleReclaimAfter))
			})
			if !held {
				idle = append(idle, m)
			}
		}
		return nil
	})
	if err != nil || len(idle) == 0 {
		return err
	}
	var errs []error
	for _, m := range idle {
		if err := removeMember(ctx, db, cloud, node, cfg, m); err != nil {
			errs = append(errs, err)
			continue
		}
		rep.DeletedENIs = append(rep.DeletedENIs, m.ID)
		appendEvent(db, slog.LevelInfo, "MemberENIDeleted", "eni/"+m.ID, fmt.Sprintf("deleted idle member eni %s (vlan %d on trunk %s)", m.ID, m.VLANID, m.TrunkID))
	}
	return errors.Join(errs...)
}

// removeMember takes an idle member out of the pool's reach (draining, in
// a transaction that checks its address is still free), detaches it from
// the trunk, deletes it, and forgets it.
func removeMember(ctx context.Context, db Store, cloud eni.Client, node Node, cfg config.Config, m store.ENI) error {
	err := db.Update(func(tx *store.WriteTx) error {
		e, err := tx.ENI(m.ID)
		if err != nil {
			return err
		}
		ip, err := tx.IP(e.PrimaryIP)
		if err == nil && ip.State != store.IPFree {
			return fmt.Errorf("member eni %s: %s is %s by %s: %w", e.ID, ip.Addr, ip.State, ip.Owner, store.ErrInUse)
		}
		if e.Pod != "" {
			return fmt.Errorf("member eni %s: held for %s: %w", e.ID, e.Pod, store.ErrInUse)
		}
		e.State = store.ENIDraining
		return tx.PutENI(e)
	})
	if errors.Is(err, store.ErrInUse) || errors.Is(err, store.ErrNotFound) {
		return nil // a pod took it meanwhile, or it is gone
	}
	if err != nil {
		return err
	}
	if err := deleteMemberInCloud(ctx, cloud, node, cfg, m.ID, m.TrunkID); err != nil {
		return err
	}
	return db.Update(func(tx *store.WriteTx) error {
		if err := tx.DeleteIP(m.PrimaryIP); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err := tx.DeleteENI(m.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return nil
	})
}

// deleteMemberInCloud detaches member id from trunkID unless it is
// Available already, waits for it, and deletes it. Gone is success.
func deleteMemberInCloud(ctx context.Context, cloud eni.Client, node Node, cfg config.Config, id, trunkID string) error {
	got, err := cloud.ENIs(ctx, eni.ENIFilter{IDs: []string{id}})
	if err != nil {
		return fmt.Errorf("delete member eni %s: %w", id, err)
	}
	if len(got) == 0 {
		return nil
	}
	if got[0].Status != eni.StatusAvailable {
		t, ok := cloud.(eni.Trunking)
		if !ok {
			return fmt.Errorf("detach member eni %s: cloud client %T cannot: %w", id, cloud, ErrNoTrunk)
		}
		if got[0].TrunkID != "" {
			trunkID = got[0].TrunkID
		}
		err := t.DetachMember(ctx, id, node.InstanceID, trunkID)
		if err != nil && !errors.Is(err, eni.ErrInvalidState) && !errors.Is(err, eni.ErrNotFound) {
			return fmt.Errorf("detach member eni %s from trunk %s: %w", id, trunkID, err)
		}
		if _, err := waitENIStatus(ctx, cloud, cfg, id, eni.StatusAvailable); err != nil {
			return err
		}
	}
	if err := cloud.DeleteENI(ctx, id); err != nil && !errors.Is(err, eni.ErrNotFound) {
		return fmt.Errorf("delete member eni %s: %w", id, err)
	}
	return nil
}

// Members lists the node's member ENIs with their pods (for status and
// verify).
func Members(db Store) ([]store.ENI, error) {
	var out []store.ENI
	err := db.View(func(tx *store.ReadTx) error {
		enis, err := tx.ENIs()
		for _, e := range enis {
			if e.Kind == store.ENIMember {
				out = append(out, e)
			}
		}
		return err
	})
	return out, err
}
