package netplumb

import (
	"context"
	"fmt"
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
