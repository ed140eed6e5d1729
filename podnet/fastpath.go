package podnet

import (
	"errors"
	"net/netip"
	"os"

	"github.com/veni-cni/veni/ebpf/datapath"
	"github.com/veni-cni/veni/ebpf/fastpath"
)

// detachFastPath removes the pod's fast-path endpoint and pinned links, if
// the endpoint for ip is still the one on hostIfindex (zero: any). It
// looks at the pins, not at the configured datapath, which may have changed
// since the pod's ADD; no pin directory means there is nothing to remove.
func detachFastPath(instanceID string, ip netip.Addr, hostIfindex int) error {
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
	ep, ok, err := dp.Endpoint(ip)
	if err != nil || !ok || (hostIfindex != 0 && ep.HostIfindex != hostIfindex) {
		return err
	}
	return dp.DetachPod(ip)
}
