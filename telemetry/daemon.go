package telemetry

import (
	"time"

	"github.com/veni-cni/veni/ipam"
)

// Pass kinds, as the "kind" label of veni_daemon_passes_total.
const (
	PassFull  = "full"  // timer: GC, fast-path sync, reconcile with the cloud
	PassLocal = "local" // store writes: GC, reconcile only when short of free addresses
)

// PassDone records a daemon pass of kind that took took, then counts the
// events logged since the last read (FollowEvents).
func (e *Exporter) PassDone(kind string, took time.Duration) {
	if e == nil {
		return
	}
	e.m.passes.With(kind).Inc()
	e.m.passDuration.With(kind).Observe(took.Seconds())
	e.FollowEvents()
}

// Reconciled records what a pool reconcile did: rep and err as
// ipam.Reconcile returned them.
func (e *Exporter) Reconciled(rep ipam.Report, err error) {
	if e == nil {
		return
	}
	switch {
	case err != nil:
		e.m.reconciles.With("failed").Inc()
		e.StoreError(err)
		return
	case rep.LeaseHeld:
		e.m.reconciles.With("lease_held").Inc()
		return
	case len(rep.Errors) > 0:
		e.m.reconciles.With("partial").Inc()
	default:
		e.m.reconciles.With("ok").Inc()
	}
	e.m.reconcileDur.Observe(rep.Took.Seconds())
	blocked := 0.0
	if rep.Blocked != nil {
		blocked = 1
	}
	e.m.poolBlocked.Set(blocked)
	for _, c := range []struct {
		change string
		n      int
	}{
		{"added", rep.AddedIPs}, {"released", len(rep.ReleasedIPs)}, {"synced", len(rep.SyncedIPs)},
		{"recovered", len(rep.RecoveredIPs)}, {"dropped", len(rep.DroppedIPs)}, {"lost", len(rep.LostIPs)},
	} {
		e.m.ipChanges.With(c.change).Add(float64(c.n))
	}
	for _, c := range []struct {
		change string
		n      int
	}{
		{"adopted", len(rep.AdoptedENIs)}, {"deleted", len(rep.DeletedENIs)},
	} {
		e.m.eniChanges.With(c.change).Add(float64(c.n))
	}
}
