package kubesync

import (
	"context"
	"encoding/json"
	"time"

	"github.com/veni-cni/veni/kube"
	"github.com/veni-cni/veni/store"
)

// crdRecheck is how often the daemon looks again for the PodNetworking
// CRD when the API server does not serve it.
var crdRecheck = 5 * time.Minute

// runPodNetworkings mirrors Terway's PodNetworkings into the store, so an
// ADD can tell whether its pod asks for a dedicated ENI (package
// podnetwork). A cluster without the CRD (network.alibabacloud.com/v1beta1
// not served: 404) has none: the mirror is emptied and the CRD looked for
// again every crdRecheck, without a warning per try.
func (s *Sync) runPodNetworkings(ctx context.Context) error {
	for ctx.Err() == nil {
		_, err := kube.List(ctx, s.opts.Client, kube.PodNetworkings, "", kube.ListOptions{Limit: 1})
		switch {
		case err == nil:
			s.log.Info("PodNetworking CRD served: mirroring PodNetworkings")
			go func() {
				// Those deleted while the daemon was down go once the
				// informer holds the server's list.
				for !s.pns.HasSynced() {
					if kube.Sleep(ctx, 100*time.Millisecond); ctx.Err() != nil {
						return
					}
				}
				if err := replacePodNetworkings(s.opts.Store, s.pns.List()); err != nil {
					s.log.Warn("rewrite the PodNetworking mirror", "err", err)
				}
			}()
			return s.pns.Run(ctx)
		case kube.IsNotFound(err):
			if err := replacePodNetworkings(s.opts.Store, nil); err != nil {
				s.log.Warn("empty the PodNetworking mirror", "err", err)
			}
			s.log.Debug("PodNetworking CRD not served; pods get shared ENIs unless their node is exclusive", "recheck", crdRecheck)
			kube.Sleep(ctx, crdRecheck)
		default:
			s.log.Warn("list PodNetworkings", "err", err)
			kube.Sleep(ctx, 10*time.Second)
		}
	}
	return nil
}

// pnRecord is what the mirror keeps of a PodNetworking: all of it.
func pnRecord(p *kube.PodNetworking) (store.PodNetworking, error) {
	raw, err := json.Marshal(p)
	return store.PodNetworking{Name: p.Name, UID: p.UID, Raw: raw}, err
}

// putPodNetworking writes one PodNetworking (nil: delete name) at once:
// they change rarely, and an ADD must see a new one as soon as possible.
func (s *Sync) putPodNetworking(name string, p *kube.PodNetworking) {
	err := s.opts.Store.Update(func(tx *store.WriteTx) error {
		if p == nil {
			return tx.DeleteMirrorPodNetworking(name)
		}
		rec, err := pnRecord(p)
		if err != nil {
			return err
		}
		return tx.PutMirrorPodNetworking(rec)
	})
	if err != nil {
		s.log.Warn("mirror PodNetworking", "name", name, "err", err)
	}
}

// replacePodNetworkings makes the mirror's PodNetworkings exactly pns.
func replacePodNetworkings(db store.File, pns []*kube.PodNetworking) error {
	return db.Update(func(tx *store.WriteTx) error {
		keep := make(map[string]bool, len(pns))
		for _, p := range pns {
			rec, err := pnRecord(p)
			if err != nil {
				return err
			}
			keep[p.Name] = true
			if err := tx.PutMirrorPodNetworking(rec); err != nil {
				return err
			}
		}
		old, err := tx.MirrorPodNetworkings()
		if err != nil {
			return err
		}
		for _, p := range old {
			if !keep[p.Name] {
				if err := tx.DeleteMirrorPodNetworking(p.Name); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
