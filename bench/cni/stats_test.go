package main

import (
	"strings"
	"testing"
	"time"
)

func TestPercentile_NearestRank(t *testing.T) {
	ms := func(xs ...int) []time.Duration {
		out := make([]time.Duration, len(xs))
		for i, x := range xs {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // unsorted on purpose
	}
	for _, tc := range []struct {
		name string
		in   []time.Duration
		q    float64
		want time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one", ms(7), 99, 7 * time.Millisecond},
		{"median odd", ms(3, 1, 2), 50, 2 * time.Millisecond},
		{"median even takes lower", ms(4, 1, 3, 2), 50, 2 * time.Millisecond},
		{"p99 of 100", ms(hundred...), 99, 99 * time.Millisecond},
		{"p100 is max", ms(hundred...), 100, 100 * time.Millisecond},
		{"p99 of 10 is max", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := percentile(tc.in, tc.q); got != tc.want {
				t.Fatalf("percentile(%v, %v) = %v, want %v", tc.in, tc.q, got, tc.want)
			}
		})
	}
}

func TestPercentile_DoesNotReorderInput(t *testing.T) {
	in := []time.Duration{3, 1, 2}
	percentile(in, 50)
	if in[0] != 3 || in[1] != 1 || in[2] != 2 {
		t.Fatalf("input reordered: %v", in)
	}
}

func TestTargets_Verdicts(t *testing.T) {
	base := row{system: refBaseline, addP50: 20 * time.Millisecond, delP50: 30 * time.Millisecond, podsPerSec: 100}
	for _, tc := range []struct {
		name       string
		veni       row
		wantMet    int
		wantMissed []string
	}{
		{"all met", row{addP50: 20 * time.Millisecond, delP50: 15 * time.Millisecond, podsPerSec: 150}, 5, nil},
		{"slow add", row{addP50: 21 * time.Millisecond, delP50: 15 * time.Millisecond, podsPerSec: 150}, 3, []string{"ADD p50"}},
		{"low throughput", row{addP50: 10 * time.Millisecond, delP50: 10 * time.Millisecond, podsPerSec: 149}, 4, []string{"pods/s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows := map[int]map[string]row{
				1: {"veni": tc.veni, refBaseline: base},
				8: {"veni": tc.veni, refBaseline: base},
			}
			got := targets(rows)
			if len(got) != 5 {
				t.Fatalf("targets = %q, want 5 lines", got)
			}
			met := 0
			for _, line := range got {
				if strings.HasSuffix(line, ": met") {
					met++
					continue
				}
				found := false
				for _, m := range tc.wantMissed {
					found = found || strings.Contains(line, m)
				}
				if !found {
					t.Errorf("unexpected miss: %q", line)
				}
			}
			if met != tc.wantMet {
				t.Errorf("met %d, want %d: %q", met, tc.wantMet, got)
			}
		})
	}
}

func TestPodsPerSecond_ZeroWall(t *testing.T) {
	if got := podsPerSecond(&samples{add: []time.Duration{1}}); got != 0 {
		t.Fatalf("podsPerSecond with no wall time = %v, want 0", got)
	}
	if got := podsPerSecond(&samples{add: make([]time.Duration, 10), addWall: 2 * time.Second}); got != 5 {
		t.Fatalf("podsPerSecond = %v, want 5", got)
	}
}
