package fabric

import "errors"

// Errors returned by Fabric and its helpers; match them with errors.Is.
var (
	// ErrExists means a namespace of this sim name already exists: a sim
	// with that name is running or crashed without cleanup (Cleanup, or
	// "veni sim down", removes it).
	ErrExists = errors.New("sim fabric already exists")

	// ErrUnknownInstance means an ENI was wired for an instance that has no
	// node (AddNode was not called for it).
	ErrUnknownInstance = errors.New("unknown instance")

	// ErrUnknownTrunk means a member was attached through a trunk ENI the
	// fabric has not attached (AttachENI with Trunk set).
	ErrUnknownTrunk = errors.New("unknown trunk eni")

	// ErrClosed means the fabric was torn down.
	ErrClosed = errors.New("fabric closed")

	// ErrNotSupported means the platform has no network namespaces.
	ErrNotSupported = errors.New("sim fabric needs linux network namespaces")
)
