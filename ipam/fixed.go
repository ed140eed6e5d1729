package ipam

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/eni"
	"github.com/veni-cni/veni/store"
)

// Fixed IPs (a PodNetworking's allocationType Fixed, store/fixed.go). A
// fixed pod's dedicated ENI (a member or an exclusive ENI, as the node
// serves) outlives the pod: the pod recreated under the same
// namespace/name gets it back, and with it its address, on this node or
// on any node of the zone. There is no RPC between nodes and no
// controller: the cloud is the shared state.
//
//   - The ENI is created tagged creator=veni, veni.io/pod=<namespace/name>
//     and veni.io/fixed=true, and its ENI record carries store.Fixed.
//   - DEL (the one release path) makes no cloud call: the ENI stays
//     attached, kept for the pod (Fixed.PodGoneAt), and no other pod is
//     given it. The pod recreated here within fixed_eni_hold takes it
//     back with no cloud call.
//   - Then the daemon parks it (parkFixed, under the allocator lease):
//     TagResources veni.io/fixed-release-at (when it is to be deleted, or
//     "never") and veni.io/fixed-parked-by (this instance), then detach,
//     wait for Available, and in one transaction forget the ENI and
//     record it parked (TTL only). Tagging first means a parked ENI always
//     says when it expires and who parked it last; a crash between the
//     steps leaves Fixed.Detaching set and the next pass finishes.
//   - An ADD of the pod on any node that does not hold its ENI looks it up
//     (DescribeNetworkInterfaces by those tags, one call, through the
//     rate-limited client) under the allocator lease: Available, it is
//     attached here (as a member through the trunk, or as an exclusive
//     ENI), recorded and reserved for the pod; attached to this instance
//     and unknown to the store (an attach cut short), it is adopted;
//     attached elsewhere, the ADD fails at once with ErrFixedElsewhere
//     (CNI error 11: the old node parks it soon, the runtime retries);
//     none, a new one is created. The zone is the cloud's to check:
//     another zone's ENI is refused (InvalidOperation.AvailabilityZone
//     Mismatch) and the ADD fails with ErrFixedZone. Before the attach a
//     FixedENI record "attaching" is written, replaced by the ENI record
//     once attached: one found by whoever holds the lease next is an
//     attach cut short, and the daemon parks that ENI again.
//   - TTL: the node that parked an ENI deletes it at its release time if
//     the cloud still shows it Available and parked by this node with
//     that time (one Describe, then DeleteNetworkInterface). An ENI taken
//     meanwhile is InUse (delete refused) or re-parked by another node
//     with another time: this node only forgets its record. An ADD that
//     attaches while the delete runs either wins (the delete is refused)
//     or meets InvalidEniId.NotFound (CNI error 11; the retry creates a
//     new ENI: the old one's time was up). Lookups skip Available ENIs
//     whose release time has passed. Should the parking node be gone for
//     good, the cluster's ENI sweeper (kubesync) deletes expired parked
//     ENIs, and veni ipam fixed release deletes any.
//   - Never: parked ENIs are kept until an operator runs veni ipam fixed
//     release NAMESPACE/POD.

// Tags of fixed ENIs, besides TagCreator, TagInstance (the instance that
// created it) and TagPod.
const (
	TagFixed      = "veni.io/fixed" // TagFixedValue on every fixed ENI, from its creation
	TagFixedValue = "true"
	// TagFixedReleaseAt is when a parked ENI is to be deleted (RFC 3339,
	// UTC), or FixedReleaseNever; written before every detach.
	TagFixedReleaseAt = "veni.io/fixed-release-at"
	FixedReleaseNever = "never"
	// TagFixedParkedBy is the instance that detached it last.
	TagFixedParkedBy = "veni.io/fixed-parked-by"
)

// maxTagValue is the longest tag value the cloud keeps.
const maxTagValue = 128

// PodTag is the value of TagPod for pod "namespace/name": the name
// itself, or for one longer than a tag value may be, a prefix and a
// digest of the whole.
func PodTag(pod string) string {
	if len(pod) <= maxTagValue {
		return pod
	}
	sum := sha256.Sum256([]byte(pod))
	return pod[:maxTagValue-17] + "~" + hex.EncodeToString(sum[:8])
}

// Errors of fixed allocations.
var (
	// ErrFixedElsewhere: the pod's fixed ENI is attached to another
	// instance (its old node has not parked it yet) or between states:
	// the ADD can only be retried.
	ErrFixedElsewhere = errors.New("fixed eni not available yet")
	// ErrFixedZone: the pod's fixed ENI is in another zone than this
	// node; an ENI never leaves its zone.
	ErrFixedZone = errors.New("fixed eni in another zone")
)

// FixedError says what is wrong with a pod's fixed ENI. It matches its
// Err (ErrFixedElsewhere, ErrFixedZone, ErrTryAgainLater) and its Cause.
type FixedError struct {
	Pod, ENI string
	IP       string
	// Status and Instance are the ENI's in the cloud (ErrFixedElsewhere).
	Status, Instance string
	// Zone is the ENI's, NodeZone this node's (ErrFixedZone).
	Zone, NodeZone string
	Err            error
	Cause          error
}

func (e *FixedError) Error() string {
	var s string
	switch {
	case errors.Is(e.Err, ErrFixedZone):
		s = fmt.Sprintf("fixed eni %s (%s) of pod %s is in zone %s, this node in zone %s", e.ENI, e.IP, e.Pod, e.Zone, e.NodeZone)
	case e.Instance != "":
		s = fmt.Sprintf("fixed eni %s (%s) of pod %s is still %s on instance %s", e.ENI, e.IP, e.Pod, e.Status, e.Instance)
	default:
		s = fmt.Sprintf("fixed eni %s (%s) of pod %s: %v", e.ENI, e.IP, e.Pod, e.Err)
	}
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

func (e *FixedError) Unwrap() []error { return []error{e.Err, e.Cause} }

// releaseTag is TagFixedReleaseAt's value for a release time (zero:
// never).
func releaseTag(at time.Time) string {
	if at.IsZero() {
		return FixedReleaseNever
	}
	return at.UTC().Format(time.RFC3339)
}

// fixedExpired reports whether a parked ENI's release time has passed.
func fixedExpired(c eni.ENI, now time.Time) bool {
	v := c.Tags[TagFixedReleaseAt]
	if c.Status != eni.StatusAvailable || v == "" || v == FixedReleaseNever {
		return false
	}
	at, err := time.Parse(time.RFC3339, v)
	return err == nil && now.After(at)
}

// lookupFixed returns the pod's fixed ENIs the cloud has, parked ones
// whose release time has passed left out (one DescribeNetworkInterfaces).
func lookupFixed(ctx context.Context, cloud eni.Client, pod string, now time.Time) ([]eni.ENI, error) {
	got, err := cloud.ENIs(ctx, eni.ENIFilter{Tags: map[string]string{TagCreator: TagCreatorValue, TagFixed: TagFixedValue, TagPod: PodTag(pod)}})
	if err != nil {
		return nil, fmt.Errorf("look up the fixed eni of %s: %w", pod, err)
	}
	return slices.DeleteFunc(got, func(c eni.ENI) bool {
		return fixedExpired(c, now) || c.Status == eni.StatusDeleting || c.Type == eni.TypePrimary || c.Type == eni.TypeTrunk
	}), nil
}

// fixedAction is what an ADD does with the pod's fixed ENIs in the cloud.
type fixedAction int

const (
	fixedCreate fixedAction = iota // none: create one
	fixedAdopt                     // attached (or attaching) to this instance, unknown to the store
	fixedAttach                    // Available: attach it here
	fixedBusy                      // attached elsewhere, or detaching: retry later
)

// pickFixed chooses among the pod's fixed ENIs: one attached to this
// instance first, then the oldest Available one, else one that is busy.
func pickFixed(cands []eni.ENI, instanceID string) (eni.ENI, fixedAction) {
	slices.SortStableFunc(cands, func(a, b eni.ENI) int { return a.CreationTime.Compare(b.CreationTime) })
	for _, c := range cands {
		if c.InstanceID == instanceID && (c.Status == eni.StatusInUse || c.Status == eni.StatusAttaching) {
			return c, fixedAdopt
		}
	}
	for _, c := range cands {
		if c.Status == eni.StatusAvailable {
			return c, fixedAttach
		}
	}
	if len(cands) > 0 {
		return cands[0], fixedBusy
	}
	return eni.ENI{}, fixedCreate
}

func busyError(pod string, c eni.ENI) error {
	return &FixedError{Pod: pod, ENI: c.ID, IP: c.PrimaryIP.String(), Status: c.Status, Instance: cmp.Or(c.InstanceID, "none"), Err: ErrFixedElsewhere}
}

// attachError turns the cloud's refusal to attach the pod's fixed ENI c
// here into what the ADD answers.
func attachError(pod string, c eni.ENI, node Node, err error) error {
	fe := &FixedError{Pod: pod, ENI: c.ID, IP: c.PrimaryIP.String(), Zone: c.ZoneID, NodeZone: node.ZoneID, Cause: err}
	switch {
	case errors.Is(err, eni.ErrZoneMismatch):
		fe.Err = ErrFixedZone
	case errors.Is(err, eni.ErrInvalidState):
		// Another node attached it first.
		fe.Err, fe.Status, fe.Instance = ErrFixedElsewhere, "taken", "another instance"
	case errors.Is(err, eni.ErrNotFound):
		// Its release time came and it was deleted: the retry creates one.
		fe.Err = ErrTryAgainLater
	case errors.Is(err, eni.ErrQuotaExceeded):
		return fmt.Errorf("attach fixed eni %s of %s: %w (%w)", c.ID, pod, ErrPoolExhausted, err)
	default:
		return fmt.Errorf("attach fixed eni %s of %s: %w", c.ID, pod, err)
	}
	return fe
}

// takeKept reserves for owner, in tx, the ENI of kind kept on this node
// for its pod (its pod went within fixed_eni_hold and comes back), and
// returns it; ok is false when there is none ready to take. The ENI's
// release strategy becomes fixed's (the PodNetworking's now).
func takeKept(tx *store.WriteTx, owner Owner, kind store.ENIKind, fixed *store.Fixed, trunkID string) (store.ENI, bool, error) {
	pod := owner.podKey()
	enis, err := tx.ENIs()
	if err != nil || pod == "" {
		return store.ENI{}, false, err
	}
	for _, e := range enis {
		if e.Pod != pod || e.Kind != kind || !e.Kept() || e.Fixed.Detaching || !ready(e) || (kind == store.ENIMember && e.TrunkID != trunkID) {
			continue
		}
		ip, err := tx.IP(e.PrimaryIP)
		if err != nil || ip.ENIID != e.ID || ip.State != store.IPFree {
			continue
		}
		f := *fixed
		f.PodGoneAt, f.Detaching = time.Time{}, false
		e.Fixed = &f
		now := time.Now()
		switch kind {
		case store.ENIMember:
			err = holdMember(tx, owner, &e, ip, now)
		default:
			if err = tx.PutENI(e); err == nil {
				err = holdExclusive(tx, owner, e, now)
			}
		}
		return e, err == nil, err
	}
	return store.ENI{}, false, nil
}

// settleKept runs under the allocator lease before the pod's fixed ENI is
// looked up in the cloud: it makes what the store says of the pod's fixed
// ENIs that no ADD could take (being parked, or left attaching by a
// crash) agree with the cloud. One still attached here becomes ready to
// take again; any other is forgotten (the lookup finds it where it is). A
// record "attaching" of the pod is dropped: no ADD runs (the caller holds
// the lease) and the lookup adopts the ENI if it did attach.
func settleKept(ctx context.Context, db Store, cloud eni.Client, node Node, cfg config.Config, pod string) error {
	var kept []store.ENI
	err := db.Update(func(tx *store.WriteTx) error {
		recs, err := tx.FixedENIs()
		if err != nil {
			return err
		}
		for _, f := range recs {
			if f.Pod == pod && f.State == store.FixedAttaching {
				if err := tx.DeleteFixedENI(f.ID); err != nil {
					return err
				}
			}
		}
		enis, err := tx.ENIs()
		for _, e := range enis {
			if e.Pod == pod && e.Kept() && (e.Fixed.Detaching || !ready(e)) {
				kept = append(kept, e)
			}
		}
		return err
	})
	if err != nil {
		return err
	}
	for _, e := range kept {
		got, err := cloud.ENIs(ctx, eni.ENIFilter{IDs: []string{e.ID}})
		if err != nil {
			return fmt.Errorf("settle fixed eni %s of %s: %w", e.ID, pod, err)
		}
		if len(got) == 1 && got[0].InstanceID == node.InstanceID && attachedAs(got[0], e) {
			c := got[0]
			if c.Status == eni.StatusAttaching {
				if c, err = waitENIStatus(ctx, cloud, cfg, e.ID, eni.StatusInUse); err != nil {
					return err
				}
			}
			if c.Status == eni.StatusInUse {
				if e.Kind == store.ENIExclusive && node.WaitLink != nil {
					if err := node.WaitLink(ctx, c.MAC); err != nil {
						return fmt.Errorf("wait for link of fixed eni %s (%s): %w", e.ID, c.MAC, err)
					}
				}
				err := db.Update(func(tx *store.WriteTx) error {
					cur, err := tx.ENI(e.ID)
					if err != nil || !cur.Kept() {
						return err
					}
					cur.State, cur.Fixed.Detaching = store.ENIReady, false
					cur.MissingSince, cur.MissingSyncs, cur.MissingConfirmed = time.Time{}, 0, time.Time{}
					if cur.ReadyAt.IsZero() {
						cur.ReadyAt = time.Now()
					}
					return tx.PutENI(cur)
				})
				if err != nil {
					return err
				}
				continue
			}
		}
		if err := forgetENI(db, e.ID); err != nil {
			return err
		}
	}
	return nil
}

// attachedAs reports whether the cloud's c is attached the way the store's
// e says: through its trunk with its VLAN ID for a member, as an ENI of
// its own otherwise.
func attachedAs(c eni.ENI, e store.ENI) bool {
	if c.Status != eni.StatusInUse && c.Status != eni.StatusAttaching {
		return false
	}
	if e.Kind == store.ENIMember {
		return c.TrunkID == e.TrunkID && (c.Status == eni.StatusAttaching || c.DeviceIndex == e.VLANID)
	}
	return c.TrunkID == ""
}

// forgetENI drops an ENI the node no longer has from the store, with its
// free addresses.
func forgetENI(db Store, id string) error {
	return db.Update(func(tx *store.WriteTx) error {
		e, err := tx.ENI(id)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := tx.DeleteIP(e.PrimaryIP); err != nil {
			return err
		}
		return tx.DeleteENI(id)
	})
}

// beginAttach records, before the attach call, that this node attaches
// the pod's fixed ENI c (store.FixedAttaching), replacing a parked record
// of this node for it.
func beginAttach(db Store, c eni.ENI, pod string, fixed *store.Fixed) error {
	return db.Update(func(tx *store.WriteTx) error {
		if err := tx.DeleteFixedENI(c.ID); err != nil {
			return err
		}
		return tx.PutFixedENI(store.FixedENI{ID: c.ID, Pod: pod, IP: c.PrimaryIP, ZoneID: c.ZoneID, State: store.FixedAttaching, Since: time.Now(), Fixed: *fixed})
	})
}

func abortAttach(db Store, id string) {
	if err := db.Update(func(tx *store.WriteTx) error { return tx.DeleteFixedENI(id) }); err != nil {
		slog.Warn("drop fixed eni attach record", "eni", id, "err", err)
	}
}

// vswitchOf returns the vSwitch of a fixed ENI arriving on this node: its
// CIDR from an ENI of the store or the node's own when they share it, else
// from one DescribeVSwitches.
func vswitchOf(ctx context.Context, db Store, cloud eni.Client, node Node, id, zone string) (eni.VSwitch, error) {
	if id == node.VSwitchID && node.VSwitchCIDR.IsValid() {
		return eni.VSwitch{ID: id, ZoneID: cmp.Or(zone, node.ZoneID), CIDR: node.VSwitchCIDR}, nil
	}
	var known eni.VSwitch
	_ = db.View(func(tx *store.ReadTx) error {
		enis, err := tx.ENIs()
		for _, e := range enis {
			if e.VSwitchID == id && e.VSwitchCIDR.IsValid() {
				known = eni.VSwitch{ID: id, ZoneID: cmp.Or(e.ZoneID, zone), CIDR: e.VSwitchCIDR}
			}
		}
		return err
	})
	if known.ID != "" {
		return known, nil
	}
	vs, err := cloud.VSwitches(ctx, id)
	if err != nil {
		return eni.VSwitch{}, fmt.Errorf("describe vswitch %s: %w", id, err)
	}
	if len(vs) != 1 || !vs[0].CIDR.IsValid() {
		return eni.VSwitch{}, fmt.Errorf("describe vswitch %s: %d answers", id, len(vs))
	}
	return vs[0], nil
}

// fixedMember is AllocateMember's cold path for a fixed pod, under the
// allocator lease: the pod's fixed ENI from the cloud attached (or
// adopted) as a member through trunk, or a new one created.
func fixedMember(ctx context.Context, db Store, cloud eni.Client, node Node, cfg config.Config, owner Owner, req MemberRequest) (MemberReservation, error) {
	pod := owner.podKey()
	if err := settleKept(ctx, db, cloud, node, cfg, pod); err != nil {
		return MemberReservation{}, err
	}
	res, need, err := reserveMember(db, owner, req, node)
	if err != nil || need == needNothing {
		return res, err
	}
	if need == needTrunk {
		return MemberReservation{}, fmt.Errorf("member eni for %s: %w (the node's trunk is not ready)", pod, ErrTryAgainLater)
	}
	trunk, members, err := trunkOf(db)
	if err != nil {
		return MemberReservation{}, err
	}
	cands, err := lookupFixed(ctx, cloud, pod, time.Now())
	if err != nil {
		return MemberReservation{}, err
	}
	c, act := pickFixed(cands, node.InstanceID)
	switch act {
	case fixedCreate:
		return createMember(ctx, db, cloud, node, cfg, owner, req)
	case fixedBusy:
		return MemberReservation{}, busyError(pod, c)
	case fixedAdopt:
		if c.Type != eni.TypeMember || c.TrunkID != trunk.ID {
			return MemberReservation{}, strayFixed(db, c, pod, req.Fixed)
		}
		if c.Status == eni.StatusAttaching {
			if c, err = waitENIStatus(ctx, cloud, cfg, c.ID, eni.StatusInUse); err != nil {
				return MemberReservation{}, err
			}
		}
		return recordFixedMember(ctx, db, cloud, node, owner, req, trunk, c, "adopted")
	}
	if members >= node.Limits.MemberENIs {
		return MemberReservation{}, fmt.Errorf("fixed member eni for %s: trunk %s carries %d members, instance type %s allows %d: %w",
			pod, trunk.ID, members, node.Limits.InstanceType, node.Limits.MemberENIs, ErrMemberLimit)
	}
	if err := beginAttach(db, c, pod, req.Fixed); err != nil {
		return MemberReservation{}, err
	}
	if err := cloud.(eni.Trunking).AttachMember(ctx, c.ID, node.InstanceID, trunk.ID); err != nil {
		abortAttach(db, c.ID)
		if errors.Is(err, eni.ErrQuotaExceeded) {
			return MemberReservation{}, fmt.Errorf("fixed member eni for %s: %w (%w)", pod, ErrMemberLimit, err)
		}
		return MemberReservation{}, attachError(pod, c, node, err)
	}
	// From here a crash leaves the record "attaching": the next holder of
	// the lease finds the ENI attached and unknown, and parks it again.
	attached, err := waitENIStatus(ctx, cloud, cfg, c.ID, eni.StatusInUse)
	if err != nil {
		return MemberReservation{}, err
	}
	if attached.TrunkID != trunk.ID || attached.DeviceIndex < 1 {
		return MemberReservation{}, fmt.Errorf("fixed member eni %s: attached through %q with device index %d, want trunk %s and a VLAN ID", c.ID, attached.TrunkID, attached.DeviceIndex, trunk.ID)
	}
	return recordFixedMember(ctx, db, cloud, node, owner, req, trunk, attached, "attached")
}

// strayFixed answers an ADD that finds its pod's fixed ENI attached to
// this instance in a way it cannot use (not a member of this node's
// trunk, a member on an exclusive node): it is recorded "attaching" as if
// an attach had been cut short, so the daemon parks it, and the ADD is
// retried.
func strayFixed(db Store, c eni.ENI, pod string, fixed *store.Fixed) error {
	err := db.Update(func(tx *store.WriteTx) error {
		if _, err := tx.ENI(c.ID); err == nil {
			return nil // the store knows it: not a stray
		}
		return tx.PutFixedENI(store.FixedENI{ID: c.ID, Pod: pod, IP: c.PrimaryIP, ZoneID: c.ZoneID, State: store.FixedAttaching, Fixed: *fixed})
	})
	return errors.Join(&FixedError{Pod: pod, ENI: c.ID, IP: c.PrimaryIP.String(), Status: c.Type + " " + c.Status, Instance: c.InstanceID + " (this node, attached otherwise than it serves pods; the daemon detaches it)", Err: ErrFixedElsewhere}, err)
}

// recordFixedMember records the pod's fixed ENI c, attached as a member of
// trunk, reserved for owner, in the transaction that drops its
// "attaching" record.
func recordFixedMember(ctx context.Context, db Store, cloud eni.Client, node Node, owner Owner, req MemberRequest, trunk store.ENI, c eni.ENI, how string) (MemberReservation, error) {
	vsw := eni.VSwitch{ID: trunk.VSwitchID, CIDR: trunk.VSwitchCIDR}
	if c.VSwitchID != trunk.VSwitchID {
		var err error
		if vsw, err = vswitchOf(ctx, db, cloud, node, c.VSwitchID, c.ZoneID); err != nil {
			return MemberReservation{}, err
		}
	}
	now := time.Now()
	f := *req.Fixed
	m := store.ENI{
		ID: c.ID, MAC: c.MAC.String(), InstanceID: node.InstanceID, ZoneID: cmp.Or(c.ZoneID, node.ZoneID),
		VSwitchID: c.VSwitchID, VSwitchCIDR: vsw.CIDR, Gateway: gatewayOf(vsw.CIDR), PrimaryIP: c.PrimaryIP,
		SecurityGroupIDs: slices.Clone(c.SecurityGroupIDs), Owned: c.Tags[TagCreator] == TagCreatorValue,
		State: store.ENIReady, CreatedAt: c.CreationTime, ReadyAt: now,
		Kind: store.ENIMember, TrunkID: trunk.ID, VLANID: c.DeviceIndex, Fixed: &f,
	}
	pod := owner.podKey()
	err := db.Update(func(tx *store.WriteTx) error {
		if err := tx.DeleteFixedENI(m.ID); err != nil {
			return err
		}
		ip := store.IP{Addr: m.PrimaryIP, ENIID: m.ID, State: store.IPFree, AddedAt: now, FreeSince: now}
		if err := holdMember(tx, owner, &m, ip, now); err != nil {
			return err
		}
		_, err := tx.AppendEvent(store.Event{Level: slog.LevelInfo, Reason: "FixedENIAttached", Object: "eni/" + m.ID,
			Message: fmt.Sprintf("%s fixed eni %s (%s) of pod %s as member vlan %d on trunk %s (parked by %s)", how, m.ID, m.PrimaryIP, pod, m.VLANID, trunk.ID, cmp.Or(c.Tags[TagFixedParkedBy], "no node"))})
		return err
	})
	if err != nil {
		return MemberReservation{}, fmt.Errorf("record fixed member eni %s: %w", m.ID, err)
	}
	return MemberReservation{Reservation: Reservation{Key: owner.Key(), IP: m.PrimaryIP, State: store.IPReserved, ENI: trunk}, Member: m}, nil
}

// fixedExclusive is AllocateExclusive's cold path for a fixed pod, under
// the allocator lease: the pod's fixed ENI from the cloud attached (or
// adopted) here, or a new one created.
func fixedExclusive(ctx context.Context, db Store, cloud eni.Client, node Node, cfg config.Config, owner Owner, req ExclusiveRequest, sgs []string) (Reservation, error) {
	pod := req.Pod
	if err := settleKept(ctx, db, cloud, node, cfg, pod); err != nil {
		return Reservation{}, err
	}
	res, err := reserveExclusive(db, owner, cfg, pod, sgs, req.VSwitchIDs, req.Fixed)
	if !errors.Is(err, ErrPoolEmpty) {
		return res, err
	}
	cands, err := lookupFixed(ctx, cloud, pod, time.Now())
	if err != nil {
		return Reservation{}, err
	}
	c, act := pickFixed(cands, node.InstanceID)
	switch act {
	case fixedCreate:
		// A warm ENI that fits becomes the pod's fixed one (one
		// TagResources instead of a create and an attach; and on a node
		// whose slots are all taken, the only way).
		if res, ok, err := fixWarm(ctx, db, cloud, owner, cfg, req, sgs); ok || err != nil {
			return res, err
		}
		e, err := createExclusive(ctx, db, cloud, node, exclusiveConfig(node, cfg, req), sgs, &owner, pod, req.Fixed)
		if err != nil {
			return Reservation{}, err
		}
		return Reservation{Key: owner.Key(), IP: e.PrimaryIP, State: store.IPReserved, ENI: e}, nil
	case fixedBusy:
		return Reservation{}, busyError(pod, c)
	case fixedAdopt:
		if c.TrunkID != "" || c.Type == eni.TypeMember {
			return Reservation{}, strayFixed(db, c, pod, req.Fixed)
		}
		if c.Status == eni.StatusAttaching {
			if c, err = waitENIStatus(ctx, cloud, cfg, c.ID, eni.StatusInUse); err != nil {
				return Reservation{}, err
			}
		}
		return recordFixedExclusive(ctx, db, cloud, node, owner, req.Fixed, pod, c, "adopted")
	}
	p, err := snapshot(db)
	if err != nil {
		return Reservation{}, err
	}
	if err := exclusiveCapacity(node, cfg, p, pod); err != nil {
		return Reservation{}, err
	}
	if err := beginAttach(db, c, pod, req.Fixed); err != nil {
		return Reservation{}, err
	}
	if err := cloud.AttachENI(ctx, c.ID, node.InstanceID); err != nil {
		abortAttach(db, c.ID)
		return Reservation{}, attachError(pod, c, node, err)
	}
	attached, err := waitAttached(ctx, cloud, node, cfg, c)
	if err != nil {
		return Reservation{}, err
	}
	c.Status, c.InstanceID = attached.Status, node.InstanceID
	return recordFixedExclusive(ctx, db, cloud, node, owner, req.Fixed, pod, c, "attached")
}

// fixWarm makes a warm exclusive ENI that fits req the pod's fixed ENI:
// reserved for owner as any warm ENI, tagged for the pod in the cloud, then
// marked fixed in the store. A tag that fails gives it back to the warm
// pool. ok is false when no warm ENI fits.
func fixWarm(ctx context.Context, db Store, cloud eni.Client, owner Owner, cfg config.Config, req ExclusiveRequest, sgs []string) (Reservation, bool, error) {
	res, err := reserveExclusive(db, owner, cfg, req.Pod, sgs, req.VSwitchIDs, nil)
	if errors.Is(err, ErrPoolEmpty) {
		return Reservation{}, false, nil
	}
	if err != nil {
		return Reservation{}, false, err
	}
	tagger, ok := cloud.(eni.Tagging)
	if !ok {
		return Reservation{}, true, errors.Join(fmt.Errorf("cloud client %T cannot tag enis", cloud), Release(db, res.Key))
	}
	if err := tagger.TagENI(ctx, res.ENI.ID, map[string]string{TagPod: PodTag(req.Pod), TagFixed: TagFixedValue}); err != nil {
		return Reservation{}, true, errors.Join(fmt.Errorf("tag warm eni %s for fixed pod %s: %w", res.ENI.ID, req.Pod, err), Release(db, res.Key))
	}
	err = db.Update(func(tx *store.WriteTx) error {
		e, err := tx.ENI(res.ENI.ID)
		if err != nil {
			return err
		}
		e.Fixed = fixedCopy(req.Fixed)
		res.ENI = e
		if err := tx.PutENI(e); err != nil {
			return err
		}
		_, err = tx.AppendEvent(store.Event{Level: slog.LevelInfo, Reason: "FixedENIAttached", Object: "eni/" + e.ID,
			Message: fmt.Sprintf("warm eni %s (%s) is now the fixed eni of pod %s", e.ID, e.PrimaryIP, req.Pod)})
		return err
	})
	return res, true, err
}

// recordFixedExclusive waits for the link of the pod's fixed ENI c,
// attached here, and records it reserved for owner in the transaction
// that drops its "attaching" record.
func recordFixedExclusive(ctx context.Context, db Store, cloud eni.Client, node Node, owner Owner, fixed *store.Fixed, pod string, c eni.ENI, how string) (Reservation, error) {
	if node.WaitLink != nil {
		if err := node.WaitLink(ctx, c.MAC); err != nil {
			return Reservation{}, fmt.Errorf("wait for link of fixed eni %s (%s): %w", c.ID, c.MAC, err)
		}
	}
	vsw, err := vswitchOf(ctx, db, cloud, node, c.VSwitchID, c.ZoneID)
	if err != nil {
		return Reservation{}, err
	}
	now := time.Now()
	f := *fixed
	rec := store.ENI{
		ID: c.ID, MAC: c.MAC.String(), InstanceID: node.InstanceID, ZoneID: cmp.Or(c.ZoneID, node.ZoneID),
		VSwitchID: c.VSwitchID, VSwitchCIDR: vsw.CIDR, Gateway: gatewayOf(vsw.CIDR), PrimaryIP: c.PrimaryIP,
		SecurityGroupIDs: slices.Clone(c.SecurityGroupIDs), Owned: c.Tags[TagCreator] == TagCreatorValue,
		State: store.ENIReady, CreatedAt: c.CreationTime, ReadyAt: now,
		Kind: store.ENIExclusive, Pod: pod, Fixed: &f,
	}
	err = db.Update(func(tx *store.WriteTx) error {
		if err := tx.DeleteFixedENI(rec.ID); err != nil {
			return err
		}
		if err := tx.PutENI(rec); err != nil {
			return err
		}
		if err := holdExclusive(tx, owner, rec, now); err != nil {
			return err
		}
		_, err := tx.AppendEvent(store.Event{Level: slog.LevelInfo, Reason: "FixedENIAttached", Object: "eni/" + rec.ID,
			Message: fmt.Sprintf("%s fixed eni %s (%s) of pod %s (parked by %s)", how, rec.ID, rec.PrimaryIP, pod, cmp.Or(c.Tags[TagFixedParkedBy], "no node"))})
		return err
	})
	if err != nil {
		return Reservation{}, fmt.Errorf("record fixed eni %s: %w", rec.ID, err)
	}
	return Reservation{Key: owner.Key(), IP: rec.PrimaryIP, State: store.IPReserved, ENI: rec}, nil
}

// tendFixed is Reconcile's care of fixed ENIs, under its lease: it parks
// the ENIs kept for pods that did not come back within fixed_eni_hold (and
// finishes a park cut short), parks ENIs an attach cut short left attached
// here, and deletes the ENIs this node parked whose release time came.
func tendFixed(lease *allocator, db Store, cloud eni.Client, node Node, cfg config.Config, now time.Time, rep *Report) {
	var (
		kept []store.ENI
		recs []store.FixedENI
	)
	err := db.View(func(tx *store.ReadTx) error {
		enis, err := tx.ENIs()
		if err != nil {
			return err
		}
		for _, e := range enis {
			if e.Kept() && (e.Fixed.Detaching || !now.Before(e.Fixed.PodGoneAt.Add(time.Duration(cfg.FixedENIHold)))) {
				kept = append(kept, e)
			}
		}
		recs, err = tx.FixedENIs()
		return err
	})
	if err != nil {
		rep.Errors = append(rep.Errors, err)
		return
	}
	for _, e := range kept {
		rep.Errors = appendErr(rep.Errors, parkFixed(lease.ctx, db, cloud, node, cfg, e, now))
		lease.renew()
	}
	for _, f := range recs {
		switch {
		case f.State == store.FixedAttaching:
			rep.Errors = appendErr(rep.Errors, settleAttaching(lease.ctx, db, cloud, node, cfg, f, now))
		case !now.Before(f.ReleaseAt):
			deleted, err := expireParked(lease.ctx, db, cloud, node, f)
			if deleted {
				rep.DeletedENIs = append(rep.DeletedENIs, f.ID)
			}
			rep.Errors = appendErr(rep.Errors, err)
		default:
			continue
		}
		lease.renew()
	}
}

// NextFixedDue is when the daemon next has something to do for fixed ENIs
// (a kept ENI to park, an attach to settle, a parked ENI to delete); the
// zero time when nothing is pending.
func NextFixedDue(db Store, cfg config.Config) (time.Time, error) {
	var next time.Time
	note := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	err := db.View(func(tx *store.ReadTx) error {
		enis, err := tx.ENIs()
		if err != nil {
			return err
		}
		for _, e := range enis {
			if e.Kept() {
				note(e.Fixed.PodGoneAt.Add(time.Duration(cfg.FixedENIHold)))
			}
		}
		recs, err := tx.FixedENIs()
		for _, f := range recs {
			if f.State == store.FixedAttaching {
				note(f.Since)
			} else {
				note(f.ReleaseAt)
			}
		}
		return err
	})
	return next, err
}

// parkFixed detaches a fixed ENI kept for a pod that went (tagging it with
// its release time and this instance first) and records it parked. An ENI
// a pod took back meanwhile is left alone.
func parkFixed(ctx context.Context, db Store, cloud eni.Client, node Node, cfg config.Config, e store.ENI, now time.Time) error {
	err := db.Update(func(tx *store.WriteTx) error {
		cur, err := tx.ENI(e.ID)
		if err != nil {
			return err
		}
		if !cur.Kept() {
			return store.ErrInUse
		}
		if ip, err := tx.IP(cur.PrimaryIP); err == nil && ip.State != store.IPFree {
			return fmt.Errorf("fixed eni %s: %s is %s by %s: %w", cur.ID, ip.Addr, ip.State, ip.Owner, store.ErrInUse)
		}
		cur.Fixed.Detaching = true
		e = cur
		return tx.PutENI(cur)
	})
	if errors.Is(err, store.ErrInUse) || errors.Is(err, store.ErrNotFound) {
		return nil // its pod came back, or it is gone
	}
	if err != nil {
		return err
	}
	releaseAt := e.Fixed.ReleaseAt(e.Fixed.PodGoneAt)
	parked, err := detachFixed(ctx, cloud, node, cfg, e.ID, releaseAt)
	if err != nil {
		return fmt.Errorf("park fixed eni %s of %s: %w", e.ID, e.Pod, err)
	}
	return db.Update(func(tx *store.WriteTx) error {
		if err := tx.DeleteIP(e.PrimaryIP); err != nil {
			return err
		}
		if err := tx.DeleteENI(e.ID); err != nil {
			return err
		}
		msg := fmt.Sprintf("fixed eni %s (%s) of pod %s: its pod went at %s", e.ID, e.PrimaryIP, e.Pod, e.Fixed.PodGoneAt.Format(time.RFC3339))
		if !parked {
			msg += "; it is no longer attached here, nothing to park"
		} else if releaseAt.IsZero() {
			msg += "; detached and kept for it in the zone until an operator releases it (releaseStrategy Never)"
		} else {
			msg += fmt.Sprintf("; detached and kept for it in the zone until %s", releaseAt.Format(time.RFC3339))
			if err := tx.PutFixedENI(store.FixedENI{ID: e.ID, Pod: e.Pod, IP: e.PrimaryIP, ZoneID: e.ZoneID, State: store.FixedParked, Since: now, Fixed: *e.Fixed, ReleaseAt: releaseAt}); err != nil {
				return err
			}
		}
		_, err := tx.AppendEvent(store.Event{Level: slog.LevelInfo, Reason: "FixedENIParked", Object: "eni/" + e.ID, Message: msg})
		return err
	})
}

// detachFixed tags a fixed ENI with its release time and this instance,
// detaches it from this instance and waits until it is Available. parked
// is false when the cloud no longer has it attached here (gone, or
// attached elsewhere): then it did nothing.
func detachFixed(ctx context.Context, cloud eni.Client, node Node, cfg config.Config, id string, releaseAt time.Time) (parked bool, err error) {
	got, err := cloud.ENIs(ctx, eni.ENIFilter{IDs: []string{id}})
	if err != nil {
		return false, err
	}
	if len(got) == 0 {
		return false, nil
	}
	c := got[0]
	here := c.InstanceID == node.InstanceID
	switch by := c.Tags[TagFixedParkedBy]; {
	case !here && c.Status != eni.StatusAvailable:
		return false, nil // another node has it
	case !here && by != "" && by != node.InstanceID:
		// Parked since by another node (which took it after this one
		// let it go): its release time is that node's now.
		return false, nil
	}
	tagger, ok := cloud.(eni.Tagging)
	if !ok {
		return false, fmt.Errorf("cloud client %T cannot tag enis", cloud)
	}
	if err := tagger.TagENI(ctx, id, map[string]string{TagFixedReleaseAt: releaseTag(releaseAt), TagFixedParkedBy: node.InstanceID}); err != nil {
		if errors.Is(err, eni.ErrNotFound) {
			return false, nil
		}
		return false, err
	}
	if !here {
		return true, nil // Available already: parked by this tag
	}
	if c.Status == eni.StatusAttaching {
		if c, err = waitENIStatus(ctx, cloud, cfg, id, eni.StatusInUse); err != nil {
			return false, err
		}
	}
	if c.Status == eni.StatusInUse {
		if c.TrunkID != "" {
			t, ok := cloud.(eni.Trunking)
			if !ok {
				return false, fmt.Errorf("detach member eni %s: cloud client %T cannot: %w", id, cloud, ErrNoTrunk)
			}
			err = t.DetachMember(ctx, id, node.InstanceID, c.TrunkID)
		} else {
			err = cloud.DetachENI(ctx, id, node.InstanceID)
		}
		if err != nil && !errors.Is(err, eni.ErrInvalidState) && !errors.Is(err, eni.ErrNotFound) {
			return false, fmt.Errorf("detach: %w", err)
		}
	}
	return true, waitDetached(ctx, cloud, cfg, id, node.InstanceID)
}

// waitDetached polls the cloud until ENI id is no longer attached to
// instanceID: Available, or already attached by another node (which may
// happen before this one looks, once the ENI is free), or gone.
func waitDetached(ctx context.Context, cloud eni.Client, cfg config.Config, id, instanceID string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(cfg.AttachTimeout))
	defer cancel()
	last := "unknown"
	err := poll(ctx, cfg, func() (bool, error) {
		got, err := cloud.ENIs(ctx, eni.ENIFilter{IDs: []string{id}})
		if err != nil && ctx.Err() == nil {
			return false, fmt.Errorf("describe eni %s: %w", id, err)
		}
		if len(got) == 0 {
			return err == nil, nil
		}
		last = got[0].Status
		return got[0].InstanceID != instanceID || got[0].Status == eni.StatusAvailable, nil
	})
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("wait for eni %s to leave %s (still %s): %w", id, instanceID, last, ctx.Err())
	}
	return err
}

// settleAttaching handles a record "attaching" found by the lease holder:
// the ADD that wrote it is gone. An ENI it left attached here is parked
// (its pod's release time counted from now); otherwise the record goes.
func settleAttaching(ctx context.Context, db Store, cloud eni.Client, node Node, cfg config.Config, f store.FixedENI, now time.Time) error {
	got, err := cloud.ENIs(ctx, eni.ENIFilter{IDs: []string{f.ID}})
	if err != nil {
		return err
	}
	if len(got) == 0 || got[0].InstanceID != node.InstanceID {
		return db.Update(func(tx *store.WriteTx) error { return tx.DeleteFixedENI(f.ID) })
	}
	releaseAt := f.Fixed.ReleaseAt(now)
	parked, err := detachFixed(ctx, cloud, node, cfg, f.ID, releaseAt)
	if err != nil {
		return fmt.Errorf("park fixed eni %s of %s after an attach cut short: %w", f.ID, f.Pod, err)
	}
	return db.Update(func(tx *store.WriteTx) error {
		if err := tx.DeleteFixedENI(f.ID); err != nil {
			return err
		}
		if !parked {
			return nil
		}
		if !releaseAt.IsZero() {
			f.State, f.Since, f.ReleaseAt = store.FixedParked, now, releaseAt
			f.Fixed.PodGoneAt = now
			if err := tx.PutFixedENI(f); err != nil {
				return err
			}
		}
		_, err := tx.AppendEvent(store.Event{Level: slog.LevelWarn, Reason: "FixedENIParked", Object: "eni/" + f.ID,
			Message: fmt.Sprintf("fixed eni %s (%s) of pod %s was left attached by an ADD cut short; detached and kept for the pod in the zone (release %s)", f.ID, f.IP, f.Pod, releaseTag(releaseAt))})
		return err
	})
}

// expireParked deletes a fixed ENI this node parked once its release time
// came, if the cloud still has it Available as this node parked it, and
// drops the record either way (deleted reports a delete).
func expireParked(ctx context.Context, db Store, cloud eni.Client, node Node, f store.FixedENI) (deleted bool, err error) {
	got, err := cloud.ENIs(ctx, eni.ENIFilter{IDs: []string{f.ID}})
	if err != nil {
		return false, err
	}
	why := "it is gone from the cloud"
	if len(got) == 1 {
		c := got[0]
		switch {
		case c.Status != eni.StatusAvailable || c.Tags[TagFixedParkedBy] != node.InstanceID || c.Tags[TagFixedReleaseAt] != releaseTag(f.ReleaseAt):
			why = fmt.Sprintf("another node has it (%s on %q, parked by %q until %q)", c.Status, c.InstanceID, c.Tags[TagFixedParkedBy], c.Tags[TagFixedReleaseAt])
		default:
			err := cloud.DeleteENI(ctx, f.ID)
			switch {
			case err == nil || errors.Is(err, eni.ErrNotFound):
				deleted, why = true, ""
			case errors.Is(err, eni.ErrInvalidState):
				why = "a node attaches it"
			default:
				return false, fmt.Errorf("delete expired fixed eni %s of %s: %w", f.ID, f.Pod, err)
			}
		}
	}
	return deleted, db.Update(func(tx *store.WriteTx) error {
		if err := tx.DeleteFixedENI(f.ID); err != nil {
			return err
		}
		ev := store.Event{Level: slog.LevelInfo, Reason: "FixedENIReleased", Object: "eni/" + f.ID,
			Message: fmt.Sprintf("deleted fixed eni %s (%s) of pod %s: the pod did not come back by %s", f.ID, f.IP, f.Pod, f.ReleaseAt.Format(time.RFC3339))}
		if !deleted {
			ev.Reason, ev.Message = "FixedENIForgotten", fmt.Sprintf("fixed eni %s (%s) of pod %s, parked here until %s: not deleted, %s", f.ID, f.IP, f.Pod, f.ReleaseAt.Format(time.RFC3339), why)
		}
		_, err := tx.AppendEvent(ev)
		return err
	})
}

// FixedInCloud is one fixed ENI as the cloud and this node see it.
type FixedInCloud struct {
	eni.ENI
	// Here is what this node's store says of it: "attached", "kept"
	// (its pod gone, waiting here), "parked" (this node parked it),
	// "attaching", or "" when this node knows nothing of it.
	Here string `json:"here,omitempty"`
}

// ListFixed lists the fixed ENIs veni created in the region (pod "" for
// all) with what this node knows of them (one DescribeNetworkInterfaces).
func ListFixed(ctx context.Context, db Store, cloud eni.Client, pod string) ([]FixedInCloud, error) {
	tags := map[string]string{TagCreator: TagCreatorValue, TagFixed: TagFixedValue}
	if pod != "" {
		tags[TagPod] = PodTag(pod)
	}
	got, err := cloud.ENIs(ctx, eni.ENIFilter{Tags: tags})
	if err != nil {
		return nil, fmt.Errorf("list fixed enis: %w", err)
	}
	here := make(map[string]string)
	err = db.View(func(tx *store.ReadTx) error {
		enis, err := tx.ENIs()
		if err != nil {
			return err
		}
		for _, e := range enis {
			switch {
			case e.Kept():
				here[e.ID] = "kept"
			case e.Fixed != nil:
				here[e.ID] = "attached"
			}
		}
		recs, err := tx.FixedENIs()
		for _, f := range recs {
			here[f.ID] = string(f.State)
		}
		return err
	})
	out := make([]FixedInCloud, 0, len(got))
	for _, c := range got {
		out = append(out, FixedInCloud{ENI: c, Here: here[c.ID]})
	}
	slices.SortFunc(out, func(a, b FixedInCloud) int {
		return cmp.Or(cmp.Compare(a.Tags[TagPod], b.Tags[TagPod]), a.CreationTime.Compare(b.CreationTime))
	})
	return out, err
}

// ReleaseFixed deletes the fixed ENIs of pod (an operator's way to give a
// Never, or any, fixed IP back): Available ones, and ones kept on this
// node, detached first. One attached to another instance, or held by a
// pod here, is refused: release it where it is, once its pod is gone. It
// takes the allocator lease and returns the ENIs deleted.
//
// May return a *store.LeaseHeldError.
func ReleaseFixed(ctx context.Context, db Store, cloud eni.Client, node Node, cfg config.Config, pod string) ([]string, error) {
	lease, err := acquireAllocator(ctx, db, node, cfg)
	if err != nil {
		return nil, err
	}
	defer lease.release()
	ctx = lease.ctx
	cands, err := cloud.ENIs(ctx, eni.ENIFilter{Tags: map[string]string{TagCreator: TagCreatorValue, TagFixed: TagFixedValue, TagPod: PodTag(pod)}})
	if err != nil {
		return nil, fmt.Errorf("look up the fixed enis of %s: %w", pod, err)
	}
	local := make(map[string]store.ENI)
	err = db.View(func(tx *store.ReadTx) error {
		enis, err := tx.ENIs()
		for _, e := range enis {
			if e.Fixed != nil && e.Pod == pod {
				local[e.ID] = e
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	var (
		deleted []string
		errs    []error
	)
	for _, c := range cands {
		e, known := local[c.ID]
		switch {
		case known && !e.Kept():
			errs = append(errs, fmt.Errorf("fixed eni %s (%s): pod %s holds it on this node; delete the pod first", c.ID, c.PrimaryIP, pod))
			continue
		case c.Status != eni.StatusAvailable && c.InstanceID != node.InstanceID:
			errs = append(errs, fmt.Errorf("fixed eni %s (%s) is %s on instance %s: release it there once its pod is gone (veni ipam fixed release on that node)", c.ID, c.PrimaryIP, c.Status, c.InstanceID))
			continue
		}
		if known {
			// No ADD may take it back while it goes.
			err := db.Update(func(tx *store.WriteTx) error {
				cur, err := tx.ENI(c.ID)
				if err != nil || !cur.Kept() {
					return cmp.Or(err, store.ErrInUse)
				}
				cur.Fixed.Detaching = true
				return tx.PutENI(cur)
			})
			if err != nil {
				errs = append(errs, fmt.Errorf("fixed eni %s: %w", c.ID, err))
				continue
			}
		}
		if c.Status != eni.StatusAvailable {
			if _, err := detachFixed(ctx, cloud, node, cfg, c.ID, time.Now()); err != nil {
				errs = append(errs, fmt.Errorf("detach fixed eni %s: %w", c.ID, err))
				continue
			}
		}
		if err := cloud.DeleteENI(ctx, c.ID); err != nil && !errors.Is(err, eni.ErrNotFound) {
			errs = append(errs, fmt.Errorf("delete fixed eni %s: %w", c.ID, err))
			continue
		}
		deleted = append(deleted, c.ID)
		err := db.Update(func(tx *store.WriteTx) error {
			if err := tx.DeleteFixedENI(c.ID); err != nil {
				return err
			}
			if e, err := tx.ENI(c.ID); err == nil {
				if err := tx.DeleteIP(e.PrimaryIP); err != nil {
					return err
				}
				if err := tx.DeleteENI(c.ID); err != nil {
					return err
				}
			}
			_, err := tx.AppendEvent(store.Event{Level: slog.LevelInfo, Reason: "FixedENIReleased", Object: "eni/" + c.ID,
				Message: fmt.Sprintf("deleted fixed eni %s (%s) of pod %s at an operator's request", c.ID, c.PrimaryIP, pod)})
			return err
		})
		errs = append(errs, err)
		lease.renew()
	}
	// Records of ENIs the cloud no longer has go too.
	errs = append(errs, db.Update(func(tx *store.WriteTx) error {
		recs, err := tx.FixedENIs()
		for _, f := range recs {
			if f.Pod == pod && !slices.ContainsFunc(cands, func(c eni.ENI) bool { return c.ID == f.ID }) {
				if err := tx.DeleteFixedENI(f.ID); err != nil {
					return err
				}
			}
		}
		return err
	}))
	return deleted, errors.Join(errs...)
}

// creationTags are the tags of an ENI veni creates: eni_tags, then veni's
// own (creator, instance), the pod's for a pod's own ENI, and TagFixed for
// a fixed one.
func creationTags(cfg config.Config, node Node, pod string, fixed *store.Fixed) map[string]string {
	tags := maps.Clone(cfg.ENITags)
	if tags == nil {
		tags = make(map[string]string)
	}
	tags[TagCreator], tags[TagInstance] = TagCreatorValue, node.InstanceID
	if pod != "" {
		tags[TagPod] = PodTag(pod)
	}
	if fixed != nil {
		tags[TagFixed] = TagFixedValue
	}
	return tags
}

// fixedCopy is a copy of a fixed policy for a record, nil for none.
func fixedCopy(f *store.Fixed) *store.Fixed {
	if f == nil {
		return nil
	}
	c := *f
	c.PodGoneAt, c.Detaching = time.Time{}, false
	return &c
}
