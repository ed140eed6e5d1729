package fastpath

import (
	"net"

	"github.com/cilium/ebpf"

	"github.com/veni-cni/veni/ebpf/tc"
)

// Filter identity on a pod's host veth. The name marks the filter as
// veni's, so detaching never removes anything else on the device.
// Priority 2 leaves priority 1 to the NetworkPolicy programs
// (ebpf/enforce), which must see a packet before the fast path redirects
// it; they hand it on with TC_ACT_UNSPEC.
const (
	tcFilterPrio   = 2
	tcFilterPrefix = "veni-"
)

// attachPodTC hooks the pod programs to the host veth with a clsact qdisc
// and two direct-action filters at priority 2. The filters live and die
// with the veth, so nothing is pinned. ifindex is resolved in the calling
// thread's namespace.
func attachPodTC(ifindex int, fromPod, toPod *ebpf.Program) error {
	return tc.Attach(ifindex, tcFilterPrio,
		tc.Filter{Prog: fromPod, Name: tcFilterPrefix + "from_pod"},
		tc.Filter{Prog: toPod, Name: tcFilterPrefix + "to_pod"})
}

// detachPodTC removes veni's filters from the pod's host veth, if it still
// exists; a gone device took them along. The device must still carry the
// recorded MAC: an ifindex alone may by now name another pod's veth, so
// without a MAC nothing is removed. Filters of others are left alone.
func detachPodTC(ifindex int, hostMAC net.HardwareAddr) error {
	if len(hostMAC) == 0 {
		return nil
	}
	return tc.Detach(ifindex, hostMAC, tcFilterPrefix)
}
