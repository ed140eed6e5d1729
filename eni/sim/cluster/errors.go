package cluster

import (
	"errors"
	"fmt"
	"net/http"
)

// Errors about the sim directory and its server; match them with errors.Is.
var (
	// ErrNotRunning means the sim directory has no live server.
	ErrNotRunning = errors.New("no sim running")

	// ErrRunning means a server already owns the sim directory or name.
	ErrRunning = errors.New("sim already running")

	// ErrStateVersion means state.json was written by a veni whose state
	// format this one does not read: an older or newer server runs there.
	ErrStateVersion = errors.New("sim state written by another veni version")
)

// Errors about the nodes and pods of a running sim.
var (
	// ErrNoNode means no node of the sim has that name, instance id or
	// namespace.
	ErrNoNode = errors.New("no such node")

	// ErrPodExists means the node already has a pod of that namespace and
	// name.
	ErrPodExists = errors.New("pod already exists")

	// ErrNoPod means the node has no pod of that namespace and name.
	ErrNoPod = errors.New("no such pod")

	// ErrConnectivity means some pod pairs could not exchange a TCP line.
	ErrConnectivity = errors.New("some pod pairs cannot connect")
)

// ErrControl marks an answer of the control endpoint other than 200;
// ControlError carries it.
var ErrControl = errors.New("sim control refused")

// ControlError is a non-200 answer of the control endpoint.
type ControlError struct {
	Method, Path string
	Status       int    // HTTP status code
	Message      string // the endpoint's one-line reason
}

func (e *ControlError) Error() string {
	return fmt.Sprintf("sim control %s %s: %d %s: %s", e.Method, e.Path, e.Status, http.StatusText(e.Status), e.Message)
}

// Is makes a ControlError match ErrControl.
func (e *ControlError) Is(target error) bool { return target == ErrControl }
