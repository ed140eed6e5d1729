package podpolicy

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/veni-cni/veni/policy"
)

// Endpoint names a pod to the kernel: its host-side veth (ifindex in the
// node's namespace) and its addresses (IP6 on a dual-stack node: the
// kernel finds the source of Service traffic by address).
type Endpoint struct {
	Ifindex int        `json:"ifindex"`
	IP      netip.Addr `json:"ip"`
	IP6     netip.Addr `json:"ip6,omitzero"`
}

func (e Endpoint) String() string { return fmt.Sprintf("%s@%d", e.IP, e.Ifindex) }

// Kernel is the policy enforcement the node's kernel does (the eBPF
// enforcer). Implementations serialise their own calls across processes.
type Kernel interface {
	// SetEndpoint makes rs the endpoint's policy, atomically.
	SetEndpoint(ep Endpoint, rs *policy.Ruleset) error
	// SetEndpointTable is SetEndpoint with the ruleset in the kernel's
	// form, as a record of digest holds it (store.PolicyTable): what an
	// ADD installs without decoding or compiling anything.
	SetEndpointTable(ep Endpoint, digest string, table []byte) error
	// FailClosed isolates the endpoint both ways, its node's traffic to
	// it excepted.
	FailClosed(ep Endpoint) error
	// AttachEndpoint hooks the policy programs on the endpoint's veth.
	AttachEndpoint(ep Endpoint) error
	// RemoveEndpoint forgets the endpoint; an unknown one is no error.
	RemoveEndpoint(ep Endpoint) error
}

// ErrNoEnforcer means the node has no NetworkPolicy enforcer in its
// kernel: compiled records are kept, nothing is enforced.
var ErrNoEnforcer = errors.New("no NetworkPolicy enforcer on this node")

// NodeKernel is the node's enforcer as a process holds it.
type NodeKernel interface {
	Kernel
	// AttachENI hooks the check of Service traffic's deferred egress on
	// the ENI link ifindex (in the node's namespace): where a flow a pod
	// sent to a ClusterIP leaves after the host DNATed it to a backend on
	// another node. Idempotent; the hook goes with the link.
	AttachENI(ifindex int) error
	// Close releases the process's hold; the kernel state stays.
	Close() error
}
