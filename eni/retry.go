package eni

import (
	"context"
	"math/rand/v2"
	"time"
)

// RetryPolicy is how often and how patiently a call is retried after a
// retryable error (throttling, 5xx, InternalError, network timeout).
type RetryPolicy struct {
	MaxAttempts int           // tries in all, the first included; below 1 means 1
	BaseDelay   time.Duration // mean delay before the second try; doubles per try
	MaxDelay    time.Duration // cap of one delay
}

// DefaultRetryPolicy retries four times over roughly 8 s, about what
// Terway's per-call back-off allows before it gives the pool the error.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{MaxAttempts: 5, BaseDelay: 500 * time.Millisecond, MaxDelay: 8 * time.Second}
}

// Backoff returns the delay after the given failed attempt (1 for the first
// try). It is exponential with "equal jitter": half the step is fixed, half
// random, so that nodes throttled together do not retry together, yet no
// delay collapses to zero. rnd returns a number in [0, 1).
func (p RetryPolicy) Backoff(attempt int, rnd func() float64) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	d := p.BaseDelay
	for i := 1; i < attempt && (p.MaxDelay <= 0 || d < p.MaxDelay); i++ {
		d *= 2
	}
	if p.MaxDelay > 0 && d > p.MaxDelay {
		d = p.MaxDelay
	}
	half := d / 2
	return half + time.Duration(rnd()*float64(d-half))
}

func (p RetryPolicy) attempts() int {
	return max(1, p.MaxAttempts)
}

// sleepCtx waits d or until ctx ends, whichever is first.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// jitter is the default random source of Backoff.
func jitter() float64 { return rand.Float64() }
