package policy

import "errors"

// These errors can occur when building a Snapshot.
var (
	// ErrInvalidPolicy means a NetworkPolicy breaks a rule the API server
	// enforces (an unknown protocol or policy type, a port out of range, an
	// endPort with a named port, an ipBlock with a bad CIDR or an except
	// outside it, a peer with no selector or with both an ipBlock and a
	// selector, an invalid label selector). A policy read from an API
	// server never has one; a manifest may.
	ErrInvalidPolicy = errors.New("invalid network policy")

	// ErrInvalidObject means a pod, namespace or node of the input is
	// unusable: no name, an address that does not parse, a container port
	// out of range or with an unknown protocol, the same object twice.
	ErrInvalidObject = errors.New("invalid object")
)

// These errors can occur when compiling, showing or tracing.
var (
	// ErrUnknownPod means the pod named is not in the snapshot.
	ErrUnknownPod = errors.New("pod not in snapshot")

	// ErrNoAddress means a pod named as a trace's endpoint has no address
	// (pending, or of the other family than the other endpoint).
	ErrNoAddress = errors.New("pod has no usable address")
)

// ErrManifest wraps every error of reading a folder of manifests; the
// message names the file and the document.
var ErrManifest = errors.New("manifest")
