//go:build !linux

package podpolicy

import (
	"fmt"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/store"
)

// Counters has nothing to list off Linux.
func Counters(store.File, config.Config, string) (NodeCounters, error) {
	return NodeCounters{}, fmt.Errorf("%w: not Linux", ErrNoEnforcer)
}
