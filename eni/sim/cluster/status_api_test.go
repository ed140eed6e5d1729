package cluster

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/veni-cni/veni/eni/sim"
)

// Ensure status shows each action's budget, this minute's calls, the
// totals with throttles over quota apart, what is blocked, and the recent
// minutes.
func TestPrintAPI_Throttling(t *testing.T) {
	now := time.Date(2026, 3, 1, 10, 1, 20, 0, time.UTC)
	min0, min1 := now.Truncate(time.Minute).Add(-time.Minute), now.Truncate(time.Minute)
	snap := sim.Snapshot{
		Calls: map[string]sim.ActionStats{
			"AssignPrivateIpAddresses":  {Calls: 450, Throttled: 52, OverQuota: 50},
			"DescribeNetworkInterfaces": {Calls: 30},
		},
		Throttling: sim.ThrottlingState{
			Quotas:  sim.DefaultQuotas(),
			Blocked: map[string]time.Time{"AssignPrivateIpAddresses": min1.Add(time.Minute)},
			Windows: []sim.QuotaWindow{
				{Start: min0, Calls: map[string]int{"AssignPrivateIpAddresses": 40, "DescribeNetworkInterfaces": 20}},
				{Start: min1, Calls: map[string]int{"AssignPrivateIpAddresses": 410, "DescribeNetworkInterfaces": 10}, Throttled: map[string]int{"AssignPrivateIpAddresses": 10}},
			},
		},
	}
	var out bytes.Buffer
	printAPI(&out, snap, now)
	got := out.String()
	for _, want := range []string{
		"QUOTA/min", "THIS MIN",
		"AssignPrivateIpAddresses    400        410",
		"450    52         50",
		"DescribeVSwitches", // a budget without calls yet
		"(account)",
		"throttled: AssignPrivateIpAddresses refused until 10:02:00Z (40s left)",
		"10:00:00Z  60 calls, 0 throttled  AssignPrivateIpAddresses 40, DescribeNetworkInterfaces 20",
		"10:01:00Z  420 calls, 10 throttled  AssignPrivateIpAddresses 410 (10 throttled)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("status lacks %q:\n%s", want, got)
		}
	}

	out.Reset()
	printAPI(&out, sim.Snapshot{}, now)
	if !strings.Contains(out.String(), "api quotas: off") {
		t.Errorf("no quotas not said:\n%s", out.String())
	}
}
