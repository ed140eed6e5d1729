package tc

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

// handle is every veni filter's handle; filters are told apart by their
// hook, priority and name.
const handle = 1

// Filter is one program for one direction of a link.
type Filter struct {
	Prog *ebpf.Program
	Name string // starts with the owner's prefix, so Detach finds it
}

// Attach adds a clsact qdisc to ifindex unless it has one ("tc qdisc add
// dev $dev clsact") and puts ingress and egress on it at priority prio
// ("tc filter replace dev $dev ingress|egress prio $prio handle 1 bpf
// da"), replacing what the caller put there before. The filters live and
// die with the link: nothing is pinned.
func Attach(ifindex int, prio uint16, ingress, egress Filter) error {
	return attach(ifindex, prio, []hooked{{netlink.HANDLE_MIN_INGRESS, ingress}, {netlink.HANDLE_MIN_EGRESS, egress}})
}

// AttachEgress is Attach for the egress hook alone ("tc filter replace
// dev $dev egress prio $prio handle 1 bpf da"): the ingress hook, and
// what others put there, is left alone.
func AttachEgress(ifindex int, prio uint16, egress Filter) error {
	return attach(ifindex, prio, []hooked{{netlink.HANDLE_MIN_EGRESS, egress}})
}

type hooked struct {
	parent uint32
	Filter
}

func attach(ifindex int, prio uint16, filters []hooked) error {
	h, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("netlink handle: %w", err)
	}
	defer h.Close()
	qdisc := &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: ifindex, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT},
		QdiscType:  "clsact",
	}
	// Add, not replace: replacing a clsact would drop the filters others
	// (the fast path, the policy programs) have on it.
	if err := h.QdiscAdd(qdisc); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add clsact to ifindex %d: %w", ifindex, err)
	}
	for _, f := range filters {
		filter := &netlink.BpfFilter{
			FilterAttrs: netlink.FilterAttrs{
				LinkIndex: ifindex,
				Parent:    f.parent,
				Handle:    handle,
				Protocol:  unix.ETH_P_ALL,
				Priority:  prio,
			},
			Fd:           f.Prog.FD(),
			Name:         f.Name,
			DirectAction: true,
		}
		if err := h.FilterReplace(filter); err != nil {
			return fmt.Errorf("attach %s to ifindex %d: %w", f.Name, ifindex, err)
		}
	}
	return nil
}

// Detach removes the filters whose names start with prefix from the link
// ifindex, if it still exists and, when mac is given, still has that MAC:
// an ifindex alone may by now name another pod's veth. A gone link took
// its filters along.
func Detach(ifindex int, mac net.HardwareAddr, prefix string) error {
	if ifindex <= 0 {
		return nil
	}
	h, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("netlink handle: %w", err)
	}
	defer h.Close()
	l, err := h.LinkByIndex(ifindex)
	if err != nil || (len(mac) > 0 && !bytes.Equal(l.Attrs().HardwareAddr, mac)) {
		return nil
	}
	var errs []error
	for _, parent := range []uint32{netlink.HANDLE_MIN_INGRESS, netlink.HANDLE_MIN_EGRESS} {
		filters, err := h.FilterList(l, parent)
		if err != nil {
			continue // no clsact: nothing of ours
		}
		for _, f := range filters {
			if bf, ok := f.(*netlink.BpfFilter); ok && strings.HasPrefix(bf.Name, prefix) {
				if err := h.FilterDel(bf); err != nil && !errors.Is(err, unix.ENOENT) {
					errs = append(errs, fmt.Errorf("detach %s from %s: %w", bf.Name, l.Attrs().Name, err))
				}
			}
		}
	}
	return errors.Join(errs...)
}
