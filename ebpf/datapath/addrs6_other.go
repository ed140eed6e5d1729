//go:build !linux

package datapath

import "net/netip"

// nodeAddrs6 has nothing to read off Linux.
func nodeAddrs6() ([]netip.Addr, error) { return nil, nil }
