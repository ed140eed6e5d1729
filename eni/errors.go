package eni

import (
	"errors"
	"fmt"
	"time"
)

// These errors classify what the cloud answered. Callers branch on them with
// errors.Is; an *APIError keeps the original code and request id.
var (
	// ErrVSwitchExhausted means the vSwitch has no free address
	// (InvalidVSwitchId.IpNotEnough). Retrying soon will not help: pick
	// another vSwitch or back off.
	ErrVSwitchExhausted = errors.New("vswitch has no free ip address")

	// ErrQuotaExceeded means an ENI or address quota of the instance or
	// account is reached (EniPerInstanceLimitExceeded,
	// QuotaExceeded.PrivateIpAddress, ...).
	ErrQuotaExceeded = errors.New("quota exceeded")

	// ErrNotFound means the named ENI, instance or vSwitch does not exist.
	ErrNotFound = errors.New("not found")

	// ErrInvalidParameter means the request itself is wrong and will fail
	// again unchanged.
	ErrInvalidParameter = errors.New("invalid parameter")

	// ErrIPv6Unsupported means IPv6 cannot be had there: the vSwitch does
	// not have IPv6 turned on, or the instance type has no IPv6.
	ErrIPv6Unsupported = errors.New("ipv6 not supported")

	// ErrThrottled means the API rate limit was hit and retries ran out.
	ErrThrottled = errors.New("throttled")

	// ErrInvalidState means the resource is in a state that does not allow
	// the operation (attaching an InUse ENI, deleting an attached one).
	ErrInvalidState = errors.New("resource in wrong state")

	// ErrAuth means the credentials were rejected.
	ErrAuth = errors.New("authentication failed")

	// ErrZoneMismatch means an ENI and the instance it is to be attached
	// to are in different zones (InvalidOperation.AvailabilityZoneMismatch):
	// an ENI never leaves its zone.
	ErrZoneMismatch = errors.New("eni and instance in different zones")

	// ErrUnreachable means the request never got an answer from the cloud
	// API: connection refused or reset, DNS failure, TLS failure or a
	// timeout. A later try may succeed.
	ErrUnreachable = errors.New("cloud API unreachable")
)

// These errors are about credentials, before any request is signed.
var (
	// ErrNoCredentials means this process has no credentials it may use:
	// none configured, none readable, or the instance RAM role is not
	// available. The message says what was tried.
	ErrNoCredentials = errors.New("no cloud credentials")

	// ErrInsecureCredentials means a file holding credentials can be read
	// or written by group or others; it is refused until it is made
	// private (chmod 600).
	ErrInsecureCredentials = errors.New("credentials readable by others")
)

// APIError is an error answer from the OpenAPI. It matches the sentinel its
// code maps to (see Kind).
type APIError struct {
	Action     string
	HTTPStatus int
	Code       string
	Message    string
	RequestID  string
	Kind       error // one of the sentinels above, or nil when unclassified
	// RetryAfter is how long the API said its throttled window stays
	// closed (TimeLeft of the x-ratelimit-user-api or x-ratelimit-user
	// header); zero when it did not say.
	RetryAfter time.Duration
}

// Error is the action, code, message and request id. The message has been
// scrubbed of anything credential-like before the APIError was made.
func (e *APIError) Error() string {
	return fmt.Sprintf("%s: %s: %s (request id %s)", e.Action, e.Code, e.Message, e.RequestID)
}

// Is reports whether target is the sentinel this error's code maps to.
func (e *APIError) Is(target error) bool {
	return e.Kind != nil && target == e.Kind
}
