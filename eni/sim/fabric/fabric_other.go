//go:build !linux

package fabric

import (
	"net"
	"net/netip"

	"github.com/veni-cni/veni/eni/sim"
)

// Fabric is only implemented on Linux.
type Fabric struct{}

// New returns ErrNotSupported off Linux.
func New(Options) (*Fabric, error) { return nil, ErrNotSupported }

// Cleanup returns ErrNotSupported off Linux.
func Cleanup(string) error { return ErrNotSupported }

func (*Fabric) Name() string                                       { return "" }
func (*Fabric) VPCNetNS() string                                   { return "" }
func (*Fabric) AddNode(string, string) (Node, error)               { return Node{}, ErrNotSupported }
func (*Fabric) AttachENI(sim.ENILink) error                        { return ErrNotSupported }
func (*Fabric) DetachENI(string, string) error                     { return ErrNotSupported }
func (*Fabric) SetENIAddresses(string, string, []netip.Addr) error { return ErrNotSupported }
func (*Fabric) AttachMember(sim.MemberLink) error                  { return ErrNotSupported }
func (*Fabric) DetachMember(string, string, string) error          { return ErrNotSupported }
func (*Fabric) Listen(string, string) (net.Listener, error)        { return nil, ErrNotSupported }
func (*Fabric) Close() error                                       { return ErrNotSupported }
