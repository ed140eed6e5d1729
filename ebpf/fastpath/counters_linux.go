package fastpath

import (
	"fmt"

	"github.com/cilium/ebpf"
)

// field returns the field of hc that counter c feeds, or nil for a counter
// Go does not know (a test keeps the two lists in step).
func (hc *HookCounters) field(c fastpathCounter) *uint64 {
	switch c {
	case fastpathCounterCNT_PACKETS:
		return &hc.Packets
	case fastpathCounterCNT_REDIRECT_PEER:
		return &hc.RedirectPeer
	case fastpathCounterCNT_REDIRECT_NEIGH:
		return &hc.RedirectNeigh
	case fastpathCounterCNT_PASS_NOT_IP:
		return &hc.PassNotIP
	case fastpathCounterCNT_PASS_MALFORMED:
		return &hc.PassMalformed
	case fastpathCounterCNT_PASS_FRAGMENT:
		return &hc.PassFragment
	case fastpathCounterCNT_PASS_PROTO:
		return &hc.PassProto
	case fastpathCounterCNT_PASS_SPECIAL:
		return &hc.PassSpecial
	case fastpathCounterCNT_PASS_SERVICE:
		return &hc.PassService
	case fastpathCounterCNT_PASS_HOST_CIDR:
		return &hc.PassHostCIDR
	case fastpathCounterCNT_PASS_NODE_ADDR:
		return &hc.PassNodeAddr
	case fastpathCounterCNT_PASS_HOST_FLOW:
		return &hc.PassHostFlow
	case fastpathCounterCNT_PASS_UNKNOWN_SRC:
		return &hc.PassUnknownSrc
	case fastpathCounterCNT_PASS_NOT_LOCAL:
		return &hc.PassNotLocal
	case fastpathCounterCNT_PASS_TTL:
		return &hc.PassTTL
	case fastpathCounterCNT_FIB_NOT_FWDED:
		return &hc.FIBNotForwarded
	case fastpathCounterCNT_FIB_DROP:
		return &hc.FIBDrop
	case fastpathCounterCNT_FIB_FRAG_NEEDED:
		return &hc.FIBFragNeeded
	case fastpathCounterCNT_FIB_FWD_DISABLED:
		return &hc.FIBForwardingDisabled
	case fastpathCounterCNT_FIB_OTHER_DEV:
		return &hc.FIBOtherDevice
	case fastpathCounterCNT_FIB_ERROR:
		return &hc.FIBError
	case fastpathCounterCNT_FLOW_TRACKED:
		return &hc.FlowsTracked
	case fastpathCounterCNT_FLOW_NO_MAP:
		return &hc.FlowNoMap
	case fastpathCounterCNT_DROP_SPOOFED:
		return &hc.DropSpoofed
	case fastpathCounterCNT_PASS_PLAIN_POD:
		return &hc.PassPlainPod
	case fastpathCounterCNT_DROP_POLICY:
		return &hc.DropPolicy
	}
	return nil
}

func (c *FamilyCounters) hook(h fastpathHook) *HookCounters {
	switch h {
	case fastpathHookHOOK_FROM_POD:
		return &c.FromPod
	case fastpathHookHOOK_TO_POD:
		return &c.ToPod
	case fastpathHookHOOK_FROM_ENI:
		return &c.FromENI
	}
	return nil
}

// Counters reads the per-CPU counters of both families and sums them.
func (d *Datapath) Counters() (Counters, error) {
	var v4 FamilyCounters
	if err := readCounters(d.objs.VeniCounters, &v4); err != nil {
		return Counters{}, err
	}
	out := Counters{FromPod: v4.FromPod, ToPod: v4.ToPod, FromENI: v4.FromENI}
	if err := readCounters(d.objs.VeniCounters6, &out.IPv6); err != nil {
		return Counters{}, fmt.Errorf("ipv6: %w", err)
	}
	return out, nil
}

// readCounters sums the per-CPU counters of one family's map into out.
func readCounters(m *ebpf.Map, out *FamilyCounters) error {
	var perCPU []uint64
	for h := fastpathHook(0); h < fastpathHookHOOK_MAX; h++ {
		hc := out.hook(h)
		for c := fastpathCounter(0); c < fastpathCounterCNT_MAX; c++ {
			key := uint32(h)*uint32(fastpathCounterCNT_MAX) + uint32(c)
			if err := m.Lookup(key, &perCPU); err != nil {
				return fmt.Errorf("read counter %d: %w", key, err)
			}
			var sum uint64
			for _, v := range perCPU {
				sum += v
			}
			if f := hc.field(c); f != nil {
				*f = sum
			}
		}
	}
	return nil
}
