package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// dualPrefixList is "veni ipam list -o json" with what dual-stack prefix
// mode adds.
type dualPrefixList struct {
	ENIs []dualPrefixENI `json:"enis"`
	IPs  []struct {
		Addr   netip.Addr   `json:"addr"`
		ENIID  string       `json:"eniID"`
		Prefix netip.Prefix `json:"prefix"`
	} `json:"ips"`
	Pool struct {
		Mode  string `json:"mode"`
		Stack string `json:"stack"`
	} `json:"pool"`
}

type dualPrefixENI struct {
	ID           string         `json:"id"`
	Prefixes     []netip.Prefix `json:"prefixes"`
	IPv6Prefixes []netip.Prefix `json:"ipv6Prefixes"`
}

// Ensure dual-stack pods in prefix mode on two nodes get an IPv4 of a /28
// and an IPv6 of a /80 delegated to the same ENI, reach every other pod
// over TCP on both families, within a node and across nodes (the VPC
// routes the /80s, the nodes reach each other's through the vSwitch
// gateway), pass verify, and give both addresses back on DEL.
func TestDualStackPrefix_TwoNodesTCPMatrix(t *testing.T) {
	c := mustCluster(t, "--nodes", "2", "--vswitches", dualVSwitches, "--datapath", "plain",
		"--node-config", "ip_stack=dual", "--node-config", "enable_ip_prefix=true",
		"--min-pool-size", "2", "--max-pool-size", "6")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)

	var all []dualPod
	for _, node := range []string{"node-1", "node-2"} {
		for i := range 3 {
			all = append(all, c.addDual(t, ctx, node, fmt.Sprintf("dp-%s-%d", node[len(node)-1:], i)))
		}
	}
	for _, node := range []string{"node-1", "node-2"} {
		out := c.mustRun("sim", "exec", node, "--", c.bin, "ipam", "list", "-o", "json", "--config", c.nodes[node].config)
		var l dualPrefixList
		if err := json.Unmarshal([]byte(out), &l); err != nil {
			t.Fatalf("ipam list on %s: %v\n%s", node, err, out)
		}
		if l.Pool.Mode != "prefix" || l.Pool.Stack != "dual" {
			t.Fatalf("%s: pool mode %q stack %q, want prefix and dual", node, l.Pool.Mode, l.Pool.Stack)
		}
		eniOf := make(map[netip.Addr]string)
		for _, ip := range l.IPs {
			eniOf[ip.Addr] = ip.ENIID
		}
		for _, p := range all {
			if p.node != node {
				continue
			}
			e := eniOf[p.ip]
			if e == "" || eniOf[p.ip6] != e {
				t.Fatalf("%s: %s on %q and %s on %q, want one ENI", p.pod.Name, p.ip, e, p.ip6, eniOf[p.ip6])
			}
			i := slices.IndexFunc(l.ENIs, func(x dualPrefixENI) bool { return x.ID == e })
			if i < 0 || len(l.ENIs[i].IPv6Prefixes) != 1 || l.ENIs[i].IPv6Prefixes[0].Bits() != 80 ||
				!l.ENIs[i].IPv6Prefixes[0].Contains(p.ip6) ||
				!slices.ContainsFunc(l.ENIs[i].Prefixes, func(q netip.Prefix) bool { return q.Contains(p.ip) }) {
				t.Fatalf("%s: %s / %s not in the /28s and one /80 of eni %s: %+v", p.pod.Name, p.ip, p.ip6, e, l.ENIs)
			}
		}
	}
	probeDual(t, ctx, all)
	for _, node := range []string{"node-1", "node-2"} {
		c.mustVerify(t, node)
	}
	dualDelAll(t, c, ctx, all)
}
