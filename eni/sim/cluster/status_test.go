package cluster

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestDaemonWord(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		d    *ProcessStatus
		want string
	}{
		{"no daemon", nil, "-"},
		{"running", &ProcessStatus{PID: 12, Alive: true}, "pid 12"},
		{"restarted once", &ProcessStatus{PID: 12, Alive: true, Restarts: 1}, "pid 12, 1 restart"},
		{"waiting", &ProcessStatus{LastExit: "exit status 1", NextStart: now.Add(3940 * time.Millisecond), Restarts: 4}, "down, restart in 3.9s (exit status 1), 4 restarts"},
		{"restart overdue", &ProcessStatus{LastExit: "signal: killed", NextStart: now.Add(-time.Second)}, "down, restart in 0s (signal: killed)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := daemonWord(tc.d, now); got != tc.want {
				t.Fatalf("daemonWord = %q, want %q", got, tc.want)
			}
		})
	}
}

// Ensure status lists each node's daemon, health and datapath, and the
// problems veni reported under the table.
func TestPrintStatus_Nodes(t *testing.T) {
	st := testState(t.TempDir())
	live := Live{Nodes: []NodeStatus{
		{Node: st.Nodes[0], Daemon: &ProcessStatus{PID: 77, Alive: true}, Health: &NodeHealth{Healthy: true, Datapath: "ebpf"}},
		{Node: st.Nodes[1], Daemon: &ProcessStatus{LastExit: "exit status 1"}, Health: &NodeHealth{Datapath: "plain", Problems: []string{"no veni daemon runs"}}},
	}}
	var out bytes.Buffer
	printStatus(&out, st, live, time.Now())
	for _, want := range []string{"DAEMON", "HEALTH", "DATAPATH", "pid 77", "healthy", "ebpf", "down (exit status 1)", "1 problem", "plain", "node-2: no veni daemon runs"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, out.String())
		}
	}
}
