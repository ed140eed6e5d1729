package daemon

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/veni-cni/veni/netplumb"
	"github.com/veni-cni/veni/podpolicy"
	"github.com/veni-cni/veni/policy"
	"github.com/veni-cni/veni/store"
)

// startPolicy runs the NetworkPolicy loop beside the others: it reads the
// store's Kubernetes mirror and the manifest folder, writes each local
// pod's compiled record and applies changes to the kernel. It wakes on
// store writes and folder changes on its own watchers, not through the
// pool loop's one-second gap: a policy change must be enforced within a
// second. With network_policy off it makes one pass (removing records and
// tables of an earlier run) and stops.
func (d *Daemon) startPolicy(ctx context.Context, facts store.NodeInfo) *podpolicy.Syncer {
	cfg := d.env.Config
	name := d.opts.Kube.NodeName
	if name == "" {
		name = d.opts.NodeName
	}
	if name == "" {
		name, _ = os.Hostname()
	}
	var ips []netip.Addr
	if facts.PrimaryIP.IsValid() {
		ips = []netip.Addr{facts.PrimaryIP}
	}
	opts := podpolicy.SyncOptions{
		DB: d.env.Store, Enabled: cfg.PolicyEnabled(), Kernel: d.opts.PolicyKernel,
		ManifestDir: cfg.PolicyManifestDir, Kube: d.kube.sync != nil,
		Node: name, NodeIPs: ips, NodeAddrs: nodeIPv6(facts), Logger: d.log,
	}
	if s := d.kube.sync; s != nil {
		opts.KubeSynced = s.MirrorSynced
		if d.kube.peers {
			opts.Peers = func() ([]policy.Pod, bool) {
				list, synced := s.PeerPodList()
				out := make([]policy.Pod, 0, len(list))
				for _, kp := range list {
					if p, err := policy.PodFromKube(kp); err == nil {
						out = append(out, p)
					}
				}
				return out, synced
			}
		}
	}
	if opts.Kernel == nil {
		// Opened on first need: a node without policies never loads the
		// policy programs. Kept open for the daemon's life.
		opts.OpenKernel = func(needed bool) (podpolicy.Kernel, error) {
			open := podpolicy.OpenNodeKernelIfUsed
			if needed {
				open = podpolicy.OpenNodeKernel
			}
			k, err := open(cfg, facts.InstanceID)
			if err != nil {
				return nil, err
			}
			d.policyENIs.set(k)
			return k, nil
		}
	}
	syncer := podpolicy.NewSyncer(opts)
	if !opts.Enabled {
		if _, err := syncer.Pass(ctx); err != nil {
			d.log.Warn("network policy off: clean-up pass", "err", err)
		}
		d.log.Info("network policy off (network_policy: false or disable_network_policy: \"true\")")
		return syncer
	}
	wake := d.policyWake
	signal := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	stops := d.watchPolicySources(opts.ManifestDir, signal)
	go func() {
		defer func() {
			for _, stop := range stops {
				stop()
			}
		}()
		syncer.Run(ctx, wake)
	}()
	d.log.Info("network policy on", "kubernetes", opts.Kube, "manifests", opts.ManifestDir, "node", name)
	return syncer
}

// nodeIPv6 returns what asks the kernel for the node's IPv6 addresses:
// those of its primary NIC (the cloud's metadata names its MAC). The node
// sends from them (kubelet's probes to a dual-stack pod's IPv6), so
// NetworkPolicy must know them as the node's: the compiled rules allow
// them in, veni policy trace names them the node. Asked on every policy
// pass: a NIC may get its IPv6 after the daemon starts.
func nodeIPv6(facts store.NodeInfo) func() ([]netip.Addr, error) {
	mac, err := net.ParseMAC(facts.PrimaryMAC)
	if err != nil {
		return nil
	}
	return func() ([]netip.Addr, error) {
		ips, err := netplumb.LinkIPv6(mac)
		if errors.Is(err, netplumb.ErrLinkNotFound) {
			return nil, nil // a node without its NIC here (a test's): no IPv6 to add
		}
		return ips, err
	}
}

// policyENIs is the daemon's hold on the enforcer for hooking ENIs: set
// once the policy loop opened it, and the ENI links hooked since.
type policyENIs struct {
	mu     sync.Mutex
	k      podpolicy.NodeKernel
	hooked map[int]string // ifindex -> ENI id
}

func (p *policyENIs) set(k podpolicy.NodeKernel) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.k = k
}

// syncPolicyENIs hooks the check of Service traffic's deferred egress on
// every ENI link of the store, once the enforcer is open (a node without
// policy hooks nothing). An ADD hooks its pod's ENI itself; this covers
// pods a policy selected after their ADD and ENIs restored after a
// restart. The hooks go with their links: nothing to detach.
func (d *Daemon) syncPolicyENIs(ctx context.Context) {
	p := &d.policyENIs
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.k == nil {
		return
	}
	enis, err := d.storeENIs()
	if err != nil {
		d.log.Error("policy: read enis", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if p.hooked == nil {
		p.hooked = make(map[int]string)
	}
	for _, e := range enis {
		if e.State == store.ENIAttaching {
			continue
		}
		mac, err := net.ParseMAC(e.MAC)
		if err != nil {
			continue
		}
		l, err := netplumb.LookupENI(ctx, netplumb.ENIConfig{MAC: mac, VSwitchCIDR: e.VSwitchCIDR, Gateway: e.Gateway, Table: e.Table})
		if err != nil {
			continue // no link yet, or gone: a later pass
		}
		if p.hooked[l.Index] == e.ID {
			continue
		}
		if err := p.k.AttachENI(l.Index); err != nil {
			d.log.Warn("policy: hook eni", "eni", e.ID, "ifindex", l.Index, "err", err)
			continue
		}
		p.hooked[l.Index] = e.ID
	}
}

// watchPolicySources calls signal on every store write and every change in
// the manifest folder (when there is one).
func (d *Daemon) watchPolicySources(dir string, signal func()) []func() {
	var stops []func()
	writes, stop, err := watchFile(d.env.Store.Path)
	if err != nil {
		d.log.Warn("policy: store watch unavailable; relying on the resync timer", "err", err)
	} else {
		stops = append(stops, stop)
		go func() {
			for range writes {
				signal()
			}
		}()
	}
	if dir == "" {
		return stops
	}
	w, err := fsnotify.NewWatcher()
	if err == nil {
		err = w.Add(dir)
		if err != nil {
			w.Close()
		}
	}
	if err != nil {
		d.log.Warn("policy: manifest folder watch unavailable; relying on the resync timer", "dir", dir, "err", err)
		return stops
	}
	stops = append(stops, func() { w.Close() })
	go func() {
		for {
			select {
			case _, ok := <-w.Events:
				if !ok {
					return
				}
				signal()
			case _, ok := <-w.Errors:
				if !ok {
					return
				}
			}
		}
	}()
	return stops
}
