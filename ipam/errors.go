package ipam

import (
	"errors"
	"fmt"
	"time"

	"github.com/veni-cni/veni/store"
)

// These errors come from the allocation path (Reserve, Allocate, Refill).
var (
	// ErrPoolEmpty means no free IP is on a ready ENI right now. Refill
	// (or Allocate, which calls it) grows the pool.
	ErrPoolEmpty = errors.New("no free ip in the node's pool")

	// ErrTryAgainLater means another process is growing the pool and no
	// IP appeared before the deadline. The CNI maps it to error code 11.
	ErrTryAgainLater = errors.New("pool is being refilled, try again later")

	// ErrBackoff means the pool cannot grow because the cloud said a
	// vSwitch is out of addresses or a quota is reached, and veni waits
	// before asking again. The returned error is a *BackoffError.
	ErrBackoff = errors.New("pool growth backed off")

	// ErrPoolExhausted means the node is at its limits: every ENI it may
	// have exists and holds all the IPs it can.
	ErrPoolExhausted = errors.New("node ip capacity exhausted")
)

// BackoffError says why and until when growing the pool is backed off. It
// matches ErrBackoff.
type BackoffError struct {
	Scope   string // a store.PoolState.Backoffs key: "vswitch/vsw-x", "eni-quota", "eni/eni-x"
	Backoff store.Backoff
}

func (e *BackoffError) Error() string {
	return fmt.Sprintf("%s: %s (backing off until %s)", e.Scope, e.Backoff.Reason, e.Backoff.Until.Format(time.RFC3339))
}

// Is reports whether target is ErrBackoff.
func (e *BackoffError) Is(target error) bool { return target == ErrBackoff }
