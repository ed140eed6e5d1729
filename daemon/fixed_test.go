package daemon

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/veni-cni/veni/eni"
	"github.com/veni-cni/veni/ipam"
	"github.com/veni-cni/veni/store"
)

// Ensure the daemon parks a fixed ENI fixed_eni_hold after its pod went
// (tagged for its pod's next node, detached), on time although the store
// is written every 50 ms meanwhile (pods churning: each write wakes a
// pass, after the production's 1 s gap, and none may push the due
// deadline back or drop its timer's fire), with its sync timer an hour
// away.
func TestDaemon_ParksFixedENIOnTime(t *testing.T) {
	n := newLoopNode(t, `, "exclusive_eni_type": "eniOnly", "min_pool_size": 0, "max_pool_size": 0, "fixed_eni_hold": "500ms"`)
	n.wakeGap = time.Second
	n.start(t)
	var facts store.NodeInfo
	eventually(t, "the node's facts", func() bool {
		return n.env.Store.View(func(tx *store.ReadTx) (err error) { facts, err = tx.Node(); return err }) == nil
	})
	spec := n.env.IPAMNode(facts)
	owner := ipam.Owner{ContainerID: "c1", IfName: "eth0", PodNamespace: "ns", PodName: "db-0"}
	res, err := ipam.AllocateExclusive(context.Background(), n.env.Store, n.env.Cloud(), spec, n.env.Config, owner,
		ipam.ExclusiveRequest{Pod: "ns/db-0", Fixed: &store.Fixed{ReleaseAfter: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	if err := ipam.Commit(n.env.Store, res.Key, ipam.HostSide{}, nil); err != nil {
		t.Fatal(err)
	}
	churn, stop := context.WithCancel(context.Background())
	defer stop()
	go func() {
		for churn.Err() == nil {
			_ = n.env.Store.Update(func(tx *store.WriteTx) error {
				_, err := tx.AppendEvent(store.Event{Level: slog.LevelInfo, Reason: "Churn"})
				return err
			})
			time.Sleep(50 * time.Millisecond)
		}
	}()
	gone := time.Now()
	if err := ipam.Release(n.env.Store, res.Key); err != nil {
		t.Fatal(err)
	}
	// Watched in the sim's own state: the node's client keeps its API
	// budget for the daemon.
	eventually(t, "the fixed eni parked", func() bool {
		for _, e := range n.cloud.Snapshot().ENIs {
			if e.ID == res.ENI.ID {
				return e.Status == eni.StatusAvailable && e.Tags[ipam.TagFixedParkedBy] == facts.InstanceID
			}
		}
		return false
	})
	t.Logf("parked %s after its pod went", time.Since(gone).Round(time.Millisecond))
	if took := time.Since(gone); took > 3*time.Second {
		t.Errorf("parked %s after its pod went, hold 500ms", took)
	}
}
