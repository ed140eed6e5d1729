package netplumb

import (
	"context"
	"fmt"
	"hash/fnv"
	"net"
)

// LookupENI finds the link of an ENI that EnsureENI configured with cfg,
// without waiting and without changing anything, and returns it as
// EnsureENI would. It is for read-only callers: CNI CHECK, the daemon's
// program sync and audits; CheckPod then verifies the ENI's table against
// the returned link. cfg is validated as EnsureENI validates it (Table is
// required). May return an error wrapping ErrLinkNotFound or
// ErrInvalidConfig.
func LookupENI(ctx context.Context, cfg ENIConfig) (ENILink, error) {
	if err := cfg.validate(); err != nil {
		return ENILink{}, err
	}
	h, err := openHandle(cfg.NetNS)
	if err != nil {
		return ENILink{}, fmt.Errorf("lookup eni %s: %w", cfg.MAC, err)
	}
	defer h.Close()
	// An already-expired context makes FindLinkByMAC look exactly once.
	done, cancel := context.WithCancel(ctx)
	cancel()
	link, err := FindLinkByMAC(done, h, cfg.MAC)
	if err != nil {
		return ENILink{}, fmt.Errorf("lookup eni: %w", err)
	}
	return eniLinkOf(link, cfg), nil
}

// InterimTable derives a table number from an ENI's MAC: 1000 plus 24 bits
// of its FNV-1a hash, stable across re-attachments, with a negligible
// chance that two ENIs of one node collide.
//
// Deprecated: a stop-gap for callers until the store assigns every ENI its
// table (store.ENI.Table); pass that instead and delete this.
func InterimTable(mac net.HardwareAddr) int {
	h := fnv.New32a()
	_, _ = h.Write(mac)
	return 1000 + int(h.Sum32()&0xffffff)
}
