package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// callsRow is one line of the cloud-calls figure.
type callsRow struct {
	Stack    string         `json:"stack"` // ip_stack: ipv4, dual, ipv6
	Mode     string         `json:"mode"`
	MaxPool  int            `json:"maxPoolSize"`
	Pods     int            `json:"pods"`
	Calls    int            `json:"calls"`    // every OpenAPI action, daemon's included
	ByAction map[string]int `json:"byAction"` // the non-zero ones
	Per100   float64        `json:"callsPer100Pods"`
}

// Ensure prefix mode needs far fewer cloud calls per pod than IP mode once
// an ENI is attached (issue 9's goal: at most 2 per 100 pods), and report
// both: one node (ecs.g7.4xlarge, 29 addresses or /28s per ENI) with its
// daemon, one pod to attach the ENI, then 100 pods added ten at a time,
// counting every OpenAPI call the sim served meanwhile. max_pool_size 5 is
// Terway's default; 64 is a pool sized for bursts. VENI_BENCH_CALLS_REPORT
// names a file for the rows as JSON (make bench). VENI_BENCH_CALLS_IPV6=1
// (make bench, not CI: six more sims) adds the rows of IP mode with
// ip_stack dual and ipv6, whose IPv6 are single addresses, and of prefix
// mode with ip_stack dual and ipv6 (one /80 per ENI, delegated with the
// ENI; an IPv6-only ENI carries its IPv6 quota of pods).
func TestCNI_Prefix_CloudCallsPer100Pods(t *testing.T) {
	const pods = 100
	var rows []callsRow
	cases := []struct {
		stack   string
		prefix  bool
		maxPool int
	}{{"ipv4", false, 5}, {"ipv4", true, 5}, {"ipv4", false, 64}, {"ipv4", true, 64}}
	if os.Getenv("VENI_BENCH_CALLS_IPV6") == "1" {
		cases = append(cases, []struct {
			stack   string
			prefix  bool
			maxPool int
		}{{"dual", false, 5}, {"dual", false, 64}, {"ipv6", false, 5}, {"ipv6", false, 64}, {"dual", true, 5}, {"dual", true, 64}, {"ipv6", true, 5}, {"ipv6", true, 64}}...)
	}
	for _, tc := range cases {
		mode := map[bool]string{false: "ip", true: "prefix"}[tc.prefix]
		t.Run(fmt.Sprintf("%s/%s/max_pool_size=%d", tc.stack, mode, tc.maxPool), func(t *testing.T) {
			c := mustCluster(t, "--nodes", "1", "--instance-type", "ecs.g7.4xlarge",
				"--vswitches", "vsw-sim-a=172.30.16.0/20+fd00:ac1e:10::/64",
				"--min-pool-size", "0", "--max-pool-size", fmt.Sprint(tc.maxPool),
				"--daemon-sync-interval", "1s",
				"--node-config", fmt.Sprintf("enable_ip_prefix=%t", tc.prefix),
				"--node-config", "ip_stack="+tc.stack)
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			c.addPods(t, ctx, "node-1", "first", 1) // attaches the ENI
			before := c.cloudCalls(t)
			var (
				wg   sync.WaitGroup
				mu   sync.Mutex
				errs []string
				sem  = make(chan struct{}, 10)
			)
			for i := range pods {
				p := c.newPod(t, "node-1", fmt.Sprintf("p%d", i))
				wg.Go(func() {
					sem <- struct{}{}
					defer func() { <-sem }()
					if _, _, err := c.add(ctx, "node-1", p); err != nil {
						mu.Lock()
						errs = append(errs, err.Error())
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			if len(errs) > 0 {
				t.Fatalf("%d ADDs failed:\n%s", len(errs), summarize(errs, 5))
			}
			after := c.cloudCalls(t)
			row := callsRow{Stack: tc.stack, Mode: mode, MaxPool: tc.maxPool, Pods: pods, ByAction: make(map[string]int)}
			for action, n := range after {
				if d := n - before[action]; d > 0 {
					row.ByAction[action] = d
					row.Calls += d
				}
			}
			row.Per100 = float64(row.Calls) * 100 / pods
			c.mustVerify(t, "node-1")
			rows = append(rows, row)
		})
	}
	var b strings.Builder
	fmt.Fprintf(&b, "cloud calls per 100 pods once an ENI is attached (1 node, ecs.g7.4xlarge, daemon on):\n")
	fmt.Fprintf(&b, "%-6s %-7s %-14s %6s  %s\n", "stack", "mode", "max_pool_size", "calls", "by action")
	for _, r := range rows {
		var acts []string
		for a, n := range r.ByAction {
			acts = append(acts, fmt.Sprintf("%s=%d", a, n))
		}
		sort.Strings(acts)
		fmt.Fprintf(&b, "%-6s %-7s %-14d %6.0f  %s\n", r.Stack, r.Mode, r.MaxPool, r.Per100, strings.Join(acts, " "))
	}
	t.Log("\n" + b.String())
	if path := os.Getenv("VENI_BENCH_CALLS_REPORT"); path != "" {
		raw, _ := json.MarshalIndent(rows, "", "  ")
		if err := os.WriteFile(path, raw, 0o644); err != nil {
			t.Error(err)
		}
	}
	for _, r := range rows {
		switch {
		case r.Mode == "prefix" && r.Stack == "ipv6":
			// An IPv6-only ENI carries its IPv6 quota of pods, not 16
			// per slot: new ENIs are the cost, but no pod costs an
			// assign call, as each ENI brings its /80.
			for a, n := range r.ByAction {
				if strings.HasPrefix(a, "Assign") {
					t.Errorf("ipv6-only prefix mode: %d %s calls, want none (the /80 comes with its ENI)", n, a)
				}
			}
		case r.Mode == "prefix" && r.MaxPool >= 64 && r.Per100 > 2:
			t.Errorf("prefix mode with a burst-sized pool: %.0f calls per 100 pods, goal <= 2", r.Per100)
		}
	}
}
