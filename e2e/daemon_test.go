package e2e

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Ensure a daemon restart keeps every pod's address and repairs the node:
// with the ENI's routing table lost (as after a network restart) and the
// daemon killed, the restarted daemon rebuilds the table from the store and
// every pod reaches every other again, with the same addresses.
func TestDaemon_RestartRestoresNode(t *testing.T) {
	c := mustCluster(t, "--nodes", "2", "--min-pool-size", "1", "--max-pool-size", "4", "--daemon-sync-interval", "1s")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var all []testPod
	for _, node := range []string{"node-1", "node-2"} {
		for i := range 2 {
			p, _, err := c.add(ctx, node, c.newPod(t, node, fmt.Sprintf("r%d", i)))
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, p)
		}
	}
	// The precondition, not the claim: every pod reaches every other. A
	// miss is retried (and logged: seen once in CI, a first pod of a node
	// unreachable for over 5 s, not reproduced since).
	for try := 1; ; try++ {
		fails := probeAll(ctx, all)
		if len(fails) == 0 {
			break
		}
		if try == 3 {
			t.Fatalf("before the restart, %d tries:\n%s", try, summarize(fails, 5))
		}
		t.Logf("before the restart, try %d:\n%s", try, summarize(fails, 5))
	}

	// Lose node-1's ENI table, then kill its daemon.
	rules := c.mustRun("sim", "exec", "node-1", "--", "ip", "rule")
	table := ""
	for _, l := range strings.Split(rules, "\n") {
		if f := strings.Fields(l); len(f) >= 5 && f[1] == "from" && f[2] != "all" {
			table = f[len(f)-1]
		}
	}
	if table == "" {
		t.Fatalf("no pod rule on node-1:\n%s", rules)
	}
	c.mustRun("sim", "exec", "node-1", "--", "ip", "route", "flush", "table", table)
	if fails := probeAll(ctx, all); len(fails) == 0 {
		t.Fatal("cross-node traffic still flows without the ENI table: the test proves nothing")
	}
	pids := findProcs(func(_ int, cmdline, _ []byte) bool {
		return bytes.Contains(cmdline, []byte("daemon\x00--config\x00"+c.nodes["node-1"].config))
	})
	if len(pids) != 1 {
		t.Fatalf("want one daemon of node-1, found %v", pids)
	}
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(30 * time.Second)
	for {
		fails := probeAll(ctx, all)
		if len(fails) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node-1 not repaired 30s after the daemon restart:\n%s", summarize(fails, 5))
		}
		time.Sleep(500 * time.Millisecond)
	}
	for _, p := range all {
		l := c.ipamList(t, p.node)
		found := false
		for _, a := range l.Allocations {
			found = found || (a.IP == p.ip.String() && a.State == "bound")
		}
		if !found {
			t.Fatalf("%s lost its address %s after the restart: %+v", p.pod.Name, p.ip, l.Allocations)
		}
	}
	c.mustVerify(t, "node-1")
}
