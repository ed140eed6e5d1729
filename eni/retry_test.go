package eni

import (
	"fmt"
	"testing"
	"time"
)

func TestRetryPolicy_Backoff(t *testing.T) {
	p := RetryPolicy{MaxAttempts: 5, BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second}
	cases := []struct {
		attempt int
		rnd     float64
		want    time.Duration
	}{
		{1, 0, 50 * time.Millisecond},
		{1, 0.999999, 100 * time.Millisecond},
		{2, 0, 100 * time.Millisecond},
		{3, 0.5, 300 * time.Millisecond},
		{4, 0, 400 * time.Millisecond},
		{5, 0, 500 * time.Millisecond}, // capped at MaxDelay: 1s, half fixed
		{60, 0.999999, time.Second},    // no overflow far past the cap
		{0, 0, 50 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("attempt%d_rnd%v", tc.attempt, tc.rnd), func(t *testing.T) {
			got := p.Backoff(tc.attempt, func() float64 { return tc.rnd })
			if d := got - tc.want; d < -time.Microsecond || d > time.Microsecond {
				t.Fatalf("Backoff(%d, %v) = %v, want %v", tc.attempt, tc.rnd, got, tc.want)
			}
		})
	}
}

func TestRetryPolicy_Backoff_Jitter(t *testing.T) {
	p := DefaultRetryPolicy()
	seen := make(map[time.Duration]bool)
	for range 50 {
		d := p.Backoff(3, jitter)
		if d < 1*time.Second || d > 2*time.Second {
			t.Fatalf("Backoff(3) = %v, want within [1s, 2s]", d)
		}
		seen[d] = true
	}
	if len(seen) < 2 {
		t.Fatal("Backoff is not jittered")
	}
}
