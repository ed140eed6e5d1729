package fastpath

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Filter identity on a pod's host veth. The name marks the filter as
// veni's, so detaching never removes anything else on the device.
// Priority 2 leaves priority 1 to the NetworkPolicy programs
// (ebpf/enforce), which must see a packet before the fast path redirects
// it; they hand it on with TC_ACT_UNSPEC.
const (
	tcFilterPrio   = 2
	tcFilterHandle = 1
	tcFilterPrefix = "veni-"
)

// attachPodTC hooks the pod programs to the host veth with a clsact qdisc
// and two direct-action filters ("tc qdisc add dev $veth clsact; tc filter
// replace dev $veth ingress|egress prio 2 handle 1 bpf da"). The filters
// live and die with the veth, so nothing is pinned. ifindex is resolved in
// the calling thread's namespace.
func attachPodTC(ifindex int, fromPod, toPod *ebpf.Program) error {
	h, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("netlink handle: %w", err)
	}
	defer h.Close()
	qdisc := &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: ifindex, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT},
		QdiscType:  "clsact",
	}
	// Add, not replace: replacing a clsact would drop filters already on it.
	if err := h.QdiscAdd(qdisc); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add clsact to ifindex %d: %w", ifindex, err)
	}
	for _, f := range []struct {
		parent uint32
		prog   *ebpf.Program
		name   string
	}{
		{netlink.HANDLE_MIN_INGRESS, fromPod, tcFilterPrefix + "from_pod"},
		{netlink.HANDLE_MIN_EGRESS, toPod, tcFilterPrefix + "to_pod"},
	} {
		filter := &netlink.BpfFilter{
			FilterAttrs: netlink.FilterAttrs{
				LinkIndex: ifindex,
				Parent:    f.parent,
				Handle:    tcFilterHandle,
				Protocol:  unix.ETH_P_ALL,
				Priority:  tcFilterPrio,
			},
			Fd:           f.prog.FD(),
			Name:         f.name,
			DirectAction: true,
		}
		if err := h.FilterReplace(filter); err != nil {
			return fmt.Errorf("attach %s to ifindex %d: %w", f.name, ifindex, err)
		}
	}
	return nil
}

// detachPodTC removes veni's filters from the pod's host veth, if it still
// exists; a gone device took them along. The device must still carry the
// recorded MAC: an ifindex alone may by now name another pod's veth.
// Filters of others are left alone.
func detachPodTC(ifindex int, hostMAC net.HardwareAddr) error {
	if ifindex <= 0 {
		return nil
	}
	h, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("netlink handle: %w", err)
	}
	defer h.Close()
	l, err := h.LinkByIndex(ifindex)
	if err != nil || !bytes.Equal(l.Attrs().HardwareAddr, hostMAC) {
		return nil // gone: so are its filters
	}
	var errs []error
	for _, parent := range []uint32{netlink.HANDLE_MIN_INGRESS, netlink.HANDLE_MIN_EGRESS} {
		filters, err := h.FilterList(l, parent)
		if err != nil {
			continue // no clsact: nothing of ours
		}
		for _, f := range filters {
			if bf, ok := f.(*netlink.BpfFilter); ok && strings.HasPrefix(bf.Name, tcFilterPrefix) {
				if err := h.FilterDel(bf); err != nil && !errors.Is(err, unix.ENOENT) {
					errs = append(errs, fmt.Errorf("detach %s from %s: %w", bf.Name, l.Attrs().Name, err))
				}
			}
		}
	}
	return errors.Join(errs...)
}
