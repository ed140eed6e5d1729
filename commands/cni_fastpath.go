package commands

import (
	"errors"
	"fmt"
	"net/netip"
	"os"

	"github.com/veni-cni/veni/ebpf/datapath"
	"github.com/veni-cni/veni/ebpf/fastpath"
	"github.com/veni-cni/veni/netplumb"
	"github.com/veni-cni/veni/node"
	"github.com/veni-cni/veni/store"
)

// The CNI plugin's part of the eBPF fast path. The plugin runs in the
// node's network namespace (the runtime starts it there), which is where
// fastpath resolves the ifindexes it is given, so no namespace switch is
// needed here.

// attachFastPath gives the pod the fast path on top of what SetupPod built
// (enis are the node's ENIs as ADD read them, the pod's own included):
// the node's programs loaded (pinned maps reused), the host-stack
// destinations refreshed, the ENI program attached (idempotent) and the
// pod's endpoint recorded. It returns whether the pod got the fast path: a
// kernel or host without eBPF is not an error, the plain datapath carries
// the pod (the decision says why in "veni status").
func attachFastPath(env *node.Env, facts store.NodeInfo, enis []store.ENI, ip netip.Addr, pod netplumb.PodResult, eni netplumb.ENILink) (bool, error) {
	instanceID := facts.InstanceID
	pinDir, err := datapath.PinDir(instanceID)
	if err != nil {
		return false, err
	}
	if !decideFastPath(env, pinDir).EBPF() {
		return false, nil
	}
	hs := datapath.HostStack(env.Config, facts, enis)
	// Every ADD writes the host-stack destinations: without a daemon the
	// first pod would otherwise reach the Service CIDR untranslated.
	dp, err := fastpath.Open(fastpath.Options{PinDir: pinDir, HostStack: &hs, PodHook: env.Config.EBPFPodHook})
	if datapath.Missing(err) {
		fmt.Fprintf(os.Stderr, "veni: pod %s stays on the plain datapath: %v\n", ip, err)
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer dp.Close()
	if err := dp.AttachENI(eni.Index); err != nil {
		return false, err
	}
	return true, dp.AttachPod(fastpath.Endpoint{
		IP:          ip,
		HostIfindex: pod.Host.Index,
		HostMAC:     pod.Host.MAC,
		PodMAC:      pod.Pod.MAC,
		ENIIfindex:  eni.Index,
		ENITable:    eni.Table,
	})
}

// detachFastPath removes the pod's endpoint and pinned links. It looks at
// the pins, not at the configured datapath, which may have changed since
// the pod's ADD; no pin directory means there is nothing to remove, and
// nothing is created to find that out.
func detachFastPath(instanceID string, ip netip.Addr) error {
	if instanceID == "" || !ip.IsValid() {
		return nil
	}
	pinDir, err := datapath.PinDir(instanceID)
	if err != nil {
		return err
	}
	if _, err := os.Stat(pinDir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	dp, err := fastpath.Open(fastpath.Options{PinDir: pinDir})
	if err != nil {
		return err
	}
	defer dp.Close()
	return dp.DetachPod(ip)
}

// cachedInstanceID returns the instance id in the store's node facts, or ""
// when there are none (then no ADD reached the fast path either).
func cachedInstanceID(db store.File) string {
	var id string
	_ = db.View(func(tx *store.ReadTx) error {
		info, err := tx.Node()
		id = info.InstanceID
		return err
	})
	return id
}

// decideFastPath decides the datapath for a CNI call. Probing the kernel
// costs about a millisecond; programs this build already loaded and pinned
// on this node prove the answer.
func decideFastPath(env *node.Env, pinDir string) datapath.Decision {
	return datapath.Decide(env.Config.DatapathMode(), func() error {
		if fastpath.Loaded(pinDir) {
			return nil
		}
		return fastpath.Supported()
	})
}

// checkFastPath verifies that a pod on a node that runs the fast path has
// its endpoint, pointing at the ENI its address belongs to.
func checkFastPath(env *node.Env, instanceID string, ip netip.Addr, eni netplumb.ENILink) error {
	pinDir, pinErr := datapath.PinDir(instanceID) // "" when there is none
	decision := decideFastPath(env, pinDir)
	if !decision.EBPF() {
		return nil
	}
	if pinErr != nil {
		return pinErr
	}
	if _, err := os.Stat(pinDir); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("fast path of pod %s: no pins in %s (datapath is %s: %s)", ip, pinDir, decision.Active, decision.Reason)
	}
	dp, err := fastpath.Open(fastpath.Options{PinDir: pinDir})
	if datapath.Missing(err) {
		return nil // ADD fell back to the plain datapath the same way
	}
	if err != nil {
		return err
	}
	defer dp.Close()
	ep, ok, err := dp.Endpoint(ip)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("fast path of pod %s: no endpoint in %s (DEL and ADD the pod again)", ip, pinDir)
	}
	if ep.ENIIfindex != eni.Index || ep.ENITable != eni.Table {
		return fmt.Errorf("fast path of pod %s: endpoint uses eni ifindex %d table %d, the eni is ifindex %d table %d", ip, ep.ENIIfindex, ep.ENITable, eni.Index, eni.Table)
	}
	return nil
}
