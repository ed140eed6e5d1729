package fastpath

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// Datapath is the fast path of one node: its programs loaded and its pinned
// maps opened. It holds file descriptors only; Close releases them and
// leaves everything pinned. Methods are safe for one goroutine at a time.
type Datapath struct {
	pinDir  string
	podHook string
	objs    fastpathObjects
}

// Open loads the programs and opens this node's maps under opts.PinDir,
// creating and pinning them on first use and reusing them after. Loading
// takes the pin dir's lock, so parallel CNI invocations are safe.
//
// May return an error wrapping ErrNotBPFFS, ErrInvalidOptions, or
// ebpf.ErrMapIncompatible (pins left by another veni version: Teardown).
func Open(opts Options) (_ *Datapath, err error) {
	if opts.PinDir == "" {
		return nil, fmt.Errorf("%w: no pin dir", ErrInvalidOptions)
	}
	pinDir := filepath.Clean(opts.PinDir)
	// No RLIMIT_MEMLOCK dance: the fast path needs TCX (Linux 6.6), and
	// since 5.11 the kernel charges BPF memory to the cgroup instead.
	// (cilium/ebpf's rlimit package would also create a probe map in the
	// init of every veni process, CNI invocations included.)
	if err := ensureBPFFS(pinDir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(pinDir, linksDir), 0o700); err != nil {
		return nil, fmt.Errorf("create pin dir: %w", err)
	}
	unlock, err := lockPath(pinDir)
	if err != nil {
		return nil, err
	}
	defer unlock()

	switch opts.PodHook {
	case "":
		opts.PodHook = PodHookTC
	case PodHookTC, PodHookTCX:
	default:
		return nil, fmt.Errorf("%w: pod hook %q (want %q or %q)", ErrInvalidOptions, opts.PodHook, PodHookTC, PodHookTCX)
	}
	d := &Datapath{pinDir: pinDir, podHook: opts.PodHook}
	pinned, err := d.openPinned()
	if err != nil {
		return nil, err
	}
	if pinned {
		return d.finishOpen(opts)
	}
	spec, err := loadFastpath()
	if err != nil {
		return nil, err
	}
	err = spec.LoadAndAssign(&d.objs, &ebpf.CollectionOptions{
		Maps: ebpf.MapOptions{PinPath: pinDir},
	})
	if errors.Is(err, ebpf.ErrMapIncompatible) {
		return nil, fmt.Errorf("load fast path: %w (pins in %s are from another veni version: tear them down)", err, pinDir)
	}
	if err != nil {
		return nil, fmt.Errorf("load fast path: %w", err)
	}
	if err := d.pinPrograms(); err != nil {
		d.objs.Close()
		return nil, err
	}
	return d.finishOpen(opts)
}

// finishOpen applies the options to an opened Datapath, closing it on error.
func (d *Datapath) finishOpen(opts Options) (_ *Datapath, err error) {
	defer func() {
		if err != nil {
			d.objs.Close()
		}
	}()
	if opts.HostStack != nil {
		if err := d.SetHostStack(*opts.HostStack); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// Close releases the Datapath's file descriptors. Pinned maps and attached
// programs stay.
func (d *Datapath) Close() error {
	return d.objs.Close()
}

// PinDir returns the directory holding this node's pins.
func (d *Datapath) PinDir() string { return d.pinDir }

func (d *Datapath) linkPath(name string) string {
	return filepath.Join(d.pinDir, linksDir, name)
}

// podLinkNames names a pod's link pins. bpffs refuses names with a dot
// (EPERM), so 10.0.0.5 becomes pod-10_0_0_5-from.
func podLinkNames(ip netip.Addr) (from, to string) {
	base := "pod-" + strings.ReplaceAll(ip.String(), ".", "_")
	return base + "-from", base + "-to"
}

func eniLinkName(ifindex int) string { return "eni-" + strconv.Itoa(ifindex) }

// attach attaches prog last on the hook (policy programs go in front of
// it) and pins the link as name.
func (d *Datapath) attach(prog *ebpf.Program, ifindex int, at ebpf.AttachType, name string) (err error) {
	l, err := link.AttachTCX(link.TCXOptions{
		Interface: ifindex,
		Program:   prog,
		Attach:    at,
		Anchor:    link.Tail(),
	})
	if err != nil {
		return fmt.Errorf("attach %s to ifindex %d: %w", name, ifindex, err)
	}
	// Closing our fd is right either way: once pinned, the pin keeps the
	// link; if pinning failed, closing detaches it.
	defer l.Close()
	return pinLink(l, d.linkPath(name))
}

// AttachPod records ep and attaches the programs to its host veth. Calling
// it again for the same IP (a retried ADD, a new veth) replaces both.
// ep.HostIfindex is resolved in the calling thread's network namespace.
//
// May return an error wrapping ErrInvalidEndpoint.
func (d *Datapath) AttachPod(ep Endpoint) (err error) {
	if err := ep.validate(); err != nil {
		return err
	}
	key := ep.IP.As4()
	val := fastpathEndpoint{
		HostIfindex: uint32(ep.HostIfindex),
		EniIfindex:  uint32(ep.ENIIfindex),
		EniTable:    uint32(ep.ENITable),
	}
	copy(val.HostMac[:], ep.HostMAC)
	copy(val.PodMac[:], ep.PodMAC)

	// The flows map is not swept for a reused address: walking an LRU of
	// up to 65536 entries costs two system calls each, on every ADD and
	// DEL. A client end the old pod left behind cannot hurt the new one:
	// its next connection from that port starts with a SYN, which drops
	// the entry; until then only its replies take the host stack.
	if err := d.objs.VeniEndpoints.Put(key, val); err != nil {
		return fmt.Errorf("write endpoint %s: %w", ep.IP, err)
	}
	defer func() {
		if err != nil {
			_ = d.DetachPod(ep.IP)
		}
	}()
	if d.podHook == PodHookTC {
		return attachPodTC(ep.HostIfindex, d.objs.FromPod, d.objs.ToPod)
	}
	from, to := podLinkNames(ep.IP)
	if err := d.attach(d.objs.FromPod, ep.HostIfindex, ebpf.AttachTCXIngress, from); err != nil {
		return err
	}
	return d.attach(d.objs.ToPod, ep.HostIfindex, ebpf.AttachTCXEgress, to)
}

// DetachPod removes the pod's endpoint and its hook (veni's filters on its
// veth, or its pinned TCX links). A pod that is already
// gone is not an error, so a repeated CNI DEL succeeds.
func (d *Datapath) DetachPod(ip netip.Addr) error {
	if !ip.Is4() {
		return nil
	}
	var errs []error
	if ep, ok, err := d.Endpoint(ip); err == nil && ok {
		errs = append(errs, detachPodTC(ep.HostIfindex, ep.HostMAC))
	}
	if err := d.objs.VeniEndpoints.Delete(ip.As4()); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		errs = append(errs, fmt.Errorf("delete endpoint %s: %w", ip, err))
	}
	from, to := podLinkNames(ip)
	errs = append(errs, unpinLink(d.linkPath(from)), unpinLink(d.linkPath(to)))
	return errors.Join(errs...)
}

// Endpoint returns the recorded endpoint of ip, and whether there is one.
func (d *Datapath) Endpoint(ip netip.Addr) (Endpoint, bool, error) {
	if !ip.Is4() {
		return Endpoint{}, false, nil
	}
	var val fastpathEndpoint
	err := d.objs.VeniEndpoints.Lookup(ip.As4(), &val)
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

// AttachENI attaches the ENI program to ingress of the ENI link ifindex
// (resolved in the calling thread's network namespace). It is idempotent:
// an attachment of the same program to that link is kept, so every CNI ADD
// may call it; a stale one (another veni version, a link that went away)
// is replaced.
func (d *Datapath) AttachENI(ifindex int) error {
	if ifindex <= 0 {
		return fmt.Errorf("%w: eni ifindex %d", ErrInvalidOptions, ifindex)
	}
	// Parallel ADDs on one ENI would otherwise race between unpinning the
	// old link and pinning theirs, and one of them would fail with EEXIST.
	unlock, err := lockPath(d.pinDir)
	if err != nil {
		return err
	}
	defer unlock()
	name := eniLinkName(ifindex)
	if ok, err := d.attachedAs(d.objs.FromEni, ifindex, name); err != nil || ok {
		return err
	}
	return d.attach(d.objs.FromEni, ifindex, ebpf.AttachTCXIngress, name)
}

// DetachENI detaches the ENI program from ifindex. Not attached is not an
// error.
func (d *Datapath) DetachENI(ifindex int) error {
	return unpinLink(d.linkPath(eniLinkName(ifindex)))
}

// SetHostStack replaces the destinations pods reach through the host
// stack. Entries are updated in place, so no packet sees an empty map.
func (d *Datapath) SetHostStack(hs HostStack) error {
	want := hs.prefixes()
	m := d.objs.VeniHoststack
	var (
		key   fastpathLpmKey
		val   uint32
		stale []fastpathLpmKey
	)
	have := make(map[netip.Prefix]uint32)
	iter := m.Iterate()
	for iter.Next(&key, &val) {
		p := netip.PrefixFrom(netip.AddrFrom4(key.Addr), int(key.Prefixlen))
		have[p] = val
		if _, ok := want[p]; !ok {
			stale = append(stale, key)
		}
	}
	if err := iter.Err(); err != nil {
		return fmt.Errorf("list host-stack cidrs: %w", err)
	}
	// Every CNI ADD passes the node's host stack: write only what differs.
	for p, reason := range want {
		if v, ok := have[p]; ok && v == reason {
			continue
		}
		k := fastpathLpmKey{Prefixlen: uint32(p.Bits()), Addr: p.Addr().As4()}
		if err := m.Put(k, reason); err != nil {
			return fmt.Errorf("write host-stack cidr %s: %w", p, err)
		}
	}
	for _, k := range stale {
		if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete host-stack cidr %v/%d: %w", k.Addr, k.Prefixlen, err)
		}
	}
	return nil
}

// HostStackPrefixes returns the destinations currently on the host stack,
// with their reason ("service", "cidr", "node").
func (d *Datapath) HostStackPrefixes() (map[netip.Prefix]string, error) {
	out := make(map[netip.Prefix]string)
	var (
		key fastpathLpmKey
		val uint32
	)
	iter := d.objs.VeniHoststack.Iterate()
	for iter.Next(&key, &val) {
		p := netip.PrefixFrom(netip.AddrFrom4(key.Addr), int(key.Prefixlen))
		out[p] = reasonName(val)
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("list host-stack cidrs: %w", err)
	}
	return out, nil
}
