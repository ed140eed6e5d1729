package ipam

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/eni"
	"github.com/veni-cni/veni/store"
)

// leakSweepEvery bounds how often Reconcile looks for leaked ENIs without
// evidence of one: at most once per cloud sync (cloud_sync_interval, or
// when metadata disagrees with the store), and not more than this often.
// A sweep costs one DescribeNetworkInterfaces. With evidence (a create cut
// short, store.PoolState.CreatingSince) it sweeps once lease_ttl has passed.
const leakSweepEvery = 10 * time.Minute

// leakSweepDue says whether Reconcile should sweep for leaked ENIs now.
func leakSweepDue(ps store.PoolState, cfg config.Config, synced bool, now time.Time) bool {
	if !ps.CreatingSince.IsZero() && now.Sub(ps.CreatingSince) >= time.Duration(cfg.LeaseTTL) {
		return true
	}
	return synced && now.Sub(ps.LastLeakSweep) >= leakSweepEvery
}

// SweepLeakedENIs deletes the ENIs veni created for this node (tagged with
// its instance) that the store does not know and the cloud holds
// unattached: an ENI is recorded in the store right after CreateNetwork
// Interface returns, so a process killed in between leaves one behind. Only
// ENIs older than lease_ttl are taken: whoever created a younger one may
// still hold the allocator lease and be about to record it. It takes the
// allocator lease itself ("veni ipam gc"); Reconcile sweeps on its own
// when leakSweepDue.
//
// May return a *store.LeaseHeldError.
func SweepLeakedENIs(ctx context.Context, db Store, cloud eni.Client, node Node, cfg config.Config, now time.Time) ([]string, error) {
	lease, err := acquireAllocator(ctx, db, node, cfg)
	if err != nil {
		return nil, err
	}
	defer lease.release()
	return sweepLeaked(lease.ctx, db, cloud, node, cfg, now)
}

// sweepLeaked is SweepLeakedENIs for a caller that holds the lease.
func sweepLeaked(ctx context.Context, db Store, cloud eni.Client, node Node, cfg config.Config, now time.Time) ([]string, error) {
	tagged, err := cloud.ENIs(ctx, eni.ENIFilter{Tags: map[string]string{TagCreator: TagCreatorValue, TagInstance: node.InstanceID}})
	if err != nil {
		return nil, fmt.Errorf("sweep leaked enis: %w", err)
	}
	known := make(map[string]bool)
	err = db.View(func(tx *store.ReadTx) error {
		enis, err := tx.ENIs()
		for _, e := range enis {
			known[e.ID] = true
		}
		if err != nil {
			return err
		}
		// A fixed ENI this node attaches or parked is tendFixed's.
		recs, err := tx.FixedENIs()
		for _, f := range recs {
			known[f.ID] = true
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
	for _, c := range tagged {
		if known[c.ID] || now.Sub(c.CreationTime) < time.Duration(cfg.LeaseTTL) {
			continue
		}
		if c.Tags[TagFixedReleaseAt] != "" {
			// A fixed ENI parked at least once (this instance created
			// it; another node may hold it now): the node that parked
			// it last deletes it when its time comes.
			continue
		}
		if c.Type == eni.TypeMember && c.InstanceID == node.InstanceID {
			// An ADD died between attaching a member and recording it:
			// only its own trunk could still carry it. Unless a pod on
			// the host has its address: then the store lost it (a
			// damaged store replaced), and deleting it would cut the pod
			// off.
			if used, err := memberOnHost(ctx, node, c); used || err != nil {
				if err == nil {
					err = fmt.Errorf("a pod on this node has its address %s, the store does not know it (veni ipam verify; the pod keeps it until it is deleted)", c.PrimaryIP)
				}
				errs = append(errs, fmt.Errorf("member eni %s left alone: %w", c.ID, err))
				continue
			}
			if err := deleteMemberInCloud(ctx, cloud, node, cfg, c.ID, c.TrunkID); err != nil {
				errs = append(errs, fmt.Errorf("delete leaked member eni %s: %w", c.ID, err))
				continue
			}
			deleted = append(deleted, c.ID)
			appendEvent(db, slog.LevelWarn, "ENILeakDeleted", "eni/"+c.ID,
				fmt.Sprintf("deleted member eni %s (vlan %d on trunk %s): created by veni for %s at %s, attached but never recorded (its creator died)", c.ID, c.DeviceIndex, c.TrunkID, node.InstanceID, c.CreationTime.Format(time.RFC3339)))
			continue
		}
		if c.Status != eni.StatusAvailable {
			continue
		}
		if err := cloud.DeleteENI(ctx, c.ID); err != nil && !errors.Is(err, eni.ErrNotFound) {
			errs = append(errs, fmt.Errorf("delete leaked eni %s: %w", c.ID, err))
			continue
		}
		deleted = append(deleted, c.ID)
		appendEvent(db, slog.LevelWarn, "ENILeakDeleted", "eni/"+c.ID,
			fmt.Sprintf("deleted eni %s: created by veni for %s at %s, never attached nor recorded (its creator died)", c.ID, node.InstanceID, c.CreationTime.Format(time.RFC3339)))
	}
	return deleted, errors.Join(errs...)
}

// memberOnHost reports whether a pod veni plumbed on the host has member
// c's address. Without Node.HostPods it cannot tell, and says so.
func memberOnHost(ctx context.Context, node Node, c eni.ENI) (bool, error) {
	if node.HostPods == nil {
		return false, fmt.Errorf("cannot list the host's pods to tell whether one uses it (Node.HostPods unset)")
	}
	pods, err := node.HostPods(ctx)
	if err != nil {
		return false, fmt.Errorf("list the host's pods: %w", err)
	}
	for _, p := range pods {
		for _, ip := range p.IPs {
			if slices.Contains(c.PrivateIPs, ip) || ip == c.PrimaryIP {
				return true, nil
			}
		}
	}
	return false, nil
}
