package datapath

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/ebpf/fastpath"
	"github.com/veni-cni/veni/store"
)

// ErrNoInstance means the node's facts name no instance, so there is no pin
// directory to use.
var ErrNoInstance = errors.New("node facts have no instance id")

// Decision is the datapath a node runs and why.
type Decision struct {
	Configured string `json:"configured"` // config.DatapathAuto, DatapathEBPF or DatapathPlain
	Active     string `json:"active"`     // config.DatapathEBPF or config.DatapathPlain
	Reason     string `json:"reason"`     // one line for logs and status
}

// EBPF reports whether pods get the fast path.
func (d Decision) EBPF() bool { return d.Active == config.DatapathEBPF }

// Decide picks the datapath for the configured mode (config.Config's
// DatapathMode) given probe, which is fastpath.Supported outside tests. The
// probe is not run when the mode is plain. A kernel without what the fast
// path needs gives plain, even when ebpf was asked for: a pod must never
// fail to start for want of eBPF.
func Decide(mode string, probe func() error) Decision {
	d := Decision{Configured: mode, Active: config.DatapathPlain}
	if mode == config.DatapathPlain {
		d.Reason = "configured plain"
		return d
	}
	if err := probe(); err != nil {
		d.Reason = fmt.Sprintf("configured %s, but %v", mode, err)
		return d
	}
	d.Active = config.DatapathEBPF
	d.Reason = fmt.Sprintf("configured %s and the kernel supports the fast path", mode)
	return d
}

// Missing reports whether err, from fastpath.Open, means the kernel or the
// host lacks what the fast path needs (no eBPF, no bpffs) rather than a
// fault: callers then carry on with the plain datapath.
func Missing(err error) bool {
	return errors.Is(err, fastpath.ErrNotSupported) || errors.Is(err, fastpath.ErrNotBPFFS)
}

// PinDir returns the node's pin directory under fastpath.DefaultPinRoot.
// It is keyed by the instance id, so simulated nodes sharing one kernel
// never share maps. May return an error wrapping ErrNoInstance.
func PinDir(instanceID string) (string, error) {
	return PinDirUnder(fastpath.DefaultPinRoot, instanceID)
}

// PinDirUnder is PinDir under another root (tests).
func PinDirUnder(root, instanceID string) (string, error) {
	if instanceID == "" {
		return "", ErrNoInstance
	}
	// An id is one path element; anything else would escape the root.
	if instanceID != filepath.Base(instanceID) || strings.ContainsAny(instanceID, `/\`) || instanceID == "." || instanceID == ".." {
		return "", fmt.Errorf("instance id %q cannot name a pin directory", instanceID)
	}
	return fastpath.NodePinDir(root, instanceID), nil
}

// HostStack lists what pods must reach through the host stack: the
// Service CIDRs (kube-proxy's NAT lives there), host_stack_cidrs, and the
// node's own addresses, its primary IP and every ENI's primary IP. A
// member's or an exclusive ENI's primary IP is its pod's address, not the
// node's, and is left out. Both families: an IPv6 Service CIDR or
// host-stack CIDR goes to the fast path's IPv6 map; the node's own IPv6
// addresses are not in the store (withNodeAddrs6 adds them).
func HostStack(cfg config.Config, node store.NodeInfo, enis []store.ENI) fastpath.HostStack {
	hs := fastpath.HostStack{
		ServiceCIDRs: cfg.ServicePrefixes(),
		CIDRs:        cfg.HostStackPrefixes(),
	}
	if node.PrimaryIP.IsValid() {
		hs.NodeAddrs = append(hs.NodeAddrs, node.PrimaryIP)
	}
	for _, e := range enis {
		// A dedicated ENI's primary IP is its pod's address, not the node's.
		if e.PrimaryIP.IsValid() && !e.Dedicated() {
			hs.NodeAddrs = append(hs.NodeAddrs, e.PrimaryIP)
		}
	}
	slices.SortFunc(hs.NodeAddrs, netip.Addr.Compare)
	hs.NodeAddrs = slices.Compact(hs.NodeAddrs)
	return hs
}

// LoadHostStack is HostStack over the node facts and ENIs in db, read in
// one transaction.
func LoadHostStack(db store.File, cfg config.Config) (fastpath.HostStack, error) {
	var (
		node store.NodeInfo
		enis []store.ENI
	)
	err := db.View(func(tx *store.ReadTx) error {
		var err error
		if node, err = tx.Node(); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		enis, err = tx.ENIs()
		return err
	})
	if err != nil {
		return fastpath.HostStack{}, fmt.Errorf("read node addresses: %w", err)
	}
	return withNodeAddrs6(cfg, HostStack(cfg, node, enis))
}

// withNodeAddrs6 adds to hs, on a dual-stack node, the node's own global
// IPv6 addresses (read from the links of the calling thread's network
// namespace: call it in the node's). The store does not know them: veni
// gives the node no IPv6, but the cloud or an operator may have. Without
// them a pod's packets for the node's IPv6 would leave by the ENI.
func withNodeAddrs6(cfg config.Config, hs fastpath.HostStack) (fastpath.HostStack, error) {
	if !cfg.DualStack() {
		return hs, nil
	}
	addrs, err := nodeAddrs6()
	if err != nil {
		return hs, fmt.Errorf("read the node's ipv6 addresses: %w", err)
	}
	hs.NodeAddrs = append(hs.NodeAddrs, addrs...)
	slices.SortFunc(hs.NodeAddrs, netip.Addr.Compare)
	hs.NodeAddrs = slices.Compact(hs.NodeAddrs)
	return hs, nil
}

// SameHostStack reports whether a and b list the same destinations, so
// the daemon rewrites the map only when something changed.
func SameHostStack(a, b fastpath.HostStack) bool {
	return slices.Equal(a.ServiceCIDRs, b.ServiceCIDRs) && slices.Equal(a.CIDRs, b.CIDRs) && slices.Equal(a.NodeAddrs, b.NodeAddrs)
}
