package podpolicy

import (
	"github.com/veni-cni/veni/ebpf/enforce"
	"github.com/veni-cni/veni/store"
)

// EndpointCounters is what the node's kernel holds for one pod's veth:
// whether a policy isolates it, its table, and how many flows the
// enforcer allowed and packets it dropped, per direction. Status shows
// one per endpoint.
type EndpointCounters struct {
	Pod string `json:"pod"` // namespace/name from the store, "-" when it has none
	enforce.Endpoint
	enforce.Stats
}

// NodeCounters is the enforcer's state on a node, as status shows it.
type NodeCounters struct {
	Endpoints []EndpointCounters `json:"endpoints,omitempty"`
	// MapBytes is the kernel memory of the enforcer's maps, by map, as the
	// kernel accounts it.
	MapBytes map[string]uint64 `json:"mapBytes,omitempty"`
}

// podsByVeth names the store's pods by their host veth's ifindex.
func podsByVeth(db store.File) (map[int]string, error) {
	pods := make(map[int]string)
	err := db.View(func(tx *store.ReadTx) error {
		allocs, err := tx.Allocations()
		for _, a := range allocs {
			if a.HostIfindex > 0 && a.PodName != "" {
				pods[a.HostIfindex] = store.PodKey(a.PodNamespace, a.PodName)
			}
		}
		return err
	})
	return pods, err
}
