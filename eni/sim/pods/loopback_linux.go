package pods

import (
	"fmt"

	"github.com/vishvananda/netlink"
)

// loopbackUp brings lo up in the calling thread's namespace, as runtimes do
// for every sandbox (and the CNI loopback plugin would).
func loopbackUp() error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo: %w", err)
	}
	return netlink.LinkSetUp(lo)
}
