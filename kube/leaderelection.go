package kube

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
)

// LeaderElectionOptions configure a LeaderElector. The timing fields have
// client-go's meaning and defaults.
type LeaderElectionOptions struct {
	// Namespace and Name of the coordination.k8s.io/v1 Lease.
	Namespace string
	Name      string
	// Identity of this candidate (e.g. the node name); unique among them.
	Identity string
	// LeaseDuration is how long non-leaders wait, after last seeing the
	// lease change, before they may take it. Zero means 15 s.
	LeaseDuration time.Duration
	// RenewDeadline is how long the leader keeps retrying a renewal before
	// it gives up leadership. Zero means 10 s. Must be < LeaseDuration.
	RenewDeadline time.Duration
	// RetryPeriod is the wait between attempts to acquire or renew. Zero
	// means 2 s. Must be < RenewDeadline/1.2 (the acquire loop's jitter).
	RetryPeriod time.Duration
	// ReleaseOnCancel clears holderIdentity when Run's ctx ends while
	// leading, so another candidate takes over at once instead of after
	// LeaseDuration.
	ReleaseOnCancel bool
	// OnStartedLeading runs in its own goroutine when leadership is
	// acquired; its ctx ends when leadership is lost or Run's ctx ends.
	OnStartedLeading func(ctx context.Context)
	// OnStoppedLeading is called when Run returns (leader or not).
	OnStoppedLeading func()
	// OnNewLeader is called (in its own goroutine) when the observed
	// holder changes, this candidate included.
	OnNewLeader func(identity string)
	// Logger receives transitions and failures; nil means slog.Default().
	Logger *slog.Logger
}

// LeaderElector campaigns for a Lease with client-go's semantics: the lease
// is taken when it has no holder, or when the observer's own clock says
// LeaseDuration has passed since the record last changed (clocks of
// different nodes are never compared); it is renewed every RetryPeriod;
// all writes carry the resourceVersion last read, so two candidates never
// both succeed.
type LeaderElector struct {
	c    *Client
	opts LeaderElectionOptions
	log  *slog.Logger
	now  func() time.Time

	mu           sync.Mutex
	lease        *Lease    // last read or written: its resourceVersion guards writes
	observed     LeaseSpec // spec of lease
	observedRaw  []byte    // JSON of observed: a change restarts the clock
	observedTime time.Time // when observed last changed, by our clock
	reported     string    // last holder passed to OnNewLeader
}

// NewLeaderElector checks opts and returns an elector; Run campaigns.
// May return an error wrapping ErrInvalidConfig.
func NewLeaderElector(c *Client, opts LeaderElectionOptions) (*LeaderElector, error) {
	if opts.LeaseDuration == 0 {
		opts.LeaseDuration = 15 * time.Second
	}
	if opts.RenewDeadline == 0 {
		opts.RenewDeadline = 10 * time.Second
	}
	if opts.RetryPeriod == 0 {
		opts.RetryPeriod = 2 * time.Second
	}
	switch {
	case opts.Namespace == "" || opts.Name == "":
		return nil, fmt.Errorf("leader election: %w: lease namespace and name are required", ErrInvalidConfig)
	case opts.Identity == "":
		return nil, fmt.Errorf("leader election: %w: identity is required", ErrInvalidConfig)
	case opts.LeaseDuration <= opts.RenewDeadline:
		return nil, fmt.Errorf("leader election: %w: lease duration %s must exceed renew deadline %s", ErrInvalidConfig, opts.LeaseDuration, opts.RenewDeadline)
	case float64(opts.RenewDeadline) <= 1.2*float64(opts.RetryPeriod):
		return nil, fmt.Errorf("leader election: %w: renew deadline %s must exceed 1.2 × retry period %s", ErrInvalidConfig, opts.RenewDeadline, opts.RetryPeriod)
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &LeaderElector{c: c, opts: opts, now: time.Now, log: log.With("lease", Key(opts.Namespace, opts.Name), "identity", opts.Identity)}, nil
}

// IsLeader reports whether the last observed record names this candidate.
func (le *LeaderElector) IsLeader() bool {
	le.mu.Lock()
	defer le.mu.Unlock()
	return le.isLeaderLocked()
}

func (le *LeaderElector) isLeaderLocked() bool {
	return le.observed.HolderIdentity != nil && *le.observed.HolderIdentity == le.opts.Identity
}

// Leader returns the holder identity last observed ("" if none).
func (le *LeaderElector) Leader() string {
	le.mu.Lock()
	defer le.mu.Unlock()
	return deref(le.observed.HolderIdentity)
}

// Run campaigns until this candidate leads, then renews until a renewal
// fails for RenewDeadline or ctx ends; then it returns (releasing the lease
// if ReleaseOnCancel). Like client-go, it campaigns once: loop to stand
// again.
func (le *LeaderElector) Run(ctx context.Context) {
	defer func() {
		if le.opts.OnStoppedLeading != nil {
			le.opts.OnStoppedLeading()
		}
	}()
	if !le.acquire(ctx) {
		return
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if le.opts.OnStartedLeading != nil {
		go le.opts.OnStartedLeading(lctx)
	}
	le.renew(lctx)
}

// acquire retries every RetryPeriod (jittered by up to 1.2×) until this
// candidate holds the lease or ctx ends.
func (le *LeaderElector) acquire(ctx context.Context) bool {
	le.log.Info("attempting to acquire leader lease")
	for {
		ok := le.tryAcquireOrRenew(ctx)
		le.maybeReportTransition()
		if ok {
			le.log.Info("acquired leader lease")
			return true
		}
		d := le.opts.RetryPeriod + time.Duration(rand.Float64()*1.2*float64(le.opts.RetryPeriod))
		Sleep(ctx, d)
		if ctx.Err() != nil {
			return false
		}
	}
}

// renew renews every RetryPeriod; a renewal that keeps failing for
// RenewDeadline ends leadership.
func (le *LeaderElector) renew(ctx context.Context) {
	for ctx.Err() == nil {
		dctx, cancel := context.WithTimeout(ctx, le.opts.RenewDeadline)
		ok := false
		for dctx.Err() == nil {
			if ok = le.tryAcquireOrRenew(dctx); ok {
				break
			}
			Sleep(dctx, le.opts.RetryPeriod)
		}
		cancel()
		le.maybeReportTransition()
		if !ok {
			if ctx.Err() == nil {
				le.log.Warn("failed to renew leader lease within the deadline, stepping down", "deadline", le.opts.RenewDeadline)
			}
			break
		}
		Sleep(ctx, le.opts.RetryPeriod)
	}
	if le.opts.ReleaseOnCancel {
		le.release()
	}
}

// tryAcquireOrRenew is client-go's: a leader renews with an optimistic
// update; otherwise read, create if missing, wait while someone else's
// lease is valid by our clock, then write ourselves as holder.
func (le *LeaderElector) tryAcquireOrRenew(ctx context.Context) bool {
	le.mu.Lock()
	defer le.mu.Unlock()
	now := le.now()
	rec := LeaseSpec{
		HolderIdentity:       ptr(le.opts.Identity),
		LeaseDurationSeconds: ptr(int32(le.opts.LeaseDuration / time.Second)),
		AcquireTime:          ptr(NewMicroTime(now)),
		RenewTime:            ptr(NewMicroTime(now)),
	}

	// Fast path: the leader renews what it last wrote.
	if le.isLeaderLocked() && le.leaseValidLocked(now) && le.lease != nil {
		rec.AcquireTime, rec.LeaseTransitions = le.observed.AcquireTime, le.observed.LeaseTransitions
		err := le.updateLocked(ctx, rec)
		if err == nil {
			return true
		}
		le.log.Info("optimistic lease renewal failed, re-reading", "err", err)
	}

	lease, err := Get(ctx, le.c, Leases, le.opts.Namespace, le.opts.Name)
	if err != nil {
		if !IsNotFound(err) {
			le.log.Warn("get leader lease", "err", err)
			return false
		}
		rec.LeaseTransitions = ptr(int32(0))
		created, err := Create(ctx, le.c, Leases, &Lease{
			ObjectMeta: ObjectMeta{Namespace: le.opts.Namespace, Name: le.opts.Name},
			Spec:       rec,
		}, WriteOptions{})
		if err != nil {
			le.log.Warn("create leader lease", "err", err)
			return false
		}
		le.lease = created
		le.setObservedLocked(rec)
		return true
	}
	le.lease = lease
	if raw, _ := json.Marshal(lease.Spec); !bytes.Equal(raw, le.observedRaw) {
		le.setObservedLocked(lease.Spec)
	}
	if deref(lease.Spec.HolderIdentity) != "" && le.leaseValidLocked(now) && !le.isLeaderLocked() {
		return false // held by someone else, and not yet expired by our clock
	}
	if le.isLeaderLocked() {
		rec.AcquireTime, rec.LeaseTransitions = le.observed.AcquireTime, le.observed.LeaseTransitions
	} else {
		rec.LeaseTransitions = ptr(deref(le.observed.LeaseTransitions) + 1)
	}
	if err := le.updateLocked(ctx, rec); err != nil {
		le.log.Info("update leader lease", "err", err)
		return false
	}
	return true
}

// updateLocked writes rec over the last read lease (its resourceVersion
// makes the write conditional) and observes it.
func (le *LeaderElector) updateLocked(ctx context.Context, rec LeaseSpec) error {
	l := *le.lease
	l.Spec = rec
	out, err := Update(ctx, le.c, Leases, &l, WriteOptions{})
	if err != nil {
		return err
	}
	le.lease = out
	le.setObservedLocked(rec)
	return nil
}

func (le *LeaderElector) setObservedLocked(rec LeaseSpec) {
	le.observed = rec
	le.observedRaw, _ = json.Marshal(rec)
	le.observedTime = le.now()
}

// leaseValidLocked: the observed record's own duration has not passed
// since we saw it change.
func (le *LeaderElector) leaseValidLocked(now time.Time) bool {
	d := time.Duration(deref(le.observed.LeaseDurationSeconds)) * time.Second
	return le.observedTime.Add(d).After(now)
}

// release clears holderIdentity if we lead, keeping leaseTransitions, with
// a 1 s duration so observers may take over at once (client-go's release).
func (le *LeaderElector) release() {
	le.mu.Lock()
	defer le.mu.Unlock()
	if !le.isLeaderLocked() || le.lease == nil {
		return
	}
	now := NewMicroTime(le.now())
	rec := LeaseSpec{
		HolderIdentity:       ptr(""),
		LeaseDurationSeconds: ptr(int32(1)),
		AcquireTime:          &now,
		RenewTime:            &now,
		LeaseTransitions:     le.observed.LeaseTransitions,
	}
	ctx, cancel := context.WithTimeout(context.Background(), le.opts.RenewDeadline)
	defer cancel()
	err := le.updateLocked(ctx, rec)
	if IsConflict(err) {
		// The lease changed since we last wrote it: most often our own
		// renewal, cancelled by the same cancel that brought us here
		// after the server had applied it. Release what the server
		// holds if it still names us; leave anyone else's alone.
		var lease *Lease
		if lease, err = Get(ctx, le.c, Leases, le.opts.Namespace, le.opts.Name); err == nil {
			if deref(lease.Spec.HolderIdentity) != le.opts.Identity {
				le.log.Info("leader lease already taken over, nothing to release", "holder", deref(lease.Spec.HolderIdentity))
				return
			}
			le.lease = lease
			rec.LeaseTransitions = lease.Spec.LeaseTransitions
			err = le.updateLocked(ctx, rec)
		}
	}
	if err != nil {
		le.log.Warn("release leader lease", "err", err)
		return
	}
	le.log.Info("released leader lease")
}

func (le *LeaderElector) maybeReportTransition() {
	le.mu.Lock()
	holder := deref(le.observed.HolderIdentity)
	if holder == le.reported {
		le.mu.Unlock()
		return
	}
	le.reported = holder
	le.mu.Unlock()
	if le.opts.OnNewLeader != nil {
		go le.opts.OnNewLeader(holder)
	}
}

func ptr[T any](v T) *T { return &v }

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
