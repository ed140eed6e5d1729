package podnet

import (
	"context"

	"github.com/veni-cni/veni/ipam"
	"github.com/veni-cni/veni/netplumb"
)

// HostPods lists the pods veni plumbed on this host, from their links
// (ipam.Node.HostPods): what the daemon and "veni ipam gc" check the store
// against. Only a readable owner record on the link says whose pod it is.
func HostPods(ctx context.Context) ([]ipam.HostPod, error) {
	pods, err := netplumb.HostPods(ctx, "")
	if err != nil {
		return nil, err
	}
	out := make([]ipam.HostPod, 0, len(pods))
	for _, p := range pods {
		hp := ipam.HostPod{HostVeth: p.Host.Name, HostIfindex: p.Host.Index, IPs: p.IPs}
		if p.Owned {
			hp.ContainerID, hp.IfName, hp.NetNS = p.ContainerID, p.IfName, p.NetNS
		}
		out = append(out, hp)
	}
	return out, nil
}
