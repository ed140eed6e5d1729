//go:build !linux

package podpolicy

import (
	"context"
	"fmt"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/store"
)

// DropEvent is a dropped packet (Linux only).
type DropEvent struct{}

// DropStream reads drops (Linux only).
type DropStream struct{}

// OpenDrops: enforcement needs Linux eBPF.
func OpenDrops(store.File, config.Config, string) (*DropStream, error) {
	return nil, fmt.Errorf("%w: not Linux", ErrNoEnforcer)
}

// Next never returns a drop.
func (*DropStream) Next(ctx context.Context) (DropEvent, error) {
	<-ctx.Done()
	return DropEvent{}, ctx.Err()
}

// Close does nothing.
func (*DropStream) Close() error { return nil }
