package kubesync

import (
	"context"
	"errors"
	"hash/fnv"
	"time"

	"github.com/veni-cni/veni/eni"
	"github.com/veni-cni/veni/ipam"
	"github.com/veni-cni/veni/kube"
)

// The cluster-wide sweep: ENIs veni created (tagged creator=veni) that sat
// Available for sweepAfter belong to no node any more (its instance was
// released, or its creator died before attaching and recording it) and are
// deleted. One daemon per cluster does it, elected through a Lease; each
// node's own daemon only ever acts on its own ENIs otherwise.
const (
	sweepLease   = "veni-eni-sweeper"
	sweepAfter   = 5 * time.Minute
	sweepEvery   = time.Minute
	recheckEvery = 10 * time.Minute // how often a daemon that does not stand looks whether anyone leads
	candidates   = 3                // daemons standing for the lease, about, whatever the cluster's size
)

// campaign stands for the sweeper's Lease if this node is one of the few
// candidates (chosen by a hash of the node name against the cluster's
// size, so a 10,000-node cluster has about three), or when the Lease has
// gone unrenewed for recheckEvery (no candidate is alive).
func (s *Sync) campaign(ctx context.Context) error {
	if s.opts.Cloud == nil {
		return nil
	}
	for {
		stand, err := s.standing(ctx)
		if err != nil {
			s.log.Debug("sweeper candidacy", "err", err)
		}
		if stand {
			le, err := kube.NewLeaderElector(s.opts.Client, kube.LeaderElectionOptions{
				Namespace: s.opts.Namespace, Name: sweepLease, Identity: s.opts.NodeName,
				ReleaseOnCancel: true, Logger: s.log, OnStartedLeading: s.sweep,
				OnNewLeader: func(id string) { s.log.Info("eni sweeper", "leader", id) },
			})
			if err != nil {
				return err
			}
			le.Run(ctx) // returns when leadership is lost or ctx ends
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(recheckEvery):
		}
	}
}

// standing decides whether this daemon campaigns now.
func (s *Sync) standing(ctx context.Context) (bool, error) {
	list, err := kube.List(ctx, s.opts.Client, kube.Nodes, "", kube.ListOptions{Limit: 1})
	if err != nil {
		return false, err
	}
	nodes := int64(len(list.Items))
	if list.RemainingItemCount != nil {
		nodes += *list.RemainingItemCount
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(s.opts.NodeName))
	if mod := max(nodes/candidates, 1); int64(h.Sum32())%mod == 0 {
		return true, nil
	}
	// Not a candidate: stand anyway if the candidates are all gone.
	l, err := kube.Get(ctx, s.opts.Client, kube.Leases, s.opts.Namespace, sweepLease)
	if kube.IsNotFound(err) {
		return false, nil // a candidate will create it
	}
	if err != nil {
		return false, err
	}
	if l.Spec.RenewTime == nil {
		return true, nil
	}
	return time.Since(l.Spec.RenewTime.Time) > recheckEvery, nil
}

// sweep runs while this daemon leads: every sweepEvery it lists veni's
// ENIs in the region and deletes those Available for sweepAfter, by its
// own clock (Describe says nothing of when an ENI became Available).
func (s *Sync) sweep(ctx context.Context) {
	s.log.Info("eni sweeper: leading")
	seen := make(map[string]time.Time)
	t := time.NewTicker(s.sweepEvery)
	defer t.Stop()
	for {
		enis, err := s.opts.Cloud.ENIs(ctx, eni.ENIFilter{Tags: map[string]string{ipam.TagCreator: ipam.TagCreatorValue}})
		if err != nil && ctx.Err() == nil {
			s.log.Warn("eni sweeper: list veni's enis", "err", err)
		}
		now := time.Now()
		available := make(map[string]bool)
		for _, e := range enis {
			if e.Status != eni.StatusAvailable || keptFixed(e, now, s.sweepAfter) {
				continue
			}
			available[e.ID] = true
			first, ok := seen[e.ID]
			if !ok {
				seen[e.ID] = now
				continue
			}
			if now.Sub(first) < s.sweepAfter {
				continue
			}
			err := s.opts.Cloud.DeleteENI(ctx, e.ID)
			if err != nil && !errors.Is(err, eni.ErrNotFound) {
				s.log.Warn("eni sweeper: delete", "eni", e.ID, "err", err)
				continue
			}
			delete(seen, e.ID)
			s.rec.Eventf(s.nodeRef(), kube.EventTypeNormal, "ENISwept", "deleted eni %s (created by veni for %s), Available since before %s", e.ID, e.Tags[ipam.TagInstance], first.Format(time.RFC3339))
			s.log.Info("eni sweeper: deleted", "eni", e.ID, "instance", e.Tags[ipam.TagInstance], "availableSince", first)
		}
		for id := range seen {
			if !available[id] {
				delete(seen, id)
			}
		}
		select {
		case <-ctx.Done():
			s.log.Info("eni sweeper: no longer leading")
			return
		case <-t.C:
		}
	}
}

// keptFixed reports whether an Available ENI is a fixed ENI parked for its
// pod (ipam.TagFixedReleaseAt) whose release time is not past by
// sweepAfter: the node that parked it deletes it then, and this sweep only
// takes over once that node has had its chance (it may be gone). Never
// means never. A fixed ENI never parked is swept as any other.
func keptFixed(e eni.ENI, now time.Time, sweepAfter time.Duration) bool {
	v, ok := e.Tags[ipam.TagFixedReleaseAt]
	switch {
	case !ok:
		return false
	case v == ipam.FixedReleaseNever:
		return true
	}
	at, err := time.Parse(time.RFC3339, v)
	return err != nil || now.Before(at.Add(sweepAfter))
}
