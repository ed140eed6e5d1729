package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// prefixList is "veni ipam list -o json" with what prefix mode adds.
type prefixList struct {
	ENIs []struct {
		ID       string         `json:"id"`
		Prefixes []netip.Prefix `json:"prefixes"`
	} `json:"enis"`
	IPs []struct {
		Addr   netip.Addr   `json:"addr"`
		State  string       `json:"state"`
		Prefix netip.Prefix `json:"prefix"`
	} `json:"ips"`
	Allocations []struct {
		IP string `json:"ip"`
	} `json:"allocations"`
	Pool struct {
		Mode string `json:"mode"`
	} `json:"pool"`
}

func (c *cluster) prefixList(tb testing.TB, node string) prefixList {
	tb.Helper()
	out := c.mustRun("sim", "exec", node, "--", c.bin, "ipam", "list", "-o", "json", "--config", c.nodes[node].config)
	var l prefixList
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		tb.Fatalf("ipam list on %s: %v\n%s", node, err, out)
	}
	return l
}

func (l prefixList) prefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, e := range l.ENIs {
		out = append(out, e.Prefixes...)
	}
	return out
}

// setNodeConfig rewrites fields of a node's veni.json, which the plugin
// reads on every call.
func (c *cluster) setNodeConfig(tb testing.TB, node string, fields map[string]any) {
	tb.Helper()
	path := c.nodes[node].config
	raw, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	cfg := make(map[string]any)
	if err := json.Unmarshal(raw, &cfg); err != nil {
		tb.Fatal(err)
	}
	for k, v := range fields {
		cfg[k] = v
	}
	raw, err = json.Marshal(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		tb.Fatal(err)
	}
}

// restartDaemon kills node's daemon (SIGKILL) and waits for the sim's
// supervisor to start it again, reading the node's veni.json anew.
func (c *cluster) restartDaemon(tb testing.TB, node string) {
	tb.Helper()
	daemonOf := func() []int {
		return findProcs(func(_ int, cmdline, _ []byte) bool {
			return bytes.Contains(cmdline, []byte("daemon\x00--config\x00"+c.nodes[node].config))
		})
	}
	old := daemonOf()
	if len(old) != 1 {
		tb.Fatalf("want one daemon of %s, found %v", node, old)
	}
	if err := syscall.Kill(old[0], syscall.SIGKILL); err != nil {
		tb.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if now := daemonOf(); len(now) == 1 && now[0] != old[0] {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s's daemon not restarted (had %v, now %v)", node, old, daemonOf())
		}
	}
}

// addPods adds n pods named prefix0… on node in parallel and fails the test
// on any error.
func (c *cluster) addPods(tb testing.TB, ctx context.Context, node, prefix string, n int) []testPod {
	tb.Helper()
	var (
		mu   sync.Mutex
		all  []testPod
		errs []string
		wg   sync.WaitGroup
	)
	for i := range n {
		p := c.newPod(tb, node, fmt.Sprintf("%s%d", prefix, i))
		wg.Go(func() {
			tp, _, err := c.add(ctx, node, p)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err.Error())
				return
			}
			all = append(all, tp)
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		tb.Fatalf("%d ADDs on %s failed:\n%s", len(errs), node, summarize(errs, 10))
	}
	return all
}

// Ensure a prefix-mode node (enable_ip_prefix) fills past one /28 with 20
// pods whose addresses all lie in prefixes delegated to its ENI, in a
// handful of cloud calls; the pods reach each other and a pod on a second
// prefix-mode node through the VPC; "veni ipam verify" holds; after every
// DEL the daemon gives the idle prefixes back; and the node then refuses
// to be switched to IP mode.
func TestCNI_Prefix_FillPastOnePrefixAndRelease(t *testing.T) {
	const pods = 20
	c := mustCluster(t, "--nodes", "2", "--min-pool-size", "0", "--max-pool-size", "0",
		"--daemon-sync-interval", "1s",
		"--node-config", "enable_ip_prefix=true",
		"--node-config", "idle_ip_reclaim_after=1s", "--node-config", "idle_ip_reclaim_interval=1s")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	before := c.cloudCalls(t)
	all := c.addPods(t, ctx, "node-1", "p", pods)
	all = append(all, c.addPods(t, ctx, "node-2", "q", 2)...)
	after := c.cloudCalls(t)
	assigns := after["AssignPrivateIpAddresses"] - before["AssignPrivateIpAddresses"]
	t.Logf("22 pods on 2 nodes: AssignPrivateIpAddresses %d, CreateNetworkInterface %d",
		assigns, after["CreateNetworkInterface"]-before["CreateNetworkInterface"])

	l := c.prefixList(t, "node-1")
	pfx := l.prefixes()
	if len(pfx) < 2 {
		t.Fatalf("node-1 holds prefixes %v for %d pods, want at least 2 /28s", pfx, pods)
	}
	if l.Pool.Mode != "prefix" {
		t.Errorf("store mode %q, want prefix", l.Pool.Mode)
	}
	seen := make(map[netip.Addr]string)
	for _, p := range all {
		if other, dup := seen[p.ip]; dup {
			t.Fatalf("address %s given to %s and %s", p.ip, other, p.pod.Name)
		}
		seen[p.ip] = p.pod.Name
		if p.node != "node-1" {
			continue
		}
		in := false
		for _, q := range pfx {
			in = in || q.Contains(p.ip)
		}
		if !in {
			t.Errorf("pod %s got %s, in none of node-1's prefixes %v", p.pod.Name, p.ip, pfx)
		}
	}
	for _, ip := range l.IPs {
		if !ip.Prefix.IsValid() {
			t.Errorf("address %s is a secondary IP on a prefix-mode node", ip.Addr)
		}
	}
	c.mustVerify(t, "node-1")
	c.mustVerify(t, "node-2")

	if fails := probeAll(ctx, all); len(fails) > 0 {
		t.Fatalf("%d of %d pod pairs cannot connect:\n%s", len(fails), len(all)*(len(all)-1), summarize(fails, 10))
	}

	for _, p := range all {
		if _, err := c.nodes[p.node].rt.Del(ctx, p.pod); err != nil {
			t.Fatalf("DEL %s: %v", p.pod.Name, err)
		}
	}
	// max_pool_size 0, idle after 1s: every prefix goes back.
	deadline := time.Now().Add(60 * time.Second)
	for {
		l := c.prefixList(t, "node-1")
		if len(l.Allocations) == 0 && len(l.prefixes()) == 0 && len(l.IPs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node-1 still holds prefixes %v, %d addresses, %d allocations after every DEL", l.prefixes(), len(l.IPs), len(l.Allocations))
		}
		time.Sleep(500 * time.Millisecond)
	}
	c.mustVerify(t, "node-1")
	released := c.cloudCalls(t)["UnassignPrivateIpAddresses"] - after["UnassignPrivateIpAddresses"]
	t.Logf("released back in %d UnassignPrivateIpAddresses calls (and ENI deletion)", released)

	// The node is a prefix-mode node: an ADD configured for IP mode is
	// refused, saying what to do.
	c.setNodeConfig(t, "node-1", map[string]any{"enable_ip_prefix": false})
	_, _, err := c.add(ctx, "node-1", c.newPod(t, "node-1", "ipmode"))
	if err == nil || !strings.Contains(err.Error(), "PrefixModeImmutable") || !strings.Contains(err.Error(), "store") {
		t.Fatalf("ADD in ip mode on a prefix-mode node: %v, want a refusal naming PrefixModeImmutable and the store", err)
	}
	t.Logf("refused: %v", err)
}

// Ensure a prefix-mode node and an IP-mode node give their pods addresses
// in their own unit and the pods talk to each other both ways across the
// VPC. The sim writes one veni.json for every node: node-2's is rewritten
// before its first ADD and its daemon killed, so that the sim's supervisor
// restarts it in IP mode (a store that never held an address takes either
// mode).
func TestCNI_Prefix_MixedNodes(t *testing.T) {
	c := mustCluster(t, "--nodes", "2", "--min-pool-size", "0", "--max-pool-size", "5",
		"--daemon-sync-interval", "1s", "--node-config", "enable_ip_prefix=true")
	c.setNodeConfig(t, "node-2", map[string]any{"enable_ip_prefix": false})
	c.restartDaemon(t, "node-2")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	all := c.addPods(t, ctx, "node-1", "p", 3)
	all = append(all, c.addPods(t, ctx, "node-2", "q", 3)...)

	l1, l2 := c.prefixList(t, "node-1"), c.prefixList(t, "node-2")
	if len(l1.prefixes()) == 0 || l1.Pool.Mode != "prefix" {
		t.Errorf("node-1: prefixes %v, mode %q; want prefix mode", l1.prefixes(), l1.Pool.Mode)
	}
	if len(l2.prefixes()) != 0 || l2.Pool.Mode != "ip" {
		t.Errorf("node-2: prefixes %v, mode %q; want ip mode", l2.prefixes(), l2.Pool.Mode)
	}
	c.mustVerify(t, "node-1")
	c.mustVerify(t, "node-2")
	if fails := probeAll(ctx, all); len(fails) > 0 {
		t.Fatalf("%d of %d pod pairs cannot connect:\n%s", len(fails), len(all)*(len(all)-1), summarize(fails, 10))
	}
	for _, p := range all {
		if _, err := c.nodes[p.node].rt.Del(ctx, p.pod); err != nil {
			t.Fatalf("DEL %s: %v", p.pod.Name, err)
		}
	}
	c.mustVerify(t, "node-1")
	c.mustVerify(t, "node-2")
}
