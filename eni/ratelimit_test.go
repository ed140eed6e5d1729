package eni

import (
	"context"
	"fmt"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

func TestPerMinute(t *testing.T) {
	cases := []struct {
		n         int
		perSecond rate.Limit
		burst     int
	}{
		{500, rate.Limit(500.0 / 60), 50},
		{800, rate.Limit(800.0 / 60), 80},
		{6, rate.Limit(0.1), 1},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%d_per_minute", tc.n), func(t *testing.T) {
			got := PerMinute(tc.n)
			if got.PerSecond != tc.perSecond || got.Burst != tc.burst {
				t.Fatalf("PerMinute(%d) = %+v, want %v/s burst %d", tc.n, got, tc.perSecond, tc.burst)
			}
		})
	}
}

func TestLimiters_Get(t *testing.T) {
	l := newLimiters(map[string]RateLimit{ActionAssignPrivateIPAddresses: {PerSecond: 1, Burst: 2}})
	if l.get(ActionAssignPrivateIPAddresses) != l.get(ActionAssignPrivateIPAddresses) {
		t.Fatal("one action got two buckets")
	}
	if got := l.get(ActionAssignPrivateIPAddresses).Burst(); got != 2 {
		t.Fatalf("override burst = %d, want 2", got)
	}
	if got := l.get(ActionCreateNetworkInterface).Limit(); got != DefaultRateLimits()[ActionCreateNetworkInterface].PerSecond {
		t.Fatalf("default create limit = %v, want the node's default", got)
	}
	if got := l.get("SomeOtherAction").Limit(); got != defaultActionLimit.PerSecond {
		t.Fatalf("unknown action limit = %v, want %v", got, defaultActionLimit.PerSecond)
	}
}

// The bucket really holds calls back: with a burst of 2 at 20/s, the third
// and fourth call wait about 50 ms each.
func TestLimiters_Get_Paces(t *testing.T) {
	l := newLimiters(map[string]RateLimit{"A": {PerSecond: 20, Burst: 2}})
	b := l.get("A")
	start := time.Now()
	for range 4 {
		if err := b.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if el := time.Since(start); el < 80*time.Millisecond {
		t.Fatalf("4 calls took %v, want >= ~100ms", el)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	if err := b.Wait(ctx); err == nil {
		t.Fatal("Wait past a short deadline succeeded")
	}
}
