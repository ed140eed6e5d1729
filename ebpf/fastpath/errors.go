package fastpath

import "errors"

var (
	// ErrNotSupported means the kernel lacks something the fast path needs
	// (TCX, bpf_redirect_peer, bpf_redirect_neigh, bpf_fib_lookup with a
	// table id). The error from Supported says which; callers fall back to
	// the plain datapath.
	ErrNotSupported = errors.New("ebpf fast path not supported")

	// ErrNotBPFFS means the pin directory is not on a bpf filesystem and
	// could not be put on one.
	ErrNotBPFFS = errors.New("pin directory is not on bpffs")

	// ErrInvalidEndpoint means an Endpoint lacks a field the programs need.
	ErrInvalidEndpoint = errors.New("invalid endpoint")

	// ErrInvalidOptions means Options are incomplete (no PinDir).
	ErrInvalidOptions = errors.New("invalid options")

	// ErrMapFull means a map had no room for a pod (its endpoint, its flow
	// map or, for PlainPod, its host-stack entry), or the kernel could not
	// allocate its flow map. The pod can still run on the plain datapath.
	ErrMapFull = errors.New("fast path map full")
)
