package ipam

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/eni"
	"github.com/veni-cni/veni/store"
)

// Tags veni puts on every ENI it creates, so it can find its own ENIs again
// (after a crash, or to clean up leaks) and never touch anyone else's.
const (
	TagCreator      = "creator"
	TagCreatorValue = "veni"
	TagInstance     = "veni.io/instance" // the instance the ENI was created for
	// TagPod names, on an ENI veni created for one pod (exclusive or trunk
	// member), the pod it was created for ("namespace/name"); for humans:
	// an idle one may serve another pod later.
	TagPod = "veni.io/pod"
)

// maxSecondaryENIs is how many secondary ENIs the node may have: the
// instance type's ENIs minus the primary, capped by max_eni.
func maxSecondaryENIs(node Node, cfg config.Config) int {
	n := max(node.Limits.ENIs-1, 0)
	if cfg.MaxENI > 0 {
		n = min(n, cfg.MaxENI)
	}
	return n
}

// MaxPods is how many pods fit on the node. Shared ENIs: its secondary ENIs
// (max_eni caps them) times the addresses each holds besides its primary.
// Exclusive ENI mode: one pod per secondary ENI (MaxExclusivePods).
//
// In prefix mode every slot is a /28 of 16 pods: Terway's
// (IPv4PerAdapter−1)×16×(TotalAdapters−1), with max_eni capping the ENIs;
// in dual stack too, each ENI's one /80 giving its pods their IPv6.
// In dual stack each ENI carries min(its IPv4 slots, its IPv6 quota), on
// an IPv6-only node its IPv6 quota, in prefix mode too (prefix6.go).
func MaxPods(node Node, cfg config.Config) int {
	if cfg.ExclusiveENI() {
		return MaxExclusivePods(node, cfg)
	}
	if v6Prefix(cfg) {
		return maxSecondaryENIs(node, cfg) * podsPerENI(node, cfg)
	}
	if cfg.PrefixMode() {
		if cfg.DualStack() && node.Limits.IPv6PerENI < prefix6sPerENI {
			return 0 // no /80: no pod gets its IPv6
		}
		return maxSecondaryENIs(node, cfg) * perENI(node) * PrefixSize
	}
	return maxSecondaryENIs(node, cfg) * podsPerENI(node, cfg)
}

// createENI creates, attaches and records one ENI with up to want IPs and
// returns how many IPs it added.
//
// May return an error wrapping ErrBackoff or ErrPoolExhausted.
func createENI(ctx context.Context, db Store, cloud eni.Client, node Node, cfg config.Config, p *pool, want int) (int, error) {
	now := time.Now()
	have := 0
	for _, e := range p.enis {
		if e.ID != node.PrimaryENIID {
			have++
		}
	}
	if limit := maxSecondaryENIs(node, cfg); have >= limit {
		return 0, fmt.Errorf("create eni: node has %d of %d secondary enis (instance type %s, max_eni %d): %w",
			have, limit, node.Limits.InstanceType, cfg.MaxENI, ErrPoolExhausted)
	}
	if b, ok := p.state.ActiveBackoff(store.ScopeENIQuota, now); ok {
		return 0, &BackoffError{Scope: store.ScopeENIQuota, Backoff: b}
	}
	vsw, err := pickVSwitch(ctx, db, cloud, node, cfg, p)
	if err != nil {
		return 0, err
	}
	sgs := cfg.SecurityGroupIDs()
	if len(sgs) == 0 {
		sgs = node.SecurityGroupIDs
	}
	if len(sgs) == 0 {
		return 0, fmt.Errorf("create eni: no security group (set security_group or security_groups in eni_conf): %w", config.ErrInvalid)
	}
	tags := maps.Clone(cfg.ENITags)
	if tags == nil {
		tags = make(map[string]string)
	}
	tags[TagCreator], tags[TagInstance] = TagCreatorValue, node.InstanceID
	opts := eni.CreateENIOptions{
		VSwitchID:        vsw.ID,
		SecurityGroupIDs: sgs,
		Tags:             tags,
		Description:      "veni pod addresses for " + node.InstanceID,
		ResourceGroupID:  cfg.ResourceGroupID,
		SecondaryIPs:     min(want, perENI(node), eni.MaxIPsPerAssign),
		// Unique per attempt: the client retries one call with the same
		// token, so a lost answer does not create a second ENI.
		ClientToken: "veni-" + node.InstanceID + "-" + strconv.FormatInt(now.UnixNano(), 36),
	}
	trunk := wantTrunk(node, cfg, p)
	if trunk {
		// The node's first ENI carries its members too (trunking).
		opts.Trunk, opts.Description = true, "veni trunk and pod addresses for "+node.InstanceID
	}
	if cfg.PrefixMode() {
		// The cloud takes either addresses or prefixes in one create.
		opts.SecondaryIPs, opts.Prefixes = 0, prefixesFor(want, perENI(node))
	}
	if cfg.DualStack() {
		// The pod pairs come with the ENI: as many IPv6 as IPv4, within
		// the smaller quota.
		opts.SecondaryIPs = min(want, perENIDual(node), eni.MaxIPsPerAssign)
		opts.IPv6s = opts.SecondaryIPs
	}
	if dualPrefix(cfg) {
		// IPv4 prefixes and the ENI's one /80 (prefix6.go) in the create.
		opts.SecondaryIPs, opts.IPv6s = 0, 0
		opts.Prefixes, opts.IPv6Prefixes = prefixesFor(want, perENI(node)), prefix6sPerENI
	}
	if cfg.IPv6Only() {
		// The ENI keeps its primary IPv4 (every ENI has one); pods get
		// IPv6 only.
		opts.SecondaryIPs, opts.IPv6s = 0, min(want, node.Limits.IPv6PerENI, eni.MaxIPsPerAssign)
	}
	if v6Prefix(cfg) {
		// Its /80 and nothing else: the pods' addresses are the /80's.
		opts.SecondaryIPs, opts.Prefixes, opts.IPv6s, opts.IPv6Prefixes = 0, 0, 0, prefix6sPerENI
	}
	mark, err := markCreating(db, now)
	if err != nil {
		return 0, err
	}
	created, err := cloud.CreateENI(ctx, opts)
	if err != nil {
		if berr := backoffFor(db, cfg, p, err, "", vsw.ID); berr != nil {
			return 0, berr
		}
		return 0, fmt.Errorf("create eni on %s: %w", vsw.ID, err)
	}
	rec := store.ENI{
		ID: created.ID, MAC: created.MAC.String(), InstanceID: node.InstanceID, ZoneID: vsw.ZoneID,
		VSwitchID: vsw.ID, VSwitchCIDR: vsw.CIDR, Gateway: gatewayOf(vsw.CIDR), PrimaryIP: created.PrimaryIP,
		SecurityGroupIDs: sgs, Owned: true, State: store.ENIAttaching, CreatedAt: now,
	}
	if trunk {
		rec.Kind = store.ENITrunk
	}
	if cfg.WantsIPv6() {
		rec.IPv6CIDR, rec.Gateway6 = vsw.IPv6CIDR.Masked(), gateway6Of(vsw.IPv6CIDR)
	}
	// Recorded before attaching, so a crash from here on leaves a trace
	// Reconcile finishes or cleans up.
	err = db.Update(func(tx *store.WriteTx) error {
		if err := tx.PutENI(rec); err != nil {
			return err
		}
		ps, err := tx.PoolState()
		if err != nil {
			return err
		}
		if mark.IsZero() || !ps.CreatingSince.Equal(mark) {
			return nil // an earlier create was cut short: leave its mark for the sweep
		}
		ps.CreatingSince = time.Time{}
		return tx.PutPoolState(ps)
	})
	if err != nil {
		return 0, err
	}
	p.enis = append(p.enis, rec)
	if err := cloud.AttachENI(ctx, created.ID, node.InstanceID); err != nil {
		return 0, fmt.Errorf("attach eni %s to %s: %w", created.ID, node.InstanceID, err)
	}
	attached, err := waitAttached(ctx, cloud, node, cfg, created)
	if err != nil {
		return 0, err
	}
	n, err := makeReady(ctx, db, node, rec, attached, nil)
	if err != nil {
		return 0, err
	}
	appendEvent(db, slog.LevelInfo, "ENICreated", "eni/"+rec.ID, fmt.Sprintf("created eni %s on %s with %d ips (%d prefixes)", rec.ID, vsw.ID, n.free, len(attached.Prefixes)))
	if prefix6Mode(cfg) && len(attached.IPv6Prefixes) == 0 {
		return 0, fmt.Errorf("eni %s came with no ipv6 prefix: %w", rec.ID, eni.ErrIPv6Unsupported)
	}
	if v6Prefix(cfg) {
		made, err := newSlots6(db, p, rec.ID, min(want, podsPerENI(node, cfg)), time.Now())
		return n.free + made, err
	}
	if dualPrefix(cfg) {
		four, _ := splitFamilies(n.freeAddrs)
		return four, nil
	}
	if cfg.DualStack() {
		pairs := pairsOf(n.freeAddrs)
		if pairs == 0 && n.free > 0 {
			// Not zero pods and no error: grow would create ENI after
			// ENI. The next grow tops this one up.
			return 0, fmt.Errorf("eni %s came with %d addresses but no IPv4 and IPv6 pair: %w", rec.ID, n.free, eni.ErrIPv6Unsupported)
		}
		return pairs, nil
	}
	return n.free, nil
}

// gatewayOf returns the vSwitch gateway, which Alibaba Cloud puts at the
// CIDR's last address minus 2 (253 in a /24).
func gatewayOf(cidr netip.Prefix) netip.Addr {
	if !cidr.IsValid() || !cidr.Addr().Is4() {
		return netip.Addr{}
	}
	b := cidr.Masked().Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v |= (1 << (32 - cidr.Bits())) - 1
	v -= 2
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// makeReady waits for the node to see the ENI's link, then records its
// secondary IPs (recordCloudIPs: free, or bound when a pod on the host uses
// them) and marks it ready, in that order: an IP is never handed out
// before the node can route it. host is nil for an ENI veni just created,
// whose addresses no pod can be using.
func makeReady(ctx context.Context, db Store, node Node, rec store.ENI, c eni.ENI, host *hostView) (recorded, error) {
	if node.WaitLink != nil {
		if err := node.WaitLink(ctx, c.MAC); err != nil {
			return recorded{}, fmt.Errorf("wait for link of eni %s (%s): %w", rec.ID, c.MAC, err)
		}
	}
	if c.PrimaryIP.IsValid() {
		rec.PrimaryIP = c.PrimaryIP
	}
	if len(c.MAC) > 0 {
		rec.MAC = c.MAC.String()
	}
	addrs, prefixes := knownAddrs(ctx, c, rec.PrimaryIP, host)
	now := time.Now()
	n, err := recordCloudIPs(ctx, db, rec.ID, addrs, prefixes, now, host)
	if err != nil {
		return n, err
	}
	rec.Prefixes = mergePrefixes(rec.Prefixes, c.Prefixes)
	rec.IPv6Prefixes = mergePrefixes(rec.IPv6Prefixes, c.IPv6Prefixes)
	rec.State, rec.ReadyAt = store.ENIReady, now
	return n, db.Update(func(tx *store.WriteTx) error { return tx.PutENI(rec) })
}

// waitAttached waits for an ENI veni just attached to the node. Instance
// metadata lists an ENI under its MAC once the attach is done, so where
// the node reads metadata (node.AttachedENIs: the daemon and the plugin
// set it) the wait costs no API call, as AWS VPC CNI waits on its metadata
// service. Without metadata, or when it fails or never lists the ENI, it
// polls DescribeNetworkInterfaces. The addresses are those the create
// returned, or metadata's when the create listed none.
func waitAttached(ctx context.Context, cloud eni.Client, node Node, cfg config.Config, created eni.ENI) (eni.ENI, error) {
	if node.AttachedENIs == nil || len(created.MAC) == 0 {
		return waitENIStatus(ctx, cloud, cfg, created.ID, eni.StatusInUse)
	}
	mctx, cancel := context.WithTimeout(ctx, time.Duration(cfg.AttachTimeout))
	defer cancel()
	out := created
	err := poll(mctx, cfg, func() (bool, error) {
		listed, err := node.AttachedENIs(mctx)
		if err != nil {
			return false, err
		}
		for _, m := range listed {
			if bytes.Equal(m.MAC, created.MAC) {
				out.Status, out.InstanceID = eni.StatusInUse, node.InstanceID
				if len(out.PrivateIPs) <= 1 && len(m.PrivateIPs) > 0 {
					out.PrivateIPs = slices.Clone(m.PrivateIPs)
				}
				return true, nil
			}
		}
		return false, nil
	})
	switch {
	case err == nil:
		return out, nil
	case ctx.Err() != nil:
		return eni.ENI{}, fmt.Errorf("wait for eni %s (%s) in instance metadata: %w", created.ID, created.MAC, ctx.Err())
	default:
		// Metadata failed, or the ENI is attached for the cloud but not
		// listed yet: ask the API, the full wait once more.
		return waitENIStatus(ctx, cloud, cfg, created.ID, eni.StatusInUse)
	}
}

// waitENIStatus polls the cloud until the ENI reaches status, for at most
// cfg.AttachTimeout.
func waitENIStatus(ctx context.Context, cloud eni.Client, cfg config.Config, id, status string) (eni.ENI, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(cfg.AttachTimeout))
	defer cancel()
	var out eni.ENI
	last := "unknown"
	err := poll(ctx, cfg, func() (bool, error) {
		got, err := cloud.ENIs(ctx, eni.ENIFilter{IDs: []string{id}})
		if err != nil && ctx.Err() == nil {
			return false, fmt.Errorf("describe eni %s: %w", id, err)
		}
		if len(got) == 1 {
			if got[0].Status == status {
				out = got[0]
				return true, nil
			}
			last = got[0].Status
		}
		return false, nil
	})
	if err != nil && ctx.Err() != nil {
		return eni.ENI{}, fmt.Errorf("wait for eni %s to be %s (still %s): %w", id, status, last, ctx.Err())
	}
	return out, err
}

// poll calls check until it reports done or fails, or ctx ends (its
// error then). It follows Alibaba's advice for asynchronous operations: no
// look right after the request (an attach takes a second or more), then
// further and further apart (×1.5), so a 3 s attach costs about three
// looks, not a dozen. With the default poll_interval (250 ms) the first
// look comes after 1 s and the gaps stop growing at 5 s.
func poll(ctx context.Context, cfg config.Config, check func() (bool, error)) error {
	delay, maxDelay := 4*time.Duration(cfg.PollInterval), 20*time.Duration(cfg.PollInterval)
	for {
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		if done, err := check(); done || err != nil {
			return err
		}
		delay = min(delay*3/2, maxDelay)
	}
}

// pickVSwitch chooses where a new ENI goes: among the zone's candidate
// vSwitches not backed off, the one with the most free IPs (ordered) or a
// random one with free IPs (random).
//
// May return an error wrapping ErrBackoff.
func pickVSwitch(ctx context.Context, db Store, cloud eni.Client, node Node, cfg config.Config, p *pool) (eni.VSwitch, error) {
	now := time.Now()
	ids := cfg.VSwitches[node.ZoneID]
	if len(ids) == 0 && node.VSwitchID != "" {
		ids = []string{node.VSwitchID}
	}
	if len(ids) == 0 {
		return eni.VSwitch{}, fmt.Errorf("pick vswitch: none for zone %q (set vswitches in eni_conf): %w", node.ZoneID, config.ErrInvalid)
	}
	var open []string
	var blocked error
	for _, id := range ids {
		if b, ok := p.state.ActiveBackoff(store.VSwitchScope(id), now); ok {
			blocked = &BackoffError{Scope: store.VSwitchScope(id), Backoff: b}
			continue
		}
		open = append(open, id)
	}
	if len(open) == 0 {
		return eni.VSwitch{}, blocked
	}
	if len(open) == 1 && open[0] == node.VSwitchID && node.VSwitchCIDR.IsValid() && !cfg.WantsIPv6() {
		// Nothing to choose, and metadata gave its CIDR: no call. If it
		// has run out, CreateNetworkInterface says so and backs it off.
		return eni.VSwitch{ID: node.VSwitchID, ZoneID: node.ZoneID, CIDR: node.VSwitchCIDR}, nil
	}
	vs, err := cloud.VSwitches(ctx, open...)
	if err != nil {
		return eni.VSwitch{}, fmt.Errorf("describe vswitches %v: %w", open, err)
	}
	if cfg.VSwitchPolicy == config.VSwitchOrdered {
		slices.SortStableFunc(vs, func(a, b eni.VSwitch) int { return b.AvailableIPs - a.AvailableIPs })
	} else {
		rand.Shuffle(len(vs), func(i, j int) { vs[i], vs[j] = vs[j], vs[i] })
	}
	var noIPv6 []string
	for _, v := range vs {
		if cfg.WantsIPv6() && !v.IPv6CIDR.IsValid() {
			noIPv6 = append(noIPv6, v.ID)
			continue
		}
		if v.AvailableIPs > 0 {
			return v, nil
		}
		// Like Terway: a vSwitch reported empty is not asked again soon.
		blocked = recordBackoff(db, p, store.VSwitchScope(v.ID), "VSwitchExhausted",
			fmt.Sprintf("vswitch %s has no free address", v.ID), time.Duration(cfg.VSwitchBackoff))
	}
	if blocked == nil && len(noIPv6) > 0 {
		return eni.VSwitch{}, fmt.Errorf("pick vswitch: ip_stack %s needs vswitches with IPv6 turned on, and %v have none: %w", cfg.IPStack, noIPv6, eni.ErrIPv6Unsupported)
	}
	if blocked == nil {
		blocked = fmt.Errorf("pick vswitch: cloud described none of %v: %w", open, eni.ErrNotFound)
	}
	return eni.VSwitch{}, blocked
}

// appendEvent logs an event in the store; failing to is only logged, since
// the event log is for humans.
func appendEvent(db Store, level slog.Level, reason, object, msg string) {
	err := db.Update(func(tx *store.WriteTx) error {
		_, err := tx.AppendEvent(store.Event{Level: level, Reason: reason, Object: object, Message: msg})
		return err
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		slog.Warn("append event", "reason", reason, "err", err)
	}
}

// markCreating records that a CreateNetworkInterface is about to be sent
// (store.PoolState.CreatingSince) and returns the mark, for the caller to
// clear when it records the ENI. An earlier mark is kept and the zero time
// returned: that create was cut short, and its mark waits for the sweep.
func markCreating(db Store, now time.Time) (mark time.Time, err error) {
	err = db.Update(func(tx *store.WriteTx) error {
		ps, err := tx.PoolState()
		if err != nil {
			return err
		}
		if !ps.CreatingSince.IsZero() {
			return nil
		}
		ps.CreatingSince, mark = now, now
		return tx.PutPoolState(ps)
	})
	return mark, err
}
