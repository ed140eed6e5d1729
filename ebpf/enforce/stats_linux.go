package enforce

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// Stats returns every endpoint's counters, by ifindex, summed over CPUs.
func (e *Enforcer) Stats() (map[int]Stats, error) {
	out := make(map[int]Stats)
	var (
		key    uint32
		perCPU []policyPolStats
	)
	iter := e.objs.VeniPolStats.Iterate()
	for iter.Next(&key, &perCPU) {
		out[int(key)] = sumStats(perCPU)
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("read endpoint counters: %w", err)
	}
	return out, nil
}

// EndpointStats returns one endpoint's counters; an endpoint without any
// (never given a table) has zeros.
func (e *Enforcer) EndpointStats(ifindex int) (Stats, error) {
	var perCPU []policyPolStats
	err := e.objs.VeniPolStats.Lookup(uint32(ifindex), &perCPU)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return Stats{}, nil
	}
	if err != nil {
		return Stats{}, fmt.Errorf("read counters of ifindex %d: %w", ifindex, err)
	}
	return sumStats(perCPU), nil
}

func sumStats(perCPU []policyPolStats) Stats {
	var s Stats
	for _, c := range perCPU {
		s.AllowedIngress += c.Allowed[Ingress]
		s.AllowedEgress += c.Allowed[Egress]
		s.DeniedIngress += c.Denied[Ingress]
		s.DeniedEgress += c.Denied[Egress]
	}
	return s
}

// Counters returns the node's totals, summed over CPUs.
func (e *Enforcer) Counters() (Counters, error) {
	c := Counters{Dropped: make(map[Reason]uint64)}
	var perCPU []uint64
	for i := policyPolCounter(0); i < policyPolCounterPOL_C_MAX; i++ {
		if err := e.objs.VeniPolCounters.Lookup(uint32(i), &perCPU); err != nil {
			return Counters{}, fmt.Errorf("read counter %d: %w", i, err)
		}
		var sum uint64
		for _, v := range perCPU {
			sum += v
		}
		switch {
		case i < policyPolCounterPOL_C_ALLOW_NEW:
			if sum > 0 {
				c.Dropped[Reason(i-policyPolCounterPOL_C_DROP)] = sum
			}
		case i == policyPolCounterPOL_C_ALLOW_NEW:
			c.AllowedNew = sum
		case i == policyPolCounterPOL_C_ALLOW_RENEWED:
			c.Renewed = sum
		case i == policyPolCounterPOL_C_ALLOW_HOST:
			c.AllowedHost = sum
		case i == policyPolCounterPOL_C_CT_FULL:
			c.CTFull = sum
		case i == policyPolCounterPOL_C_NO_CT:
			c.NoCT = sum
		case i == policyPolCounterPOL_C_EVENT_LOST:
			c.EventsLost = sum
		case i == policyPolCounterPOL_C_DEFERRED:
			c.Deferred = sum
		}
	}
	return c, nil
}

// Memory returns the kernel memory of the enforcer's maps by pin name, as
// the kernel accounts it (the "memlock" of the map's fdinfo, which is the
// memory in use since Linux 6.5: the rule trie's grows with its entries).
func (e *Enforcer) Memory() (map[string]uint64, error) {
	out := make(map[string]uint64)
	for name, m := range e.pinnedMaps() {
		info, err := (*m).Info()
		if err != nil {
			return nil, fmt.Errorf("map %s: %w", name, err)
		}
		if b, ok := info.Memlock(); ok {
			out[name] = b
		}
	}
	return out, nil
}
