package enforce

import "errors"

var (
	// ErrNotSupported means enforcement cannot run here (not Linux, or a
	// kernel without what the programs need).
	ErrNotSupported = errors.New("ebpf policy enforcement not supported")

	// ErrInvalidOptions means Options are incomplete or wrong.
	ErrInvalidOptions = errors.New("invalid options")

	// ErrInvalidEndpoint means an EndpointKey lacks its ifindex or has an
	// address the datapath cannot use.
	ErrInvalidEndpoint = errors.New("invalid endpoint")

	// ErrInvalidTable means bytes given as a table's kernel form are not
	// one this build wrote (EncodeTable): damaged, or another version's.
	ErrInvalidTable = errors.New("invalid policy table")

	// ErrTooManyEndpoints means the node's maps have no room for another
	// endpoint's table or hook record.
	ErrTooManyEndpoints = errors.New("too many policy endpoints")
)
