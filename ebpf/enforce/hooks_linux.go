package enforce

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"

	"github.com/veni-cni/veni/ebpf/fastpath"
	"github.com/veni-cni/veni/ebpf/tc"
)

// Filter identity on a pod's host veth in tc mode. Priority 1 runs before
// the fast path's filters (priority 2): policy decides first, and a
// TC_ACT_UNSPEC verdict hands the packet on to them. The name prefix is
// not the fast path's ("veni-"), so neither package removes the other's
// filters.
const (
	tcFilterPrio   = 1
	tcFilterPrefix = "venipol-"
)

// hookRecord is what veni_pol_hooks holds for an endpoint.
type hookRecord struct {
	ip  netip.Addr
	mac net.HardwareAddr
}

func (e *Enforcer) hook(ifindex int) (hookRecord, bool, error) {
	var v policyPolHook
	err := e.objs.VeniPolHooks.Lookup(uint32(ifindex), &v)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return hookRecord{}, false, nil
	}
	if err != nil {
		return hookRecord{}, false, fmt.Errorf("read hook record of ifindex %d: %w", ifindex, err)
	}
	return hookRecord{ip: ipOf(v.Ip), mac: append(net.HardwareAddr(nil), v.Mac[:]...)}, true, nil
}

// AttachEndpoint attaches the policy programs to the endpoint's host veth,
// ahead of the fast path's, and records the endpoint. It is idempotent.
// Until it runs, packets through the host stack bypass the endpoint's
// table (the fast path's ingress check does not): the CNI ADD calls it
// before the pod's link is up. ep.Ifindex is resolved in the calling
// thread's network namespace.
//
// Equivalent to: tc qdisc add dev $veth clsact; tc filter replace dev
// $veth ingress|egress prio 1 handle 1 bpf da (or TCX links at the head).
func (e *Enforcer) AttachEndpoint(ep EndpointKey) error {
	if err := ep.validate(); err != nil {
		return err
	}
	h, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("netlink handle: %w", err)
	}
	defer h.Close()
	l, err := h.LinkByIndex(ep.Ifindex)
	if err != nil {
		return fmt.Errorf("host veth of %s: %w", ep, err)
	}
	unlock, err := fastpath.LockPinDir(e.pinDir)
	if err != nil {
		return err
	}
	defer unlock()
	if e.podHook == fastpath.PodHookTCX {
		err = e.attachTCX(ep.Ifindex)
	} else {
		err = e.attachTC(ep.Ifindex)
	}
	if err != nil {
		return err
	}
	rec := policyPolHook{}
	if ip := ep.IP.Unmap(); ip.Is4() {
		a := ip.As4()
		rec.Ip = binary.NativeEndian.Uint32(a[:])
	}
	copy(rec.Mac[:], l.Attrs().HardwareAddr)
	if err := e.objs.VeniPolHooks.Put(uint32(ep.Ifindex), rec); err != nil {
		return tooMany("record hook of", ep, err)
	}
	return nil
}

func (e *Enforcer) attachTC(ifindex int) error {
	return tc.Attach(ifindex, tcFilterPrio,
		tc.Filter{Prog: e.objs.PolFromPod, Name: tcFilterPrefix + "from_pod"},
		tc.Filter{Prog: e.objs.PolToPod, Name: tcFilterPrefix + "to_pod"})
}

// linkNames names an endpoint's TCX link pins (by ifindex: the key of
// everything else).
func linkNames(ifindex int) (from, to string) {
	base := "pol-" + strconv.Itoa(ifindex)
	return base + "-from", base + "-to"
}

func (e *Enforcer) linkPath(name string) string { return filepath.Join(e.pinDir, linksDir, name) }

func (e *Enforcer) attachTCX(ifindex int) error {
	from, to := linkNames(ifindex)
	for _, a := range []struct {
		prog *ebpf.Program
		at   ebpf.AttachType
		name string
	}{
		{e.objs.PolFromPod, ebpf.AttachTCXIngress, from},
		{e.objs.PolToPod, ebpf.AttachTCXEgress, to},
	} {
		if attachedAs(a.prog, e.linkPath(a.name), ifindex) {
			continue
		}
		l, err := link.AttachTCX(link.TCXOptions{
			Interface: ifindex,
			Program:   a.prog,
			Attach:    a.at,
			Anchor:    link.Head(),
		})
		if err != nil {
			return fmt.Errorf("attach %s to ifindex %d: %w", a.name, ifindex, err)
		}
		// The new link is attached before the old one goes: no gap.
		err = errors.Join(unpinLink(e.linkPath(a.name)), l.Pin(e.linkPath(a.name)))
		l.Close() // pinned, the pin keeps it; not pinned, closing detaches it
		if err != nil {
			return fmt.Errorf("pin %s: %w", a.name, err)
		}
	}
	return nil
}

// attachedAs reports whether the link pinned at path attaches prog to
// ifindex.
func attachedAs(prog *ebpf.Program, path string, ifindex int) bool {
	l, err := link.LoadPinnedLink(path, nil)
	if err != nil {
		return false
	}
	defer l.Close()
	info, err := l.Info()
	if err != nil {
		return false
	}
	pinfo, err := prog.Info()
	if err != nil {
		return false
	}
	pid, ok := pinfo.ID()
	tcx := info.TCX()
	return ok && tcx != nil && int(tcx.Ifindex) == ifindex && info.Program == pid
}

// unpinLink removes the link pinned at path, which detaches it. A missing
// pin is not an error.
func unpinLink(path string) error {
	l, err := link.LoadPinnedLink(path, nil)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load pinned link %s: %w", path, err)
	}
	defer l.Close() // after Unpin, closing our fd detaches synchronously
	return l.Unpin()
}

// detach removes the policy programs from the endpoint's veth: its TCX
// link pins, and veni's policy filters when the device still carries mac
// (an ifindex alone may by now name another pod's veth). Call with the pin
// dir locked, in the node's network namespace.
func (e *Enforcer) detach(ifindex int, mac net.HardwareAddr) error {
	from, to := linkNames(ifindex)
	return errors.Join(
		unpinLink(e.linkPath(from)),
		unpinLink(e.linkPath(to)),
		detachTC(ifindex, mac),
	)
}

func detachTC(ifindex int, mac net.HardwareAddr) error {
	return tc.Detach(ifindex, mac, tcFilterPrefix)
}
