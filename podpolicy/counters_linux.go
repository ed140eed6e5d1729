package podpolicy

import (
	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/store"
)

// Counters lists the node's policy endpoints with their counters, named
// by the store's allocations, and the memory of the enforcer's maps. It
// loads nothing: a node that never had a policy endpoint gives an error
// wrapping ErrNoEnforcer.
func Counters(db store.File, cfg config.Config, instanceID string) (NodeCounters, error) {
	k, err := OpenNodeKernelIfUsed(cfg, instanceID)
	if err != nil {
		return NodeCounters{}, err
	}
	defer k.Close()
	e := k.(enforcerKernel).e
	eps, err := e.Endpoints()
	if err != nil {
		return NodeCounters{}, err
	}
	stats, err := e.Stats()
	if err != nil {
		return NodeCounters{}, err
	}
	pods, err := podsByVeth(db)
	if err != nil {
		return NodeCounters{}, err
	}
	mem, err := e.Memory()
	if err != nil {
		return NodeCounters{}, err
	}
	out := NodeCounters{MapBytes: mem, Endpoints: make([]EndpointCounters, 0, len(eps))}
	for _, ep := range eps {
		pod, ok := pods[ep.Ifindex]
		if !ok {
			pod = "-"
		}
		out.Endpoints = append(out.Endpoints, EndpointCounters{Pod: pod, Endpoint: ep, Stats: stats[ep.Ifindex]})
	}
	return out, nil
}
