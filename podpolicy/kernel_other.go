//go:build !linux

package podpolicy

import (
	"fmt"

	"github.com/veni-cni/veni/config"
)

// OpenNodeKernel: enforcement needs Linux eBPF.
func OpenNodeKernel(config.Config, string) (NodeKernel, error) {
	return nil, fmt.Errorf("%w: not Linux", ErrNoEnforcer)
}

// OpenNodeKernelIfUsed: enforcement needs Linux eBPF.
func OpenNodeKernelIfUsed(config.Config, string) (NodeKernel, error) {
	return nil, fmt.Errorf("%w: not Linux", ErrNoEnforcer)
}
