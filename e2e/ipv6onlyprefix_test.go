package e2e

import (
	"context"
	"encoding/json"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// Ensure IPv6-only pods in prefix mode on two nodes each get one address
// of the one /80 delegated to their ENI (no IPv4 in the store, none on the
// ENIs but their primary), reach every other pod over TCP within a node
// and across nodes (the VPC routes the /80s), pass verify, and leave no
// allocation after DEL.
func TestIPv6OnlyPrefix_TwoNodesTCPMatrix(t *testing.T) {
	c := mustCluster(t, "--nodes", "2", "--vswitches", dualVSwitches,
		"--node-config", "ip_stack=ipv6", "--node-config", "enable_ip_prefix=true",
		"--min-pool-size", "2", "--max-pool-size", "6")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)

	var all []testPod
	for _, node := range []string{"node-1", "node-2"} {
		for _, v := range []string{"0.4.0", "1.0.0", ""} {
			all = append(all, c.addIPv6Only(t, ctx, node, v))
		}
	}
	for _, node := range []string{"node-1", "node-2"} {
		out := c.mustRun("sim", "exec", node, "--", c.bin, "ipam", "list", "-o", "json", "--config", c.nodes[node].config)
		var l dualPrefixList
		if err := json.Unmarshal([]byte(out), &l); err != nil {
			t.Fatalf("ipam list on %s: %v\n%s", node, err, out)
		}
		if l.Pool.Mode != "prefix" || l.Pool.Stack != "ipv6" {
			t.Fatalf("%s: pool mode %q stack %q, want prefix and ipv6", node, l.Pool.Mode, l.Pool.Stack)
		}
		eniOf := make(map[netip.Addr]string)
		for _, ip := range l.IPs {
			if !ip.Addr.Is6() || ip.Prefix.Bits() != 80 {
				t.Fatalf("%s: store holds %s (prefix %s), want only addresses of /80s", node, ip.Addr, ip.Prefix)
			}
			eniOf[ip.Addr] = ip.ENIID
		}
		for _, e := range l.ENIs {
			if len(e.Prefixes) != 0 {
				t.Fatalf("%s: eni %s holds /28s %v on an IPv6-only node", node, e.ID, e.Prefixes)
			}
		}
		for _, p := range all {
			if p.node != node {
				continue
			}
			e := eniOf[p.ip]
			i := slices.IndexFunc(l.ENIs, func(x dualPrefixENI) bool { return x.ID == e })
			if e == "" || i < 0 || len(l.ENIs[i].IPv6Prefixes) != 1 || !l.ENIs[i].IPv6Prefixes[0].Contains(p.ip) {
				t.Fatalf("%s: %s not in the one /80 of its eni %q: %+v", p.pod.Name, p.ip, e, l.ENIs)
			}
		}
	}
	if fails := probeAll(ctx, all); len(fails) > 0 {
		t.Fatalf("ipv6 tcp matrix (within and across nodes): %d failures:\n%s", len(fails), summarize(fails, 10))
	}
	for _, node := range []string{"node-1", "node-2"} {
		c.mustVerify(t, node)
	}
	for _, p := range all {
		if _, err := c.nodes[p.node].rt.Del(ctx, p.pod); err != nil {
			t.Fatalf("del %s: %v", p.pod.Name, err)
		}
	}
	for _, node := range []string{"node-1", "node-2"} {
		if l := c.dualList(t, node); len(l.Allocations) != 0 {
			t.Fatalf("%s: allocations left after DEL: %+v", node, l.Allocations)
		}
		c.mustVerify(t, node)
	}
}
