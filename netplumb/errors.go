package netplumb

import "errors"

// These errors come from the ADD path (EnsureENI, SetupPod).
var (
	// ErrLinkNotFound means no link with the wanted MAC or name exists (for
	// an ENI: it did not appear before the deadline).
	ErrLinkNotFound = errors.New("link not found")

	// ErrPodInterfaceExists means the pod namespace already has an
	// interface with the requested name. The CNI spec requires ADD to fail
	// then rather than adopt it.
	ErrPodInterfaceExists = errors.New("pod interface already exists")

	// ErrNetNSNotFound means the network namespace path does not exist (the
	// pod sandbox is gone). TeardownPod treats it as success.
	ErrNetNSNotFound = errors.New("network namespace not found")

	// ErrInvalidConfig means a required field of ENIConfig or PodConfig is
	// missing or malformed; the same call will fail again unchanged.
	ErrInvalidConfig = errors.New("invalid config")

	// ErrMTU means the pod's MTU is larger than its ENI's: packets the pod
	// sends at full size could not leave the node. The error says both
	// values; the same call fails again until one of them changes.
	ErrMTU = errors.New("pod mtu above the eni's")
)

// These errors come from CheckPod: each names the one piece of the pod's
// datapath that is missing or differs from what SetupPod installs.
var (
	ErrPodInterfaceMissing = errors.New("pod interface missing")
	ErrPodAddressMissing   = errors.New("pod address missing")
	ErrPodRouteMissing     = errors.New("pod route missing")
	ErrPodNeighborMissing  = errors.New("pod gateway neighbour missing")
	ErrHostVethMissing     = errors.New("host veth missing")
	ErrHostRouteMissing    = errors.New("host route to pod missing")
	ErrRuleMissing         = errors.New("policy rule missing")
	ErrENIRouteMissing     = errors.New("eni table route missing")
)
