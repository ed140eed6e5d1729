package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// Ensure 30 pods on each of 2 nodes, added in parallel through libcni, get
// distinct VPC addresses, reach each other over TCP on the same node and
// across the VPC, and that deleting them all leaves the store without
// allocations, the pool back within [min, max] and every invariant holding.
func TestCNI_TwoNodesThirtyPods(t *testing.T) {
	const perNode, minPool, maxPool = 30, 2, 5
	c := mustCluster(t, "--nodes", "2",
		"--min-pool-size", fmt.Sprint(minPool), "--max-pool-size", fmt.Sprint(maxPool),
		"--daemon-sync-interval", "1s",
		"--node-config", "idle_ip_reclaim_after=1s", "--node-config", "idle_ip_reclaim_interval=1s", "--node-config", "idle_ip_reclaim_batch_size=50")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	var (
		mu      sync.Mutex
		all     []testPod
		retries int
		errs    []string
		wg      sync.WaitGroup
	)
	for _, node := range []string{"node-1", "node-2"} {
		for i := range perNode {
			p := c.newPod(t, node, fmt.Sprintf("p%d", i))
			wg.Add(1)
			go func() {
				defer wg.Done()
				tp, r, err := c.add(ctx, node, p)
				mu.Lock()
				defer mu.Unlock()
				retries += r
				if err != nil {
					errs = append(errs, err.Error())
					return
				}
				all = append(all, tp)
			}()
		}
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d ADDs failed:\n%s", len(errs), summarize(errs, 10))
	}
	t.Logf("%d pods added (%d try-again-later retries)", len(all), retries)
	seen := make(map[string]string)
	for _, p := range all {
		if other, dup := seen[p.ip.String()]; dup {
			t.Fatalf("address %s given to %s and %s", p.ip, other, p.pod.Name+"@"+p.node)
		}
		seen[p.ip.String()] = p.pod.Name + "@" + p.node
	}
	for _, node := range []string{"node-1", "node-2"} {
		c.mustVerify(t, node)
	}

	if fails := probeAll(ctx, all); len(fails) > 0 {
		t.Fatalf("%d of %d pod pairs cannot connect:\n%s", len(fails), len(all)*(len(all)-1), summarize(fails, 10))
	}

	for _, p := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.nodes[p.node].rt.Del(ctx, p.pod); err != nil {
				mu.Lock()
				errs = append(errs, err.Error())
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d DELs failed:\n%s", len(errs), summarize(errs, 10))
	}
	for _, node := range []string{"node-1", "node-2"} {
		if l := c.ipamList(t, node); len(l.Allocations) != 0 {
			t.Fatalf("%s: %d allocations left after DEL of every pod: %+v", node, len(l.Allocations), l.Allocations)
		}
		// The daemon reclaims idle addresses above max_pool_size after
		// idle_ip_reclaim_after; give it a few passes.
		deadline := time.Now().Add(60 * time.Second)
		for {
			l := c.ipamList(t, node)
			if free := l.free(); free >= minPool && free <= maxPool {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d idle addresses after reclaim, want within [%d, %d]", node, l.free(), minPool, maxPool)
			}
			time.Sleep(500 * time.Millisecond)
		}
		c.mustVerify(t, node)
	}
}

// Ensure DEL succeeds when repeated, and when the second one comes without
// a netns as containerd sends it on RemovePodSandbox, leaving nothing.
func TestCNI_Del_Twice(t *testing.T) {
	c := mustCluster(t, "--nodes", "1", "--min-pool-size", "1", "--max-pool-size", "3")
	ctx := context.Background()
	p := c.newPod(t, "node-1", "twice")
	if _, _, err := c.add(ctx, "node-1", p); err != nil {
		t.Fatal(err)
	}
	rt := c.nodes["node-1"].rt
	if _, err := rt.Del(ctx, p); err != nil {
		t.Fatalf("first DEL: %v", err)
	}
	noNetNS := p
	noNetNS.NetNS = ""
	if _, err := rt.Del(ctx, noNetNS); err != nil {
		t.Fatalf("second DEL without netns: %v", err)
	}
	if _, err := rt.Del(ctx, p); err != nil {
		t.Fatalf("third DEL: %v", err)
	}
	if l := c.ipamList(t, "node-1"); len(l.Allocations) != 0 {
		t.Fatalf("allocations left: %+v", l.Allocations)
	}
	c.mustVerify(t, "node-1")
}

// Ensure a DEL without netns after an ADD whose first DEL never came (the
// runtime timed out) still frees the address and removes the host side.
func TestCNI_Del_WithoutNetNSOnly(t *testing.T) {
	c := mustCluster(t, "--nodes", "1", "--min-pool-size", "1", "--max-pool-size", "3")
	ctx := context.Background()
	p := c.newPod(t, "node-1", "orphan")
	if _, _, err := c.add(ctx, "node-1", p); err != nil {
		t.Fatal(err)
	}
	noNetNS := p
	noNetNS.NetNS = ""
	if _, err := c.nodes["node-1"].rt.Del(ctx, noNetNS); err != nil {
		t.Fatalf("DEL without netns: %v", err)
	}
	if l := c.ipamList(t, "node-1"); len(l.Allocations) != 0 {
		t.Fatalf("allocations left: %+v", l.Allocations)
	}
	out := c.mustRun("sim", "exec", "node-1", "--", "ip", "-br", "link")
	if hostVeths(out) != 0 {
		t.Fatalf("host veth left behind:\n%s", out)
	}
	c.mustVerify(t, "node-1")
}

// Ensure a second ADD for an attachment that exists fails (the CNI spec
// requires it) and leaves the running pod and its address alone.
func TestCNI_Add_Twice(t *testing.T) {
	c := mustCluster(t, "--nodes", "1", "--min-pool-size", "1", "--max-pool-size", "3")
	ctx := context.Background()
	p := c.newPod(t, "node-1", "dup")
	first, _, err := c.add(ctx, "node-1", p)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.nodes["node-1"].rt.Add(ctx, p); err == nil {
		t.Fatal("second ADD of the same attachment succeeded")
	}
	l := c.ipamList(t, "node-1")
	if len(l.Allocations) != 1 || l.Allocations[0].IP != first.ip.String() || l.Allocations[0].State != "bound" {
		t.Fatalf("after the refused ADD: %+v, want %s still bound", l.Allocations, first.ip)
	}
	if err := c.nodes["node-1"].rt.Check(ctx, p); err != nil {
		t.Fatalf("pod broken by the refused ADD: %v", err)
	}
	c.mustVerify(t, "node-1")
}
