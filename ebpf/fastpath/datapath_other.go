//go:build !linux

package fastpath

import (
	"net"
	"net/netip"
)

// Datapath exists only on Linux; elsewhere every call fails with
// ErrNotSupported so that veni builds (and its unit tests run) on laptops.
type Datapath struct{}

func Open(Options) (*Datapath, error)            { return nil, ErrNotSupported }
func Supported() error                           { return ErrNotSupported }
func Teardown(string) error                      { return ErrNotSupported }
func (*Datapath) Close() error                   { return ErrNotSupported }
func (*Datapath) PinDir() string                 { return "" }
func (*Datapath) AttachPod(Endpoint) error       { return ErrNotSupported }
func (*Datapath) DetachPod(netip.Addr) error     { return ErrNotSupported }
func (*Datapath) PlainPod(netip.Addr, int) error { return ErrNotSupported }
func (*Datapath) AttachENI(int) error            { return ErrNotSupported }
func (*Datapath) DetachENI(int) error            { return ErrNotSupported }
func (*Datapath) SetHostStack(HostStack) error   { return ErrNotSupported }
func (*Datapath) Counters() (Counters, error)    { return Counters{}, ErrNotSupported }
func (*Datapath) HostStackPrefixes() (map[netip.Prefix]string, error) {
	return nil, ErrNotSupported
}
func (*Datapath) Endpoints() ([]Endpoint, error) { return nil, ErrNotSupported }
func (*Datapath) PlainPods() ([]PlainPod, error) { return nil, ErrNotSupported }
func (*Datapath) DetachPodOn(netip.Addr, int, net.HardwareAddr) (bool, error) {
	return false, ErrNotSupported
}
func (*Datapath) ENIs() ([]int, error) { return nil, ErrNotSupported }
func (*Datapath) Endpoint(netip.Addr) (Endpoint, bool, error) {
	return Endpoint{}, false, ErrNotSupported
}

// Loaded reports false: there is no fast path off Linux.
func Loaded(string) bool { return false }

// EnsurePinDir fails off Linux.
func EnsurePinDir(string) error { return ErrNotSupported }

// LockPinDir fails off Linux.
func LockPinDir(string) (func(), error) { return nil, ErrNotSupported }
