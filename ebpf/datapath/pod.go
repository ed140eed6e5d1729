package datapath

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"

	"github.com/cilium/ebpf"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/ebpf/fastpath"
	"github.com/veni-cni/veni/netplumb"
	"github.com/veni-cni/veni/store"
)

// Pod is a pod netplumb.SetupPod plumbed, as the fast path sees it.
type Pod struct {
	IP    netip.Addr
	IP6   netip.Addr         // a dual-stack pod's IPv6 (zero: IPv4 only)
	Links netplumb.PodResult // the veth's two ends; Links.Host names the host veth
	ENI   netplumb.ENILink   // the ENI the address belongs to
}

// Attach says what AttachPod did for a pod.
type Attach struct {
	// Fast reports whether the programs carry the pod's traffic.
	Fast bool
	// Fallback reports that the node runs the fast path but this pod stays
	// on the plain datapath (full maps, pins of another veni version);
	// Reason says why, for the caller to log (the CNI plugin's stderr).
	// A node that runs the plain datapath is no fallback.
	Fallback bool
	Reason   string
}

// DecideCNI decides the datapath for one CNI call. Probing the kernel costs
// about a millisecond; programs this build already loaded and pinned in
// pinDir prove the answer.
func DecideCNI(cfg config.Config, pinDir string) Decision {
	return Decide(cfg.DatapathMode(), func() error {
		if fastpath.Loaded(pinDir) {
			return nil
		}
		return fastpath.Supported()
	})
}

// unusable reports whether err, from fastpath.Open, means this pod cannot
// get the fast path but can run on the plain datapath: no eBPF or bpffs,
// or maps pinned by another veni version (until the daemon or "veni sim
// down" tears them down).
func unusable(err error) bool {
	return Missing(err) || errors.Is(err, ebpf.ErrMapIncompatible)
}

// AttachPod gives a pod the fast path on top of what netplumb.SetupPod
// built, when the node runs it (cfg's datapath and the kernel decide):
// the node's programs loaded (pinned maps reused), the host-stack
// destinations refreshed from cfg, facts and enis (the node's ENIs, the
// pod's own included), the ENI program attached (idempotent) and the pod's
// endpoint recorded. Call it in the node's network namespace, where the
// ifindexes of pod and ENI resolve.
//
// A pod never fails for want of the fast path: when the kernel lacks eBPF,
// the pins are another version's, or the maps are full (fastpath
// ErrMapFull), the pod stays on the plain datapath, Attach.Fallback says so
// and why, and a pod that found the maps full is recorded as a plain pod
// so that fast-path pods reach it through the host stack ("veni status"
// lists it as plain-pod). Other failures are returned; the caller undoes
// with DetachPod.
//
// nodeMaxPods is what the node can hold (ipam.MaxPods): the fast path's
// maps, when this ADD makes them, are sized for it.
func AttachPod(cfg config.Config, facts store.NodeInfo, enis []store.ENI, nodeMaxPods int, pod Pod) (Attach, error) {
	if !pod.IP.IsValid() {
		return Attach{}, nil // the fast path keys a pod by its IPv4: an IPv6-only pod stays plain
	}
	pinDir, err := PinDir(facts.InstanceID)
	if err != nil {
		return Attach{}, err
	}
	if !DecideCNI(cfg, pinDir).EBPF() {
		return Attach{}, nil
	}
	hs, err := withNodeAddrs6(cfg, HostStack(cfg, facts, enis))
	if err != nil {
		return Attach{}, err
	}
	// Every ADD writes the host-stack destinations: without a daemon the
	// first pod would otherwise reach the Service CIDR untranslated.
	dp, err := fastpath.Open(fastpath.Options{PinDir: pinDir, HostStack: &hs, PodHook: cfg.EBPFPodHook, MaxPods: fastpath.MapPods(nodeMaxPods)})
	if unusable(err) {
		return Attach{Fallback: true, Reason: err.Error()}, nil
	}
	if err != nil {
		return Attach{}, err
	}
	defer dp.Close()
	if err := dp.AttachENI(pod.ENI.Index); err != nil {
		return Attach{}, err
	}
	err = dp.AttachPod(fastpath.Endpoint{
		IP:          pod.IP,
		IP6:         pod.IP6,
		HostIfindex: pod.Links.Host.Index,
		HostMAC:     pod.Links.Host.MAC,
		PodMAC:      pod.Links.Pod.MAC,
		ENIIfindex:  pod.ENI.Index,
		ENITable:    pod.ENI.Table,
	})
	if errors.Is(err, fastpath.ErrMapFull) {
		reason := err.Error()
		for _, ip := range []netip.Addr{pod.IP, pod.IP6} {
			if !ip.IsValid() {
				continue
			}
			if perr := dp.PlainPod(ip, pod.Links.Host.Index); perr != nil {
				reason += fmt.Sprintf("; other pods of the node may not reach %s directly: %v", ip, perr)
			}
		}
		return Attach{Fallback: true, Reason: reason}, nil
	}
	if err != nil {
		return Attach{}, err
	}
	return Attach{Fast: true}, nil
}

// DetachPod removes a pod's fast-path records (endpoint, flow map, hook,
// or plain-pod record) when they are the pod's: recorded on host veth
// hostIfindex, or on a veth that no longer exists. The address may already
// belong to a new pod, whose records an IP-only detach would strip: they
// name the new pod's veth, which is alive, and stay. Pass the host ifindex
// SetupPod returned (PodResult.Host.Index), or 0 when it is unknown (then
// only records of a gone veth are removed: tear the links down first).
//
// It looks at the pins, not at the configured datapath, which may have
// changed since the pod's ADD; no pin directory means there is nothing to
// remove, and nothing is created to find that out. Call it in the node's
// network namespace. "Already gone" is success. A dual-stack pod's IPv6
// records go with its IPv4 address's (they name the same veth).
func DetachPod(instanceID string, ip netip.Addr, hostIfindex int) error {
	if instanceID == "" || !ip.IsValid() {
		return nil
	}
	pinDir, err := PinDir(instanceID)
	if err != nil {
		return err
	}
	if _, err := os.Stat(pinDir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	dp, err := fastpath.Open(fastpath.Options{PinDir: pinDir})
	if unusable(err) {
		return nil // nothing of this build could have been attached
	}
	if err != nil {
		return err
	}
	defer dp.Close()
	_, err = dp.DetachPodOn(ip, hostIfindex, nil)
	return err
}

// CheckPod verifies, on a node that runs the fast path, that the pod has
// its endpoint (a dual-stack pod: one for each address), on its own host veth (when pod.Links.Host.Index is known)
// and pointing at the ENI its address belongs to, or that it was recorded
// as a plain pod when the maps were full. Errors say what differs and how
// to repair it.
func CheckPod(cfg config.Config, instanceID string, pod Pod) error {
	if !pod.IP.IsValid() {
		return nil // an IPv6-only pod is on the plain datapath (AttachPod)
	}
	pinDir, pinErr := PinDir(instanceID) // "" when there is none
	decision := DecideCNI(cfg, pinDir)
	if !decision.EBPF() {
		return nil
	}
	if pinErr != nil {
		return pinErr
	}
	if _, err := os.Stat(pinDir); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("fast path of pod %s: no pins in %s (datapath is %s: %s)", pod.IP, pinDir, decision.Active, decision.Reason)
	}
	dp, err := fastpath.Open(fastpath.Options{PinDir: pinDir})
	if unusable(err) {
		return nil // ADD fell back to the plain datapath the same way
	}
	if err != nil {
		return err
	}
	defer dp.Close()
	for _, ip := range []netip.Addr{pod.IP, pod.IP6} {
		if ip.IsValid() {
			if err := checkAddr(dp, pinDir, ip, pod); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkAddr is CheckPod for one of the pod's addresses.
func checkAddr(dp *fastpath.Datapath, pinDir string, ip netip.Addr, pod Pod) error {
	host := pod.Links.Host.Index
	ep, ok, err := dp.Endpoint(ip)
	if err != nil {
		return err
	}
	if !ok {
		plain, err := dp.PlainPods()
		if err != nil {
			return err
		}
		for _, p := range plain {
			if p.IP == ip && (host == 0 || p.HostIfindex == host) {
				return nil // ADD found the maps full: the plain datapath carries it
			}
		}
		return fmt.Errorf("fast path of pod %s: no endpoint in %s (DEL and ADD the pod again)", ip, pinDir)
	}
	if host > 0 && ep.HostIfindex != host {
		return fmt.Errorf("fast path of pod %s: endpoint is on host ifindex %d, the pod's veth is %d (DEL and ADD the pod again)", ip, ep.HostIfindex, host)
	}
	if ep.ENIIfindex != pod.ENI.Index || ep.ENITable != pod.ENI.Table {
		return fmt.Errorf("fast path of pod %s: endpoint uses eni ifindex %d table %d, the eni is ifindex %d table %d (DEL and ADD the pod again)", ip, ep.ENIIfindex, ep.ENITable, pod.ENI.Index, pod.ENI.Table)
	}
	return nil
}

// StoredInstanceID returns the instance id in the store's node facts, or ""
// when there are none (then no ADD reached the fast path either).
func StoredInstanceID(db store.File) string {
	var id string
	_ = db.View(func(tx *store.ReadTx) error {
		info, err := tx.Node()
		id = info.InstanceID
		return err
	})
	return id
}
