package netplumb

import (
	"context"
	"fmt"
	"net"
)

// LookupENI finds the link of an ENI that EnsureENI configured, without
// waiting and without changing anything, and returns it as EnsureENI would
// (with the derived table; pass table 0 unless the ENI was set up with an
// explicit one). It is for read-only callers: CNI CHECK and audits. May
// return an error wrapping ErrLinkNotFound.
func LookupENI(ctx context.Context, netns string, mac net.HardwareAddr, table int) (ENILink, error) {
	h, err := openHandle(netns)
	if err != nil {
		return ENILink{}, fmt.Errorf("lookup eni %s: %w", mac, err)
	}
	defer h.Close()
	// An already-expired context makes FindLinkByMAC look exactly once.
	done, cancel := context.WithCancel(ctx)
	cancel()
	link, err := FindLinkByMAC(done, h, mac)
	if err != nil {
		return ENILink{}, fmt.Errorf("lookup eni: %w", err)
	}
	return eniLinkOf(link, table, netns), nil
}
