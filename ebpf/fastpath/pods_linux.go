package fastpath

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// podFlowsSpec is the inner map template of veni_pod_flows in fastpath.c
// (TestPodFlowsSpec_MatchesC keeps them in step). Building it here spares
// every CNI ADD parsing the embedded object.
var podFlowsSpec = ebpf.MapSpec{
	Name:       "veni_pod_flow",
	Type:       ebpf.LRUHash,
	KeySize:    8, // struct flow_key
	ValueSize:  4,
	MaxEntries: flowsPerPod,
}

// podFlows6Spec is the inner map template of veni_pod_flows6.
var podFlows6Spec = ebpf.MapSpec{
	Name:       "veni_pod_flow6",
	Type:       ebpf.LRUHash,
	KeySize:    20, // struct flow6_key
	ValueSize:  4,
	MaxEntries: flowsPerPod,
}

// isMapFull reports whether a map write failed for want of room: a full
// hash (E2BIG), or memory the kernel would not give (ENOMEM, ENOSPC).
func isMapFull(err error) bool {
	return errors.Is(err, unix.E2BIG) || errors.Is(err, unix.ENOMEM) || errors.Is(err, unix.ENOSPC)
}

func mapFull(what string, ip netip.Addr, err error) error {
	if isMapFull(err) {
		return fmt.Errorf("%s %s: %w: %w (the pod can run on the plain datapath)", what, ip, ErrMapFull, err)
	}
	return fmt.Errorf("%s %s: %w", what, ip, err)
}

// AttachPod records ep, gives the pod its own flow map and attaches the
// programs to its host veth. A dual-stack pod (ep.IP6) gets an endpoint
// and a flow map for each address, and its veth one hook. Calling it again
// for the same IP (a retried ADD, a new pod with a reused address)
// replaces them all, so flows the address's earlier owner left are
// forgotten. PlainPod records of the addresses are removed.
// ep.HostIfindex is resolved in the calling thread's network namespace.
//
// May return an error wrapping ErrInvalidEndpoint, or ErrMapFull when the
// maps have no room for another pod (nothing of the pod is left behind;
// the caller may keep it on the plain datapath with PlainPod).
func (d *Datapath) AttachPod(ep Endpoint) (err error) {
	if err := ep.validate(); err != nil {
		return err
	}
	// The pin dir's lock orders this against a DetachPodOn of the same
	// address, which reads the endpoint before it deletes it.
	unlock, err := lockPath(d.pinDir)
	if err != nil {
		return err
	}
	defer unlock()

	val := fastpathEndpoint{
		HostIfindex: uint32(ep.HostIfindex),
		EniIfindex:  uint32(ep.ENIIfindex),
		EniTable:    uint32(ep.ENITable),
	}
	copy(val.HostMac[:], ep.HostMAC)
	copy(val.PodMac[:], ep.PodMAC)

	defer func() {
		if err != nil {
			_ = d.detachLocked(ep.IP, false)
			if ep.IP6.IsValid() {
				_ = d.detachAddr(ep.IP6, false)
			}
		}
	}()
	for _, ip := range []netip.Addr{ep.IP, ep.IP6} {
		if !ip.IsValid() {
			continue
		}
		// The flow map first: an endpoint without one could not remember
		// the NATed flows whose replies must go through the host.
		if err := d.ensureFlows(ip); err != nil {
			return err
		}
		if err := d.family(ip).endpoints.Put(addrKey(ip), val); err != nil {
			return mapFull("write endpoint", ip, err)
		}
		if err := d.deletePlain(ip); err != nil {
			return err
		}
	}
	if d.podHook == PodHookTC {
		return attachPodTC(ep.HostIfindex, d.objs.FromPod, d.objs.ToPod)
	}
	from, to := podLinkNames(ep.IP)
	if err := d.attach(d.objs.FromPod, ep.HostIfindex, ebpf.AttachTCXIngress, from); err != nil {
		return err
	}
	return d.attach(d.objs.ToPod, ep.HostIfindex, ebpf.AttachTCXEgress, to)
}

// ensureFlows gives the pod at ip an empty flow map. The map an earlier
// pod of the address left (DetachPodOn keeps it) is emptied and used
// again: writing a map into veni_pod_flows, a map of maps, makes the
// kernel wait for an RCU grace period (maybe_wait_bpf_programs), which on
// a busy node is most of a fast-path ADD's time, while emptying it costs a
// lookup per flow it still remembers. So only an address's first pod on
// the node pays for the write.
func (d *Datapath) ensureFlows(ip netip.Addr) error {
	f := d.family(ip)
	key := addrKey(ip)
	var old *ebpf.Map
	if err := f.flows.Lookup(key, &old); err == nil {
		defer old.Close()
		if err := emptyFlows(old); err == nil {
			return nil
		}
		// Cannot empty it: replace it, as for a new address.
	} else if !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("read flow map of %s: %w", ip, err)
	}
	flows, err := ebpf.NewMap(f.flowSpec)
	if err != nil {
		return mapFull("create flow map of", ip, err)
	}
	defer flows.Close() // the outer map holds it from here
	if err := f.flows.Put(key, flows); err != nil {
		return mapFull("write flow map of", ip, err)
	}
	return nil
}

// emptyFlows forgets every flow m remembers. A flow the running programs
// add meanwhile is the new pod's own: the caller empties the map before
// the pod's endpoint exists, so none can be.
func emptyFlows(m *ebpf.Map) error {
	var (
		k    = make([]byte, m.KeySize()) // struct flow_key or flow6_key
		keys [][]byte
	)
	iter := m.Iterate()
	var v uint32
	for iter.Next(&k, &v) {
		keys = append(keys, slices.Clone(k))
	}
	if err := iter.Err(); err != nil {
		return err
	}
	for _, k := range keys {
		if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return err
		}
	}
	return nil
}

// PruneFlows removes the flow maps of addresses keep says the node no
// longer has (DetachPodOn leaves a released pod's map for the address's
// next pod), and returns how many it removed. Each removal waits for an
// RCU grace period: it is for the daemon, not for a CNI call.
func (d *Datapath) PruneFlows(keep func(netip.Addr) bool) (int, error) {
	unlock, err := lockPath(d.pinDir)
	if err != nil {
		return 0, err
	}
	defer unlock()
	have, err := d.FlowMaps()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, ip := range have {
		if keep(ip) {
			continue
		}
		if _, ok, err := d.Endpoint(ip); err != nil || ok {
			continue // a pod has it now
		}
		if err := d.family(ip).flows.Delete(addrKey(ip)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return n, fmt.Errorf("delete flow map of %s: %w", ip, err)
		}
		n++
	}
	return n, nil
}

// DetachPod removes whatever the fast path holds for ip: its endpoint,
// flow map, hook (veni's filters on its veth, or its pinned TCX links) and
// PlainPod record, whoever they belong to now. A pod that is already gone
// is not an error.
//
// It is for an operator who knows the address is nobody's. Releasing a pod
// must use DetachPodOn: by then the address may already belong to a new pod,
// whose endpoint an IP-only detach would strip.
//
// An IPv4 address takes the IPv6 records on the same veth along; an IPv6
// address only its own records (the veth's hook stays with its IPv4).
func (d *Datapath) DetachPod(ip netip.Addr) error {
	if !ip.IsValid() {
		return nil
	}
	unlock, err := lockPath(d.pinDir)
	if err != nil {
		return err
	}
	defer unlock()
	return d.detachLocked(ip, false)
}

// DetachPodOn removes what the fast path holds for ip when it belongs to
// the pod whose host veth is hostIfindex (and hostMAC, when given): the
// endpoint, flow map and hook, or the PlainPod record. It reports whether
// it removed anything. What belongs to another host veth is left alone:
// the address was given to a new pod, whose ADD recorded its own veth, and
// a late release of the old pod must not cut the new one off.
//
// Records whose host veth no longer exists (no link with that ifindex, or
// one with another MAC) belong to nobody and are removed too, so a caller
// that does not know the veth (hostIfindex 0: it was never recorded) still
// cleans up a gone pod and still leaves a live one alone. Links are looked
// up in the calling thread's network namespace: call it in the node's.
//
// A dual-stack pod's IPv4 takes its IPv6 records along (those on the same
// veth); an IPv6 address alone removes only its own records.
func (d *Datapath) DetachPodOn(ip netip.Addr, hostIfindex int, hostMAC net.HardwareAddr) (bool, error) {
	if !ip.IsValid() {
		return false, nil
	}
	unlock, err := lockPath(d.pinDir)
	if err != nil {
		return false, err
	}
	defer unlock()
	ep, ok, err := d.Endpoint(ip)
	if err != nil {
		return false, err
	}
	if !ok {
		pp, ok, err := d.plain(ip)
		if err != nil || !ok {
			return false, err
		}
		ep = Endpoint{IP: ip, HostIfindex: pp.HostIfindex}
	}
	mine := hostIfindex > 0 && ep.HostIfindex == hostIfindex &&
		(len(hostMAC) == 0 || len(ep.HostMAC) == 0 || bytes.Equal(hostMAC, ep.HostMAC))
	if !mine && vethAlive(ep.HostIfindex, ep.HostMAC) {
		return false, nil
	}
	return true, d.detachLocked(ip, true)
}

// vethAlive reports whether a link with ifindex (and mac, when known)
// exists in the calling thread's namespace. A lookup that fails for another
// reason than "no such link" counts as alive: when in doubt, keep.
func vethAlive(ifindex int, mac net.HardwareAddr) bool {
	if ifindex <= 0 {
		return false
	}
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		var nf netlink.LinkNotFoundError
		return !errors.As(err, &nf) && !errors.Is(err, unix.ENODEV)
	}
	return len(mac) == 0 || bytes.Equal(l.Attrs().HardwareAddr, mac)
}

// detachLocked is DetachPod with the pin dir's lock held. keepFlows
// leaves the address's flow map for its next pod (ensureFlows empties it
// then; PruneFlows removes it once the node no longer has the address).
// An IPv4 address's pod loses its hook and its IPv6 records too; an IPv6
// address only its records (detachAddr).
func (d *Datapath) detachLocked(ip netip.Addr, keepFlows bool) error {
	ip = ip.Unmap()
	if is6(ip) {
		return d.detachAddr(ip, keepFlows)
	}
	var errs []error
	veth, mac := 0, net.HardwareAddr(nil)
	if ep, ok, err := d.Endpoint(ip); err == nil && ok {
		veth, mac = ep.HostIfindex, ep.HostMAC
		errs = append(errs, detachPodTC(ep.HostIfindex, ep.HostMAC))
	} else if pp, ok, err := d.plain(ip); err == nil && ok {
		veth = pp.HostIfindex
	}
	errs = append(errs, d.detachAddr(ip, keepFlows))
	from, to := podLinkNames(ip)
	errs = append(errs, unpinLink(d.linkPath(from)), unpinLink(d.linkPath(to)))
	if veth > 0 {
		errs = append(errs, d.detachIPv6On(veth, mac, keepFlows))
	}
	return errors.Join(errs...)
}

// detachAddr removes ip's endpoint, flow map (unless keepFlows) and
// PlainPod record, of either family; hooks are left alone.
func (d *Datapath) detachAddr(ip netip.Addr, keepFlows bool) error {
	var errs []error
	f, key := d.family(ip), addrKey(ip)
	if err := f.endpoints.Delete(key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		errs = append(errs, fmt.Errorf("delete endpoint %s: %w", ip, err))
	}
	// A kept map is unused until the address's next pod: the programs
	// look a pod's flows up only for an address with an endpoint.
	if !keepFlows {
		if err := f.flows.Delete(key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("delete flow map of %s: %w", ip, err))
		}
	}
	errs = append(errs, d.deletePlain(ip))
	return errors.Join(errs...)
}

// detachIPv6On removes the IPv6 records (endpoints with the same MAC when
// both are known, PlainPod records) of host veth ifindex: a dual-stack
// pod's second address, found by the veth its IPv4 record names.
func (d *Datapath) detachIPv6On(ifindex int, mac net.HardwareAddr, keepFlows bool) error {
	var (
		ips []netip.Addr
		key [16]byte
		val fastpathEndpoint
	)
	iter := d.objs.VeniEndpoints6.Iterate()
	for iter.Next(&key, &val) {
		if int(val.HostIfindex) == ifindex && (len(mac) == 0 || bytes.Equal(mac, val.HostMac[:])) {
			ips = append(ips, netip.AddrFrom16(key))
		}
	}
	if err := iter.Err(); err != nil {
		return fmt.Errorf("list ipv6 endpoints: %w", err)
	}
	err := d.family(netip.IPv6Unspecified()).iterateLPM(func(p netip.Prefix, v fastpathHostEntry) {
		if v.Reason == reasonPlainPod && p.IsSingleIP() && int(v.HostIfindex) == ifindex {
			ips = append(ips, p.Addr())
		}
	})
	if err != nil {
		return fmt.Errorf("list ipv6 plain pods: %w", err)
	}
	var errs []error
	for _, ip := range ips {
		errs = append(errs, d.detachAddr(ip, keepFlows))
	}
	return errors.Join(errs...)
}

// MaxPods is how many pods the endpoint map holds (set when it was made).
func (d *Datapath) MaxPods() int { return int(d.objs.VeniEndpoints.MaxEntries()) }

// Endpoint returns the recorded endpoint of ip (either family), and
// whether there is one.
func (d *Datapath) Endpoint(ip netip.Addr) (Endpoint, bool, error) {
	if !ip.IsValid() {
		return Endpoint{}, false, nil
	}
	ip = ip.Unmap()
	var val fastpathEndpoint
	err := d.family(ip).endpoints.Lookup(addrKey(ip), &val)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return Endpoint{}, false, nil
	}
	if err != nil {
		return Endpoint{}, false, fmt.Errorf("read endpoint %s: %w", ip, err)
	}
	return endpointFrom(ip, val), true, nil
}

// endpointFrom converts a map record; the MACs are copied out of it.
func endpointFrom(ip netip.Addr, val fastpathEndpoint) Endpoint {
	return Endpoint{
		IP:          ip,
		HostIfindex: int(val.HostIfindex),
		HostMAC:     append([]byte(nil), val.HostMac[:]...),
		PodMAC:      append([]byte(nil), val.PodMac[:]...),
		ENIIfindex:  int(val.EniIfindex),
		ENITable:    int(val.EniTable),
	}
}

// PlainPod records that the pod at ip (either family: a dual-stack pod
// needs a call for each address), behind host veth hostIfindex, runs
// on the plain datapath (AttachPod found no room for it): the programs then
// send other pods' packets for it through the host stack, which routes them
// to its veth. Without the record they would look it up in the ENI's table
// and send it out of the node. Any endpoint of ip is removed.
//
// May return an error wrapping ErrMapFull (the host-stack map is full too:
// other pods' packets for this one then leave through the ENI and come back
// only where the VPC hairpins them).
func (d *Datapath) PlainPod(ip netip.Addr, hostIfindex int) error {
	if !ip.IsValid() || ip.Is4In6() || hostIfindex <= 0 {
		return fmt.Errorf("%w: plain pod %v on ifindex %d", ErrInvalidEndpoint, ip, hostIfindex)
	}
	unlock, err := lockPath(d.pinDir)
	if err != nil {
		return err
	}
	defer unlock()
	if err := d.detachLocked(ip, false); err != nil {
		return err
	}
	k := lpmKey(netip.PrefixFrom(ip, ip.BitLen()))
	v := fastpathHostEntry{Reason: reasonPlainPod, HostIfindex: uint32(hostIfindex)}
	if err := d.family(ip).hoststack.Put(k, v); err != nil {
		return mapFull("record plain pod", ip, err)
	}
	return nil
}

// plain returns the PlainPod record of ip.
func (d *Datapath) plain(ip netip.Addr) (PlainPod, bool, error) {
	if !ip.IsValid() {
		return PlainPod{}, false, nil
	}
	ip = ip.Unmap()
	var v fastpathHostEntry
	err := d.family(ip).hoststack.Lookup(lpmKey(netip.PrefixFrom(ip, ip.BitLen())), &v)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return PlainPod{}, false, nil
	}
	if err != nil {
		return PlainPod{}, false, fmt.Errorf("read host stack %s: %w", ip, err)
	}
	// An LPM lookup returns the longest match: a /32 key only finds a /32,
	// but it may be a configured one.
	if v.Reason != reasonPlainPod {
		return PlainPod{}, false, nil
	}
	return PlainPod{IP: ip, HostIfindex: int(v.HostIfindex)}, true, nil
}

// deletePlain removes the PlainPod record of ip, if there is one.
func (d *Datapath) deletePlain(ip netip.Addr) error {
	if _, ok, err := d.plain(ip); err != nil || !ok {
		return err
	}
	ip = ip.Unmap()
	err := d.family(ip).hoststack.Delete(lpmKey(netip.PrefixFrom(ip, ip.BitLen())))
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("delete plain pod %s: %w", ip, err)
	}
	return nil
}
