//go:build !linux

package vlan

import (
	"errors"
	"net/netip"
)

// ErrNotSupported: the tagger needs Linux.
var ErrNotSupported = errors.New("vlan tagger needs linux")

// Tagger is the node's loaded tagger (Linux only).
type Tagger struct{}

// Open fails off Linux.
func Open(string) (*Tagger, error) { return nil, ErrNotSupported }

func (*Tagger) Close() error                           { return nil }
func (*Tagger) Attach(int) error                       { return ErrNotSupported }
func (*Tagger) SetMember(netip.Addr, int) error        { return ErrNotSupported }
func ForgetPinned(string, netip.Addr) error            { return nil }
func Teardown(string) error                            { return nil }
func PinnedMembers(string) (map[netip.Addr]int, error) { return map[netip.Addr]int{}, nil }
