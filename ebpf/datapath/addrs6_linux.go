package datapath

import (
	"net/netip"

	"github.com/veni-cni/veni/netplumb"
)

// nodeAddrs6 lists the global IPv6 addresses on the links of the calling
// thread's network namespace (it only reads them).
func nodeAddrs6() ([]netip.Addr, error) { return netplumb.NodeIPv6() }
