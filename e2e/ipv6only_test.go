package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	types040 "github.com/containernetworking/cni/pkg/types/040"
	types100 "github.com/containernetworking/cni/pkg/types/100"
)

// Ensure an IPv6-only node (ip_stack ipv6) gives each pod one IPv6 and no
// IPv4: through libcni at spec 0.4.0 (one IP, version "6"), 1.0.0 and the
// conflist's newest (1.1.0) the result lists only the /128 with fe80::1 and
// the ::/0 route; the pods reach each other and a dual-stack node's pods
// over IPv6 across the simulated VPC (TCP matrix), on the default
// datapath; the store holds the
// stack and only IPv6; CHECK passes; DEL gives every address back.
func TestSim_IPv6OnlyNode(t *testing.T) {
	// The sim writes one veni.json for every node: node-1 becomes dual
	// stack before any address is taken (min_pool_size 0: its daemon asks
	// the cloud for nothing) and its daemon restarts with it.
	// The default datapath (eBPF where the kernel has it): an IPv6-only
	// pod is not attached to the IPv4 fast path, and NetworkPolicy
	// records it with no IPv4.
	c := mustCluster(t, "--nodes", "2", "--vswitches", dualVSwitches,
		"--node-config", "ip_stack=ipv6", "--min-pool-size", "0", "--max-pool-size", "6")
	c.setNodeConfig(t, "node-1", map[string]any{"ip_stack": "dual"})
	c.restartDaemon(t, "node-1")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	var six []testPod
	for _, v := range []string{"0.4.0", "1.0.0", ""} {
		six = append(six, c.addIPv6Only(t, ctx, "node-2", v))
	}
	var dual []dualPod
	for i := range 2 {
		dual = append(dual, c.addDual(t, ctx, "node-1", fmt.Sprintf("ds-%d", i)))
	}
	all := append([]testPod(nil), six...)
	for _, p := range dual {
		t.Logf("%s on node-1: %s %s", p.pod.Name, p.ip, p.ip6)
		p6 := p.testPod
		p6.ip = p.ip6
		all = append(all, p6)
	}
	if fails := probeAll(ctx, all); len(fails) > 0 {
		t.Fatalf("ipv6 tcp matrix (ipv6-only and dual-stack pods): %d failures:\n%s", len(fails), summarize(fails, 10))
	}

	l := c.dualList(t, "node-2")
	if l.Pool.Stack != "ipv6" {
		t.Fatalf("node-2: pool stack %q, want ipv6", l.Pool.Stack)
	}
	for _, ip := range l.IPs {
		if !ip.Addr.Is6() {
			t.Fatalf("node-2: store holds IPv4 %s on an IPv6-only node", ip.Addr)
		}
	}
	for _, a := range l.Allocations {
		if a.State != "bound" || !a.IP.Is6() || a.IP6.IsValid() {
			t.Fatalf("node-2: allocation %+v, want bound with one IPv6", a)
		}
	}
	for _, p := range six {
		// CHECK through libcni: the cached result (one IPv6) against the
		// pod's links, routes and rules.
		if err := c.nodes[p.node].rt.Check(ctx, p.pod); err != nil {
			t.Fatalf("check %s: %v", p.pod.Name, err)
		}
		out, err := exec.Command("nsenter", "--net="+p.pod.NetNS, "ip", "-4", "-o", "addr", "show", "dev", "eth0").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "" {
			t.Fatalf("%s: ipv4 on eth0: %q (%v), want none", p.pod.Name, out, err)
		}
	}
	c.mustVerify(t, "node-1")
	c.mustVerify(t, "node-2")

	for _, p := range six {
		if _, err := c.nodes[p.node].rt.Del(ctx, p.pod); err != nil {
			t.Fatalf("del %s: %v", p.pod.Name, err)
		}
	}
	dualDelAll(t, c, ctx, dual)
	l = c.dualList(t, "node-2")
	if len(l.Allocations) != 0 {
		t.Fatalf("node-2: allocations left after DEL: %+v", l.Allocations)
	}
	routes := c.mustRun("sim", "exec", "node-2", "--", "ip", "-6", "route")
	for _, p := range six {
		if strings.Contains(routes, p.ip.String()) {
			t.Fatalf("node-2: %s left in ip -6 route after DEL:\n%s", p.ip, routes)
		}
	}
	c.mustVerify(t, "node-2")
}

// addIPv6Only adds a pod on an IPv6-only node through libcni, at spec
// version v ("" for the conflist's own), and fails unless the result
// lists exactly one address, an IPv6 /128 via fe80::1 on the pod's
// interface, and the ::/0 route (0.4.0: tagged version "6").
func (c *cluster) addIPv6Only(tb testing.TB, ctx context.Context, node, v string) testPod {
	tb.Helper()
	rt := c.nodes[node].rt
	if v != "" {
		var err error
		if rt, err = rt.AtVersion(v); err != nil {
			tb.Fatal(err)
		}
	}
	name := "v6-newest"
	if v != "" {
		name = "v6-" + strings.ReplaceAll(v, ".", "")
	}
	p := c.newPod(tb, node, name)
	for {
		raw, took, err := rt.AddRaw(ctx, p)
		var cniErr *types.Error
		if errors.As(err, &cniErr) && cniErr.Code == types.ErrTryAgainLater && ctx.Err() == nil {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		if err != nil {
			tb.Fatalf("add %s on %s at %q: %v", p.Name, node, v, err)
		}
		if raw.Version() != v && v != "" {
			tb.Fatalf("%s: result at version %s, want %s", p.Name, raw.Version(), v)
		}
		if v == "0.4.0" {
			r, ok := raw.(*types040.Result)
			if !ok || len(r.IPs) != 1 || r.IPs[0].Version != "6" {
				tb.Fatalf("%s: 0.4.0 result %+v, want one IP of version 6", p.Name, raw)
			}
		}
		res, err := types100.NewResultFromResult(raw)
		if err != nil {
			tb.Fatal(err)
		}
		if len(res.IPs) != 1 {
			tb.Fatalf("%s: result ips %v, want one IPv6", p.Name, res.IPs)
		}
		ip := res.IPs[0]
		a, _ := netip.AddrFromSlice(ip.Address.IP)
		ones, bits := ip.Address.Mask.Size()
		if !a.Is6() || a.Is4In6() || ones != 128 || bits != 128 || ip.Gateway.String() != "fe80::1" || ip.Interface == nil || *ip.Interface != 1 {
			tb.Fatalf("%s: result ip %+v, want an IPv6 /128 via fe80::1 on interface 1", p.Name, ip)
		}
		if len(res.Routes) != 1 || res.Routes[0].Dst.String() != "::/0" {
			tb.Fatalf("%s: result routes %v, want ::/0 alone", p.Name, res.Routes)
		}
		tb.Logf("%s on %s at %q: %s (ADD %s)", p.Name, node, v, a, took.Round(time.Millisecond))
		return testPod{node: node, pod: p, ip: a, took: took}
	}
}
