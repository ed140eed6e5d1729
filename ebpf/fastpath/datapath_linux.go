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
	// The maps' size is fixed when they are made: pinned ones keep theirs.
	maxPods := opts.MaxPods
	if maxPods <= 0 {
		maxPods = DefaultMaxPods
	}
	for _, m := range []string{"veni_endpoints", "veni_pod_flows", "veni_endpoints6", "veni_pod_flows6"} {
		spec.Maps[m].MaxEntries = uint32(maxPods)
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
