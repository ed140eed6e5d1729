package kube

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
)

// These errors come from configuration.
var (
	// ErrNotInCluster means the process does not run in a pod: the
	// KUBERNETES_SERVICE_HOST/PORT variables or the service account files
	// are missing.
	ErrNotInCluster = errors.New("not running in a kubernetes pod")

	// ErrInvalidConfig means a kubeconfig or Config cannot be used: no
	// server, an unknown context, unreadable credentials.
	ErrInvalidConfig = errors.New("invalid kubernetes client config")
)

// These errors come from watches and informers.
var (
	// ErrWatchClosed means the server ended a watch stream (timeout or
	// connection loss); the caller resumes from the last resourceVersion.
	ErrWatchClosed = errors.New("watch closed")
)

// Status reasons (metav1.StatusReason) this package tests for.
const (
	ReasonNotFound      = "NotFound"
	ReasonAlreadyExists = "AlreadyExists"
	ReasonConflict      = "Conflict"
	ReasonGone          = "Gone"
	ReasonExpired       = "Expired"
	ReasonForbidden     = "Forbidden"
	ReasonUnauthorized  = "Unauthorized"
	ReasonInvalid       = "Invalid"
	ReasonTooManyReqs   = "TooManyRequests"
)

// APIError is a failure reported by the API server, decoded from its
// metav1.Status, together with what was asked: Verb ("get", "list",
// "watch", "create", "update", "patch", "delete") and Resource
// ("pods", "leases.coordination.k8s.io", "nodes/status").
type APIError struct {
	Verb      string // RBAC verb of the request
	Resource  string // resource[/subresource][.group]
	Namespace string // namespace of the request, "" when cluster-wide
	Name      string // object name, "" for list/watch/create
	Status    Status // as sent by the server (Code always set)
}

// Error names the verb and resource, then the server's message, then a
// hint for the failures operators act on (RBAC, authentication).
func (e *APIError) Error() string {
	what := e.Resource
	if e.Name != "" {
		what += " " + Key(e.Namespace, e.Name)
	} else if e.Namespace != "" {
		what += " in namespace " + e.Namespace
	}
	msg := e.Status.Message
	if msg == "" {
		msg = http.StatusText(int(e.Status.Code))
	}
	code := strconv.Itoa(int(e.Status.Code))
	if r := e.Reason(); r != "" {
		code += " " + r
	}
	s := fmt.Sprintf("kube %s %s: %s (%s)", e.Verb, what, msg, code)
	switch {
	case e.Status.Code == http.StatusForbidden:
		s += fmt.Sprintf(" (RBAC: the identity needs verb %q on resource %q)", e.Verb, e.Resource)
	case e.Status.Code == http.StatusUnauthorized:
		s += " (the token or client certificate was rejected: check the kubeconfig or the service account token)"
	}
	return s
}

// Reason returns the status reason, derived from the code when the server
// sent none.
func (e *APIError) Reason() string {
	if e.Status.Reason != "" {
		return e.Status.Reason
	}
	switch e.Status.Code {
	case http.StatusNotFound:
		return ReasonNotFound
	case http.StatusConflict:
		return ReasonConflict
	case http.StatusGone:
		return ReasonGone
	case http.StatusForbidden:
		return ReasonForbidden
	case http.StatusUnauthorized:
		return ReasonUnauthorized
	case http.StatusTooManyRequests:
		return ReasonTooManyReqs
	}
	return ""
}

func apiErrorOf(err error) *APIError {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae
	}
	return nil
}

// IsNotFound reports whether err is an API error with reason NotFound.
func IsNotFound(err error) bool {
	ae := apiErrorOf(err)
	return ae != nil && ae.Reason() == ReasonNotFound
}

// IsAlreadyExists reports whether err is an API error with reason
// AlreadyExists.
func IsAlreadyExists(err error) bool {
	ae := apiErrorOf(err)
	return ae != nil && ae.Reason() == ReasonAlreadyExists
}

// IsConflict reports whether err is an API error with reason Conflict (a
// stale resourceVersion on update).
func IsConflict(err error) bool {
	ae := apiErrorOf(err)
	return ae != nil && ae.Reason() == ReasonConflict
}

// IsGone reports whether err says the requested resourceVersion is too old
// (410 Gone or reason Expired): the caller must list again.
func IsGone(err error) bool {
	ae := apiErrorOf(err)
	if ae == nil {
		return false
	}
	r := ae.Reason()
	return ae.Status.Code == http.StatusGone || r == ReasonGone || r == ReasonExpired
}

// IsForbidden reports whether err is an API error with reason Forbidden
// (RBAC denied the verb).
func IsForbidden(err error) bool {
	ae := apiErrorOf(err)
	return ae != nil && ae.Reason() == ReasonForbidden
}

// IsUnauthorized reports whether err is an API error with reason
// Unauthorized (credentials rejected).
func IsUnauthorized(err error) bool {
	ae := apiErrorOf(err)
	return ae != nil && ae.Reason() == ReasonUnauthorized
}

// IsTooManyRequests reports whether err is a 429 from the server (API
// priority and fairness, or storage still initializing).
func IsTooManyRequests(err error) bool {
	ae := apiErrorOf(err)
	return ae != nil && ae.Reason() == ReasonTooManyReqs
}
