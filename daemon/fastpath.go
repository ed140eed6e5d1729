package daemon

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/cilium/ebpf"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/ebpf/datapath"
	"github.com/veni-cni/veni/ebpf/fastpath"
	"github.com/veni-cni/veni/ipam"
	"github.com/veni-cni/veni/netplumb"
	"github.com/veni-cni/veni/store"
)

// fastPath is the daemon's hold on the node's eBPF fast path. dp is nil
// while the node runs the plain datapath, or while opening failed (retried
// on every full pass). The daemon runs in the node's network namespace,
// where fastpath resolves ENI ifindexes.
type fastPath struct {
	decision  datapath.Decision
	pinDir    string
	dp        *fastpath.Datapath
	hostStack fastpath.HostStack // as last written; nil slices until then
	written   bool
}

// startFastPath decides the node's datapath and says which and why. On
// plain it removes pins an earlier ebpf run left, so every pod takes the
// one datapath the configuration names.
func (d *Daemon) startFastPath(instanceID string) {
	f := &d.fast
	f.decision = datapath.Decide(d.env.Config.DatapathMode(), fastpath.Supported)
	pinDir, err := datapath.PinDir(instanceID)
	if err != nil {
		d.log.Error("datapath: no pin dir; the fast path stays off", "err", err)
		f.decision.Active = config.DatapathPlain
		f.decision.Reason = err.Error()
		return
	}
	f.pinDir = pinDir
	d.log.Info("datapath", "active", f.decision.Active, "configured", f.decision.Configured, "why", f.decision.Reason, "pinDir", pinDir)
	if !f.decision.EBPF() {
		if _, err := os.Stat(pinDir); err == nil {
			d.log.Info("datapath: removing fast path pins of an earlier run; pods continue on the plain datapath", "pinDir", pinDir)
			if err := fastpath.Teardown(pinDir); err != nil {
				d.log.Error("datapath teardown", "err", err)
			}
		}
		return
	}
	d.openFastPath()
}

// openFastPath opens the node's fast path. Maps pinned by another veni
// version (an upgrade that changed a map's layout) cannot be reused: every
// ADD would stay on the plain datapath. The daemon then tears them down and
// starts afresh; the pods hooked to the old programs lose their hooks with
// them and carry on, on the plain datapath, until their next ADD.
func (d *Daemon) openFastPath() {
	f := &d.fast
	opts := fastpath.Options{PinDir: f.pinDir, MaxPods: fastpath.MapPods(ipam.MaxPods(d.node, d.env.Config))}
	dp, err := fastpath.Open(opts)
	if errors.Is(err, ebpf.ErrMapIncompatible) {
		d.log.Warn("datapath: pins of another veni version; tearing them down (their pods continue on the plain datapath)", "pinDir", f.pinDir, "err", err)
		if terr := fastpath.Teardown(f.pinDir); terr != nil {
			d.log.Error("datapath teardown", "err", terr)
			return
		}
		dp, err = fastpath.Open(opts)
	}
	if err != nil {
		d.log.Error("datapath: open fast path; pods use the plain datapath until it opens", "err", err)
		return
	}
	f.dp = dp
}

// stopFastPath runs on SIGTERM: pods still in the store keep their pins
// (their traffic keeps flowing without the daemon); entries of pods that
// are gone are removed, and the daemon's file descriptors closed.
func (d *Daemon) stopFastPath() {
	if d.fast.dp == nil {
		return
	}
	d.pruneEndpoints()
	if err := d.fast.dp.Close(); err != nil {
		d.log.Warn("datapath close", "err", err)
	}
	d.fast.dp = nil
}

// syncFastPath runs on every full pass: it rewrites the host-stack
// destinations when the config or the node's addresses changed, and makes
// the ENI programs match the ENIs in the store.
func (d *Daemon) syncFastPath(ctx context.Context) {
	f := &d.fast
	if !f.decision.EBPF() {
		return
	}
	if f.dp == nil {
		if d.openFastPath(); f.dp == nil {
			return
		}
	}
	hs, err := datapath.LoadHostStack(d.env.Store, d.env.Config)
	if err != nil {
		d.log.Error("datapath host stack", "err", err)
	} else if !f.written || !datapath.SameHostStack(hs, f.hostStack) {
		if err := f.dp.SetHostStack(hs); err != nil {
			d.log.Error("datapath host stack", "err", err)
		} else {
			f.hostStack, f.written = hs, true
			d.log.Info("datapath host stack", "services", hs.ServiceCIDRs, "cidrs", hs.CIDRs, "nodeAddrs", hs.NodeAddrs)
		}
	}
	d.syncENIPrograms(ctx)
}

// attachENIProgram attaches the ENI program to a link EnsureENI just
// configured. AttachENI keeps an attachment that is already right.
func (d *Daemon) attachENIProgram(eniID string, ifindex int) {
	if d.fast.dp == nil {
		return
	}
	if err := d.fast.dp.AttachENI(ifindex); err != nil {
		d.log.Warn("datapath attach eni", "eni", eniID, "ifindex", ifindex, "err", err)
	}
}

// syncENIPrograms attaches the ENI program to every ENI of the store that
// has its link, and detaches pinned attachments of links that are gone (an
// ENI the pool deleted). When a link lookup fails nothing is detached: a
// transient error must not take the fast path away from live ENIs.
func (d *Daemon) syncENIPrograms(ctx context.Context) {
	enis, err := d.storeENIs()
	if err != nil {
		d.log.Error("datapath: read enis", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	live := make(map[int]bool, len(enis))
	complete := true
	for _, e := range enis {
		if e.State == store.ENIAttaching {
			continue // no link yet: the pass that marks it ready attaches it
		}
		mac, err := net.ParseMAC(e.MAC)
		if err != nil {
			complete = false
			continue
		}
		l, err := netplumb.LookupENI(ctx, netplumb.ENIConfig{MAC: mac, VSwitchCIDR: e.VSwitchCIDR, Gateway: e.Gateway, Table: e.Table})
		if err != nil {
			if !netplumb.IsLinkNotFound(err) {
				complete = false
				d.log.Warn("datapath: look up eni link", "eni", e.ID, "err", err)
			}
			continue
		}
		live[l.Index] = true
		d.attachENIProgram(e.ID, l.Index)
	}
	if !complete {
		return
	}
	pinned, err := d.fast.dp.ENIs()
	if err != nil {
		d.log.Warn("datapath: list eni programs", "err", err)
		return
	}
	for _, ifindex := range pinned {
		if live[ifindex] {
			continue
		}
		if err := d.fast.dp.DetachENI(ifindex); err != nil {
			d.log.Warn("datapath detach eni", "ifindex", ifindex, "err", err)
			continue
		}
		d.log.Info("datapath: detached the program of a gone eni link", "ifindex", ifindex)
	}
}

// pruneEndpoints removes the fast-path records (endpoints with their flow
// maps and hooks, and plain-pod records) of pods whose address no longer
// has an allocation: their DEL never came, or came while the pins were
// unreachable. It runs after GC and at shutdown.
//
// An ADD may reuse a freed address between the store read and the
// removal; DetachPodOn then finds the record on another (live) host veth
// than the one listed, and leaves it to the new pod.
func (d *Daemon) pruneEndpoints() {
	dp := d.fast.dp
	if dp == nil {
		return
	}
	eps, err := dp.Endpoints()
	if err != nil {
		d.log.Warn("datapath: list endpoints", "err", err)
		return
	}
	plain, err := dp.PlainPods()
	if err != nil {
		d.log.Warn("datapath: list plain pods", "err", err)
		return
	}
	for _, p := range plain {
		eps = append(eps, fastpath.Endpoint{IP: p.IP, HostIfindex: p.HostIfindex})
	}
	defer d.pruneFlows()
	if len(eps) == 0 {
		return
	}
	held := make(map[netip.Addr]bool, len(eps))
	err = d.env.Store.View(func(tx *store.ReadTx) error {
		for _, ep := range eps {
			_, err := tx.AllocationByIP(ep.IP)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			held[ep.IP] = true
		}
		return nil
	})
	if err != nil {
		d.log.Warn("datapath: read allocations", "err", err)
		return
	}
	for _, ep := range eps {
		if held[ep.IP] {
			continue
		}
		removed, err := dp.DetachPodOn(ep.IP, ep.HostIfindex, ep.HostMAC)
		if err != nil {
			d.log.Warn("datapath: remove endpoint of a gone pod", "ip", ep.IP, "err", err)
			continue
		}
		if removed {
			d.log.Info("datapath: removed endpoint of a gone pod", "ip", ep.IP, "hostIfindex", ep.HostIfindex)
		}
	}
}

// pruneFlows removes the flow maps of addresses the node no longer has
// (released to the cloud, or never in this store). A released pod's map
// stays for the address's next pod, whose ADD then need not write the map
// of maps (fastpath.Datapath.ensureFlows).
func (d *Daemon) pruneFlows() {
	dp := d.fast.dp
	if dp == nil {
		return
	}
	var have map[netip.Addr]bool
	err := d.env.Store.View(func(tx *store.ReadTx) error {
		ips, err := tx.IPs()
		if err != nil {
			return err
		}
		have = make(map[netip.Addr]bool, len(ips))
		for _, ip := range ips {
			have[ip.Addr] = true
		}
		return nil
	})
	if err != nil {
		d.log.Warn("datapath: read addresses", "err", err)
		return
	}
	n, err := dp.PruneFlows(func(ip netip.Addr) bool { return have[ip] })
	if err != nil {
		d.log.Warn("datapath: remove flow maps of released addresses", "err", err)
	}
	if n > 0 {
		d.log.Info("datapath: removed flow maps of released addresses", "count", n)
	}
}
