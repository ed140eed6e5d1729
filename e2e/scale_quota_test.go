package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// The account's API quotas seen from a node: once veni spent an action's
// budget, its calls are refused with Throttling.User until the window
// ends, and sim quota and sim status say so.
func TestSim_Quota_ThrottlesVeni(t *testing.T) {
	// Windows start on multiples of their length since the epoch, as
	// Alibaba's minutes do: a window that ended during the test would let
	// the third call through (after veni waited for it). A day's window,
	// and not its last minutes.
	const window = 24 * time.Hour
	if left := window - time.Duration(time.Now().UnixNano()%int64(window)); left < 5*time.Minute {
		t.Logf("waiting %s for the next window", left.Round(time.Second))
		time.Sleep(left + time.Second)
	}
	s := mustSim(t)
	s.mustRun("sim", "up", "--nodes", "1", "--daemons=false", "--api-quota-window", window.String())
	out := s.mustRun("sim", "quota", "DescribeNetworkInterfaces=2")
	if !strings.Contains(out, "per "+window.String()+" window") || !strings.Contains(out, "DescribeNetworkInterfaces   2") {
		t.Fatalf("sim quota:\n%s", out)
	}
	var st struct {
		State struct {
			APIEndpoint string `json:"apiEndpoint"`
			Region      string `json:"region"`
			Credentials string `json:"credentials"`
		} `json:"state"`
	}
	if err := json.Unmarshal([]byte(s.mustRun("sim", "status", "-o", "json")), &st); err != nil {
		t.Fatal(err)
	}
	list := []string{"sim", "exec", "node-1", "--", s.bin, "eni", "list",
		"--endpoint", strings.TrimPrefix(st.State.APIEndpoint, "http://"), "--scheme", "http",
		"--region", st.State.Region, "--credentials", st.State.Credentials}
	for range 2 {
		s.mustRun(list...)
	}
	out, err := s.run(list...)
	if err == nil || !strings.Contains(out, "Throttling.User") {
		t.Fatalf("a third call within the window: err %v\n%s", err, out)
	}
	out = s.mustRun("sim", "quota")
	if !strings.Contains(out, "until ") {
		t.Fatalf("sim quota does not say the action is refused:\n%s", out)
	}
	out = s.mustRun("sim", "status")
	if !strings.Contains(out, "throttled: DescribeNetworkInterfaces refused until") {
		t.Fatalf("sim status does not say the action is refused:\n%s", out)
	}
}
