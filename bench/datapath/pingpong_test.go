package main

import (
	"context"
	"testing"
	"time"
)

func TestPercentiles(t *testing.T) {
	v := make([]float64, 100)
	for i := range v {
		v[i] = float64(100 - i) // 100..1, unsorted
	}
	if got := percentiles(v); got.P50 != 50 || got.P99 != 99 {
		t.Errorf("percentiles(1..100) = %+v, want p50 50, p99 99", got)
	}
	if got := percentiles([]float64{7}); got.P50 != 7 || got.P99 != 7 {
		t.Errorf("percentiles([7]) = %+v", got)
	}
}

// Over loopback (IPv6 if the machine has it, the point of the tool), a
// run reports round trips, ordered.
func TestPingpong_Loopback(t *testing.T) {
	s, err := listenPingpong("[::1]:0")
	if err != nil {
		s, err = listenPingpong("127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	lat, err := runPingpong(context.Background(), s.ln.Addr().String(), 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if lat.P50 <= 0 || lat.P99 < lat.P50 {
		t.Errorf("latency %+v, want 0 < p50 <= p99", lat)
	}
}
