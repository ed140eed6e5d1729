package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/veni-cni/veni/ipam"
	"github.com/veni-cni/veni/netplumb"
	"github.com/veni-cni/veni/node"
	"github.com/veni-cni/veni/podnet"
	"github.com/veni-cni/veni/podpolicy"
	"github.com/veni-cni/veni/store"
	"github.com/veni-cni/veni/telemetry"
)

// Options tune the daemon's loops. Zero fields take the defaults.
type Options struct {
	// SyncInterval is how often the pool is reconciled with the cloud even
	// when nothing happened on the node (Terway's ip_pool_sync_period).
	SyncInterval time.Duration
	// MinWakeGap is the least time between two passes woken by store
	// writes, so a burst of ADDs costs one pass, not one each.
	MinWakeGap time.Duration
	// Logger receives the daemon's log; nil means slog.Default().
	Logger *slog.Logger
	// Host is the node's kernel as the pool sees it; nil means the
	// namespace the daemon runs in, through netplumb.
	Host Host
	// Kube connects the daemon to its cluster; zero runs it standalone.
	Kube KubeOptions
	// OnReady, when set, runs once the first full pass is done: the pool
	// is warm and the links match the store (the DaemonSet writes the CNI
	// conflist then).
	OnReady func()
	// Build is which veni runs, for the metrics' veni_build_info.
	Build telemetry.Build
	// NodeName is the node's name for NetworkPolicy (pods' spec.nodeName)
	// when it runs without Kube; empty: the host name.
	NodeName string
	// PolicyKernel enforces NetworkPolicy in the kernel; nil keeps the
	// compiled records in the store only.
	PolicyKernel podpolicy.Kernel
}

// Defaults for Options.
const (
	DefaultSyncInterval = time.Minute
	DefaultMinWakeGap   = time.Second
)

// Daemon is one node's daemon.
type Daemon struct {
	env  *node.Env
	opts Options
	log  *slog.Logger

	node        ipam.Node
	lastBlocked error             // why the pool could not grow on the last pass
	fixedRetry  time.Duration     // back-off of a fixed-ENI deadline the passes keep missing (armFixed)
	fixedAt     time.Time         // when the fixed-ENI timer fires; zero while it is not set
	fast        fastPath          // the eBPF fast path (fastpath.go)
	kube        kubeSide          // the Kubernetes side (kube.go)
	policy      *podpolicy.Syncer // the NetworkPolicy loop (policy.go)
	policyWake  chan struct{}     // wakes the policy loop (store, folder, peer pods)
	policyENIs  policyENIs        // ENIs hooked for Service traffic's egress (policy.go)

	tel *telemetry.Exporter // telemetry: metrics (telemetry.go); nil when off
}

// New prepares a daemon for the node described by env.
func New(env *node.Env, opts Options) *Daemon {
	if opts.SyncInterval <= 0 {
		opts.SyncInterval = DefaultSyncInterval
	}
	if opts.MinWakeGap <= 0 {
		opts.MinWakeGap = DefaultMinWakeGap
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Host == nil {
		opts.Host = nodeHost{}
	}
	return &Daemon{env: env, opts: opts, log: opts.Logger, policyWake: make(chan struct{}, 1)}
}

// Run starts the daemon and returns when ctx is cancelled (SIGTERM) or
// start-up fails for good. Pods keep their addresses when it stops.
func (d *Daemon) Run(ctx context.Context) error {
	d.env.LogNotes(d.log)
	defer d.startTelemetry(ctx)()
	facts, err := d.waitFacts(ctx)
	if err != nil {
		return err
	}
	d.node = d.env.IPAMNode(facts)
	d.node.WaitLink = d.opts.Host.WaitLink
	d.node.HostPods = d.opts.Host.HostPods
	d.node.Holder = "veni daemon"
	d.log.Info("node", "instance", facts.InstanceID, "type", facts.InstanceType, "zone", facts.ZoneID,
		"enis", facts.ENIs, "ipv4PerENI", facts.IPv4PerENI, "store", d.env.Store.Path)
	// A node keeps its pool mode (Terway: PrefixModeImmutable): refuse to
	// run the other one rather than mix secondary IPs and prefixes.
	if err := ipam.CheckMode(d.env.Store, d.env.Config); err != nil {
		return err
	}
	d.log.Info("pool", "mode", d.env.Config.PoolMode(), "stack", d.env.Config.IPStack, "maxPods", ipam.MaxPods(d.node, d.env.Config))
	if msg := ipam.StackWarning(d.node, d.env.Config); msg != "" {
		// Terway falls back to IPv4 here without a word; veni caps the
		// pool and says so: in the log, the event log and veni status.
		d.log.Warn("pool capped by the instance type's IPv6", "stack", d.env.Config.IPStack, "detail", msg)
		err := d.env.Store.Update(func(tx *store.WriteTx) error {
			_, err := tx.AppendEvent(store.Event{Time: time.Now(), Level: slog.LevelWarn, Reason: "IPv6Capped", Message: msg})
			return err
		})
		if err != nil {
			d.log.Warn("record event", "err", err)
		}
	}
	d.checkNeighbourLimits(ipam.MaxPods(d.node, d.env.Config), facts.ENIs)
	d.startFastPath(facts.InstanceID)
	defer d.stopFastPath()

	// Watch before the first pass: a write made while it runs (an ADD
	// taking the address the pass just added) must wake the next one.
	writes, closeWatch, err := watchFile(d.env.Store.Path)
	if err != nil {
		d.log.Warn("store watch unavailable; relying on the timer", "err", err)
	} else {
		defer closeWatch()
	}

	d.startKube(ctx, facts)
	d.policy = d.startPolicy(ctx, facts)

	// Restart: make the links match the store before anything else, so a
	// node whose routing tables were lost carries its pods' traffic again.
	d.restoreENIs(ctx)
	d.fullPass(ctx)
	if d.opts.OnReady != nil {
		d.opts.OnReady()
	}
	ticker := time.NewTicker(d.opts.SyncInterval)
	defer ticker.Stop()
	// Fixed ENIs have deadlines of their own (a kept ENI to park once
	// fixed_eni_hold passed, a parked one to delete at its release time):
	// a timer wakes the pass that meets the next one.
	fixed := time.NewTimer(time.Hour)
	defer fixed.Stop()
	stopTimer(fixed)
	d.armFixed(fixed, false)
	var lastWake time.Time
	for {
		select {
		case <-ctx.Done():
			d.log.Info("stopping")
			return nil
		case <-ticker.C:
			d.fullPass(ctx)
			d.armFixed(fixed, false)
		case <-fixed.C:
			d.fixedAt = time.Time{}
			d.reconcile(ctx)
			d.armFixed(fixed, true)
		case c := <-d.kube.configs:
			d.applyConfig(c)
			d.fullPass(ctx)
			d.armFixed(fixed, false)
		case <-writes:
			// Coalesce the burst of events one transaction makes.
			if gap := time.Since(lastWake); gap < d.opts.MinWakeGap {
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(d.opts.MinWakeGap - gap):
				}
			}
			drain(writes)
			lastWake = time.Now()
			d.localPass(ctx)
			d.notifyKube()
			d.armFixed(fixed, false)
		}
	}
}

// armFixed keeps t set for the next fixed-ENI deadline (a kept ENI to
// park once fixed_eni_hold passed, a parked one to delete at its release
// time). Between passes (fired false) it only ever brings the timer
// forward: store writes come every second while pods churn, and pushing a
// due deadline back on each would starve it. After the timer's own pass
// (fired true), a deadline still due was missed (the cloud failed, or
// another process held the allocator lease) and is retried after
// fixedRetry, which doubles up to the sync interval while that goes on.
func (d *Daemon) armFixed(t *time.Timer, fired bool) {
	next, err := ipam.NextFixedDue(d.env.Store, d.env.Config)
	if err != nil {
		d.log.Warn("read fixed enis", "err", err)
		next = time.Now().Add(d.opts.SyncInterval)
	}
	now := time.Now()
	switch {
	case next.IsZero():
		d.fixedRetry = 0
		if !d.fixedAt.IsZero() {
			stopTimer(t)
			d.fixedAt = time.Time{}
		}
		return
	case fired && !next.After(now):
		d.fixedRetry = min(max(2*d.fixedRetry, time.Second), d.opts.SyncInterval)
		next = now.Add(d.fixedRetry)
	case fired:
		d.fixedRetry = 0
	case !d.fixedAt.IsZero() && !next.Before(d.fixedAt):
		return // armed for this deadline or an earlier one
	}
	stopTimer(t)
	d.fixedAt = next
	t.Reset(max(time.Until(next), 0))
}

// stopTimer stops t and drops a fire it has not delivered.
func stopTimer(t *time.Timer) {
	if !t.Stop() {
		select {
		case <-t.C:
		default:
		}
	}
}

// waitFacts learns the node's facts, retrying while metadata or the cloud
// is unreachable (a node boots before its network is fully up). Unlike the
// CNI plugin, which trusts the cached facts, the daemon checks them against
// metadata at start (node.Env.Restart) and discovers afresh when they are
// stale or name another instance or type: quotas change with an instance
// type, and a store carried over from another instance must not steer this
// one.
func (d *Daemon) waitFacts(ctx context.Context) (store.NodeInfo, error) {
	delay := time.Second
	for {
		facts, cached, err := d.env.Restart(ctx, node.FactsMaxAge, time.Now())
		if err == nil && cached {
			d.log.Info("node facts from the store; metadata names the same instance", "age", time.Since(facts.UpdatedAt).Round(time.Second))
			return facts, nil
		}
		if err == nil {
			return facts, d.cacheFacts(facts)
		}
		d.log.Warn("node facts unavailable, retrying", "err", err, "in", delay)
		select {
		case <-ctx.Done():
			return store.NodeInfo{}, fmt.Errorf("node facts: %w", err)
		case <-time.After(delay):
		}
		delay = min(2*delay, 30*time.Second)
	}
}

func (d *Daemon) cacheFacts(facts store.NodeInfo) error {
	return d.env.Store.Update(func(tx *store.WriteTx) error {
		old, err := tx.Node()
		if err == nil && old.InstanceID != facts.InstanceID {
			d.log.Error("store was written for another instance; its ENIs will be reconciled away",
				"store", d.env.Store.Path, "storeInstance", old.InstanceID, "instance", facts.InstanceID)
		}
		return tx.PutNode(facts)
	})
}

// checkNeighbourLimits warns, in the log and as an event (which becomes a
// Kubernetes event on the node), when the kernel's neighbour table cannot
// hold an entry per pod and per gateway: "veni install" raises the limits,
// but a node installed otherwise may still have the kernel's defaults.
func (d *Daemon) checkNeighbourLimits(maxPods, enis int) {
	l, err := d.opts.Host.NeighbourLimits()
	if errors.Is(err, netplumb.ErrNoNeighbourLimits) {
		d.log.Debug("neighbour table limits not visible here", "err", err)
		return
	}
	if err != nil {
		d.log.Warn("read neighbour table limits", "err", err)
		return
	}
	need := netplumb.NeighbourEntries(maxPods, enis)
	msg := netplumb.NeighbourShortfall(l, need)
	if msg == "" {
		return
	}
	s := netplumb.SuggestedNeighbourLimits(need)
	msg += fmt.Sprintf("; raise them (veni install does: gc_thresh1/2/3 = %d/%d/%d)", s.Thresh1, s.Thresh2, s.Thresh3)
	d.log.Warn("neighbour table too small", "maxPods", maxPods, "need", need, "gc_thresh2", l.Thresh2, "gc_thresh3", l.Thresh3)
	err = d.env.Store.Update(func(tx *store.WriteTx) error {
		_, err := tx.AppendEvent(store.Event{Time: time.Now(), Level: slog.LevelWarn, Reason: "NeighbourTableTooSmall", Message: msg})
		return err
	})
	if err != nil {
		d.log.Warn("record event", "err", err)
	}
}

// fullPass garbage-collects, then reconciles the pool with the cloud.
func (d *Daemon) fullPass(ctx context.Context) {
	defer d.passDone(telemetry.PassFull, time.Now())
	d.gc(ctx)
	d.reconcile(ctx)
	d.notifyKube()
}

// reconcile brings the fast path and the pool in line with the store and
// the cloud.
func (d *Daemon) reconcile(ctx context.Context) {
	d.syncFastPath(ctx)
	d.syncPolicyENIs(ctx)
	rep, err := ipam.Reconcile(ctx, d.env.Store, d.env.Cloud(), d.node, d.env.Config, time.Now())
	d.tel.Reconciled(rep, err)
	if err != nil {
		d.log.Error("reconcile", "err", err)
		return
	}
	d.lastBlocked = rep.Blocked
	d.logReport(rep)
	d.restoreNewENIs(ctx, rep)
}

// localPass runs after store writes. It is cheap unless the pool is below
// its minimum, the only thing a write can make urgent; idle reclaim and
// cloud sync wait for the timer.
func (d *Daemon) localPass(ctx context.Context) {
	defer d.passDone(telemetry.PassLocal, time.Now())
	d.gc(ctx)
	health, err := ipam.PoolHealth(d.env.Store, time.Now())
	if err != nil {
		d.log.Error("read pool", "err", err)
		return
	}
	if health.Free >= d.env.Config.MinPoolSize {
		return
	}
	if d.lastBlocked != nil {
		// Growing failed for a reason a write does not change (back-off,
		// quota): wait for the timer rather than loop on our own writes.
		return
	}
	d.reconcile(ctx) // GC ran above
}

// gc releases, through the one release path, allocations whose owner is
// gone: reservations of ADDs that died, bound addresses of pods whose
// network namespace is gone.
func (d *Daemon) gc(ctx context.Context) {
	dead := podnet.OwnerGone(d.env.Store.ClaimsDir(), time.Duration(d.env.Config.GCGrace), time.Now())
	released, err := podnet.GC(ctx, podnet.Node{Store: d.env.Store, InstanceID: d.node.InstanceID}, dead, "OwnerGone")
	for _, a := range released {
		d.log.Info("gc released", "ip", a.IP, "owner", a.Key, "pod", a.PodNamespace+"/"+a.PodName, "netns", a.NetNS)
	}
	if err != nil {
		d.log.Error("gc", "err", err)
	}
	d.pruneEndpoints()
}

func (d *Daemon) logReport(rep ipam.Report) {
	attrs := []any{"idle", rep.Idle, "used", rep.Used, "took", rep.Took.Round(time.Millisecond)}
	if rep.LeaseHeld {
		attrs = append(attrs, "leaseHeld", true)
	}
	if rep.AddedIPs > 0 {
		attrs = append(attrs, "added", rep.AddedIPs)
	}
	if n := len(rep.ReleasedIPs); n > 0 {
		attrs = append(attrs, "released", n)
	}
	if n := len(rep.DeletedENIs); n > 0 {
		attrs = append(attrs, "deletedENIs", rep.DeletedENIs)
	}
	if n := len(rep.LostIPs); n > 0 {
		attrs = append(attrs, "lostIPs", rep.LostIPs)
	}
	if rep.Blocked != nil {
		attrs = append(attrs, "blocked", rep.Blocked.Error())
	}
	if len(rep.Errors) > 0 {
		attrs = append(attrs, "errors", errors.Join(rep.Errors...).Error())
	}
	d.log.Info("pool", attrs...)
}

// storeENIs reads the ENIs the store records.
func (d *Daemon) storeENIs() ([]store.ENI, error) {
	var enis []store.ENI
	err := d.env.Store.View(func(tx *store.ReadTx) error {
		var err error
		enis, err = tx.ENIs()
		return err
	})
	return enis, err
}

// restoreENIs makes sure every ready ENI in the store is up with its routing
// table on this node.
func (d *Daemon) restoreENIs(ctx context.Context) {
	enis, err := d.storeENIs()
	if err != nil {
		d.log.Error("read enis", "err", err)
		return
	}
	for _, e := range enis {
		if e.State != store.ENIReady {
			continue
		}
		d.ensureENI(ctx, e)
	}
}

func (d *Daemon) restoreNewENIs(ctx context.Context, rep ipam.Report) {
	if len(rep.AdoptedENIs) > 0 {
		d.restoreENIs(ctx)
	}
}

func (d *Daemon) ensureENI(ctx context.Context, e store.ENI) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ifindex, err := d.opts.Host.EnsureENI(ctx, e)
	if err != nil {
		d.log.Warn("eni link", "eni", e.ID, "mac", e.MAC, "err", err)
		return
	}
	d.log.Debug("eni ready", "eni", e.ID, "ifindex", ifindex, "table", e.Table)
	d.attachENIProgram(e.ID, ifindex)
}

// watchFile signals writes to the store file. It watches the directory so
// that a store created or replaced after the daemon started is seen too.
func watchFile(path string) (<-chan struct{}, func(), error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, nil, err
	}
	if err := w.Add(filepath.Dir(path)); err != nil {
		w.Close()
		return nil, nil, fmt.Errorf("watch %s: %w", filepath.Dir(path), err)
	}
	out := make(chan struct{}, 1)
	go func() {
		for {
			select {
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				// A store replaced in place (a damaged file moved aside,
				// a restore) arrives as Create of the name.
				if ev.Name == path && (ev.Has(fsnotify.Write) || ev.Has(fsnotify.Create)) {
					select {
					case out <- struct{}{}:
					default:
					}
				}
			case _, ok := <-w.Errors:
				if !ok {
					return
				}
			}
		}
	}()
	return out, func() { w.Close() }, nil
}

func drain(c <-chan struct{}) {
	for {
		select {
		case <-c:
		default:
			return
		}
	}
}
