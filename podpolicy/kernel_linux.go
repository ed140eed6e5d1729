package podpolicy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/ebpf/datapath"
	"github.com/veni-cni/veni/ebpf/enforce"
	"github.com/veni-cni/veni/ebpf/fastpath"
	"github.com/veni-cni/veni/policy"
)

// pinnedHooksMap is a map every node with policy endpoints has pinned in
// its pin directory (the enforcer's hook records).
const pinnedHooksMap = "veni_pol_hooks"

// OpenNodeKernel opens the node's eBPF enforcer (ebpf/enforce) in the pin
// directory of instance instanceID, loading its programs the first time.
// A kernel or host without what it needs gives an error wrapping
// ErrNoEnforcer: the node then keeps records and enforces nothing. It runs
// whichever datapath the node has (plain: without the redirects).
func OpenNodeKernel(cfg config.Config, instanceID string) (NodeKernel, error) {
	pinDir, err := datapath.PinDir(instanceID)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoEnforcer, err)
	}
	e, err := enforce.Open(enforce.Options{PinDir: pinDir, PodHook: cfg.EBPFPodHook})
	if errors.Is(err, enforce.ErrNotSupported) || errors.Is(err, fastpath.ErrNotBPFFS) || errors.Is(err, fastpath.ErrNotSupported) {
		return nil, fmt.Errorf("%w: %w", ErrNoEnforcer, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open the policy enforcer: %w", err)
	}
	// Service traffic's egress is decided after DNAT (enforce's doc): the
	// programs must know the Service CIDRs. Written only when they changed.
	if err := e.SetServiceCIDRs(cfg.ServicePrefixes()); err != nil {
		e.Close()
		return nil, fmt.Errorf("open the policy enforcer: %w", err)
	}
	return enforcerKernel{e}, nil
}

// OpenNodeKernelIfUsed is OpenNodeKernel for callers that only remove
// (a release): when the node never had a policy endpoint it returns an
// error wrapping ErrNoEnforcer without loading anything.
func OpenNodeKernelIfUsed(cfg config.Config, instanceID string) (NodeKernel, error) {
	pinDir, err := datapath.PinDir(instanceID)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoEnforcer, err)
	}
	if _, err := os.Stat(filepath.Join(pinDir, pinnedHooksMap)); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: no policy endpoint was ever installed on this node", ErrNoEnforcer)
	}
	return OpenNodeKernel(cfg, instanceID)
}

type enforcerKernel struct{ e *enforce.Enforcer }

func key(ep Endpoint) enforce.EndpointKey {
	return enforce.EndpointKey{Ifindex: ep.Ifindex, IP: ep.IP, IP6: ep.IP6}
}

func (k enforcerKernel) SetEndpoint(ep Endpoint, rs *policy.Ruleset) error {
	return k.e.SetEndpoint(key(ep), rs)
}
func (k enforcerKernel) SetEndpointTable(ep Endpoint, digest string, table []byte) error {
	if err := k.e.SetEndpointTable(key(ep), table); err != nil {
		return fmt.Errorf("kernel table of record %s: %w", digest, err)
	}
	return nil
}

// SetEndpointRuleset installs table, rs's kernel form: the same state as
// SetEndpoint(ep, rs), without compiling rs again.
func (k enforcerKernel) SetEndpointRuleset(ep Endpoint, _ *policy.Ruleset, digest string, table []byte) error {
	return k.SetEndpointTable(ep, digest, table)
}
func (k enforcerKernel) FailClosed(ep Endpoint) error     { return k.e.FailClosed(key(ep)) }
func (k enforcerKernel) AttachEndpoint(ep Endpoint) error { return k.e.AttachEndpoint(key(ep)) }
func (k enforcerKernel) RemoveEndpoint(ep Endpoint) error { return k.e.RemoveEndpoint(key(ep)) }
func (k enforcerKernel) AttachENI(ifindex int) error      { return k.e.AttachENI(ifindex) }
func (k enforcerKernel) Close() error                     { return k.e.Close() }
