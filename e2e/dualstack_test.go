package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/veni-cni/veni/ebpf/fastpath"
)

// dualVSwitches are two vSwitches with IPv6 /64s: one per node, so the
// IPv6 matrix crosses vSwitches as well as nodes.
const dualVSwitches = "vsw-sim-a=172.30.1.0/24+fd00:ac1e:1::/64,vsw-sim-b=172.30.2.0/24+fd00:ac1e:2::/64"

// dualPod is a dual-stack pod and the addresses its ADD result listed.
type dualPod struct {
	testPod
	ip6 netip.Addr
}

// addDual adds a pod through libcni and returns its two addresses; it
// fails unless the result lists exactly one IPv4 and one IPv6.
func (c *cluster) addDual(tb testing.TB, ctx context.Context, node, name string) dualPod {
	tb.Helper()
	p := c.newPod(tb, node, name)
	for {
		res, took, err := c.nodes[node].rt.Add(ctx, p)
		var cniErr *types.Error
		if errors.As(err, &cniErr) && cniErr.Code == types.ErrTryAgainLater && ctx.Err() == nil {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		if err != nil {
			tb.Fatalf("add %s on %s: %v", name, node, err)
		}
		var v4, v6 []netip.Addr
		for _, ip := range res.IPs {
			a, _ := netip.AddrFromSlice(ip.Address.IP)
			if a.Unmap().Is4() {
				v4 = append(v4, a.Unmap())
			} else {
				v6 = append(v6, a)
			}
		}
		if len(v4) != 1 || len(v6) != 1 {
			tb.Fatalf("add %s on %s: result ips %v, want one IPv4 and one IPv6", name, node, res.IPs)
		}
		return dualPod{testPod: testPod{node: node, pod: p, ip: v4[0], took: took}, ip6: v6[0]}
	}
}

// Ensure dual-stack pods on two nodes (plain datapath) get an IPv4 and an
// IPv6 of one ENI each, reach every other pod over TCP on both families,
// and give both back on DEL; the result carries both addresses at the
// spec versions libcni users still speak (0.3.1, 0.4.0, 1.0.0).
// (IPv6-only nodes: TestSim_IPv6OnlyNode.)
func TestDualStack_TwoNodesTCPMatrix(t *testing.T) {
	c, ctx, all := dualMatrix(t, "plain")

	t.Run("older spec versions", func(t *testing.T) { dualOlderVersions(t, c) })
	dualDelAll(t, c, ctx, all)
}

// Ensure dual-stack pods on two nodes on the eBPF datapath reach each
// other over both families and that their IPv6 takes the fast path: a
// second IPv6 TCP matrix moves each node's IPv6 counters by at least its
// probes (local pairs redirected into the peer, remote ones out of the ENI
// and, on arrival, into the pod), and veni status no longer says IPv6
// stays on the plain datapath.
func TestDualStack_EBPFDatapath_IPv6FastPath(t *testing.T) {
	c, ctx, all := dualMatrix(t, "ebpf")
	nodes := []string{"node-1", "node-2"}
	status := func(node string) (dpStatus, []string) {
		out := c.mustRun("sim", "exec", node, "--", c.bin, "status", "-o", "json", "--config", c.nodes[node].config)
		var st dpStatus
		var notes struct {
			StackNotes []string `json:"stackNotes"`
		}
		if err := errors.Join(json.Unmarshal([]byte(out), &st), json.Unmarshal([]byte(out), &notes)); err != nil {
			t.Fatal(err)
		}
		return st, notes.StackNotes
	}
	before := make(map[string]*fastpath.Counters)
	for _, node := range nodes {
		st, notes := status(node)
		if st.Datapath.Active != "ebpf" {
			t.Skipf("%s: datapath %q: this kernel has no eBPF fast path (the plain case is TestDualStack_TwoNodesTCPMatrix)", node, st.Datapath.Active)
		}
		if n := strings.Join(notes, " "); strings.Contains(n, "plain datapath") {
			t.Errorf("%s: status stack notes %q still send IPv6 to the plain datapath", node, n)
		}
		var six int
		for _, ep := range st.Datapath.Endpoints {
			if ep.IP.Is6() {
				six++
			}
		}
		if six != 3 {
			t.Errorf("%s: %d IPv6 fast path endpoints, want one per pod (3): %+v", node, six, st.Datapath.Endpoints)
		}
		before[node] = st.Datapath.Counters
	}

	v6 := make([]testPod, 0, len(all))
	for _, p := range all {
		six := p.testPod
		six.ip = p.ip6
		v6 = append(v6, six)
	}
	if fails := probeAll(ctx, v6); len(fails) > 0 {
		t.Fatalf("second ipv6 tcp matrix: %d failures:\n%s", len(fails), summarize(fails, 10))
	}
	// Each node has 3 pods: 6 probes between its own pods, 9 from its
	// pods to the other node's and 9 the other way.
	for _, node := range nodes {
		st, _ := status(node)
		b, a := before[node], st.Datapath.Counters
		if b == nil || a == nil {
			t.Fatalf("%s: no fast path counters in status", node)
		}
		for _, c := range []struct {
			name          string
			b, a, atLeast uint64
		}{
			{"ipv6 from_pod redirect_peer", b.IPv6.FromPod.RedirectPeer, a.IPv6.FromPod.RedirectPeer, 6},
			{"ipv6 from_pod redirect_neigh", b.IPv6.FromPod.RedirectNeigh, a.IPv6.FromPod.RedirectNeigh, 9},
			{"ipv6 from_eni redirect_peer", b.IPv6.FromENI.RedirectPeer, a.IPv6.FromENI.RedirectPeer, 9},
		} {
			if c.a-c.b < c.atLeast {
				t.Errorf("%s: %s grew by %d over the ipv6 matrix, want >= %d (ipv6 %+v)", node, c.name, c.a-c.b, c.atLeast, a.IPv6)
			}
		}
		t.Logf("%s: ipv6 from_pod %+v", node, a.IPv6.FromPod)
	}
	dualDelAll(t, c, ctx, all)
}

// dualMatrix starts two dual-stack nodes on datapath, adds three pods on
// each and runs the IPv4 and the IPv6 TCP matrix; it checks the store
// holds every pod's pair and the status names the stack.
func dualMatrix(t *testing.T, datapath string) (*cluster, context.Context, []dualPod) {
	c := mustCluster(t, "--nodes", "2", "--vswitches", dualVSwitches, "--datapath", datapath,
		"--node-config", "ip_stack=dual", "--min-pool-size", "2", "--max-pool-size", "6")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)

	var all []dualPod
	for _, node := range []string{"node-1", "node-2"} {
		for i := range 3 {
			all = append(all, c.addDual(t, ctx, node, fmt.Sprintf("ds-%s-%d", node[len(node)-1:], i)))
		}
	}
	probeDual(t, ctx, all)

	// The store holds each pod's pair on one ENI, and the stack.
	for _, node := range []string{"node-1", "node-2"} {
		l := c.dualList(t, node)
		if l.Pool.Stack != "dual" {
			t.Fatalf("%s: pool stack %q, want dual", node, l.Pool.Stack)
		}
		for _, a := range l.Allocations {
			if a.State != "bound" || !a.IP6.IsValid() {
				t.Fatalf("%s: allocation %+v, want bound with an ipv6", node, a)
			}
		}
		c.mustVerify(t, node)
		out := c.mustRun("sim", "exec", node, "--", c.bin, "status", "-o", "json", "--config", c.nodes[node].config)
		var st struct {
			Stack string `json:"stack"`
		}
		if err := json.Unmarshal([]byte(out), &st); err != nil || st.Stack != "dual" {
			t.Fatalf("%s: veni status stack %q (%v)", node, st.Stack, err)
		}
	}

	return c, ctx, all
}

// dualOlderVersions adds a pod at each older spec version through the
// plugin itself and checks the result lists an IPv4 then an IPv6.
func dualOlderVersions(t *testing.T, c *cluster) {
	{
		node := c.nodes["node-1"]
		for _, v := range []string{"0.3.1", "0.4.0", "1.0.0"} {
			pod := c.newPod(t, "node-1", "ver-"+strings.ReplaceAll(v, ".", ""))
			env := map[string]string{
				"CNI_COMMAND": "ADD", "CNI_CONTAINERID": pod.ContainerID, "CNI_NETNS": pod.NetNS, "CNI_IFNAME": "eth0",
				"CNI_PATH": filepath.Join(c.dir, "cni-bin"), "CNI_ARGS": "K8S_POD_NAMESPACE=e2e;K8S_POD_NAME=" + pod.Name,
			}
			conf := []byte(fmt.Sprintf(`{"cniVersion":%q,"name":"veni","type":"veni","config":%q}`, v, node.config))
			res, code := c.pluginRun(t, "node-1", env, conf)
			if code != 0 {
				t.Fatalf("%s: ADD failed: %v", v, res)
			}
			ips, _ := res["ips"].([]any)
			var fams []string
			for _, ip := range ips {
				m, _ := ip.(map[string]any)
				a, err := netip.ParsePrefix(fmt.Sprint(m["address"]))
				if err != nil {
					t.Fatalf("%s: ip %v: %v", v, m, err)
				}
				fam := "4"
				if a.Addr().Is6() {
					fam = "6"
				}
				if ver, ok := m["version"]; v != "1.0.0" && ver != fam {
					t.Fatalf("%s: ip %v has version %v (present %v), want %s", v, m, ver, ok, fam)
				}
				fams = append(fams, fam)
			}
			if strings.Join(fams, ",") != "4,6" || res["cniVersion"] != v {
				t.Fatalf("%s: result %v, want an IPv4 then an IPv6 at that version", v, res)
			}
			env["CNI_COMMAND"] = "DEL"
			if res, code := c.pluginRun(t, "node-1", env, conf); code != 0 {
				t.Fatalf("%s: DEL failed: %v", v, res)
			}
		}
	}
}

// dualDelAll deletes the pods and checks both families went back: no
// allocation, no held address, no IPv6 rule or route left on the nodes.
func dualDelAll(t *testing.T, c *cluster, ctx context.Context, all []dualPod) {
	for _, p := range all {
		if _, err := c.nodes[p.node].rt.Del(ctx, p.pod); err != nil {
			t.Fatalf("del %s: %v", p.pod.Name, err)
		}
	}
	for _, node := range []string{"node-1", "node-2"} {
		l := c.dualList(t, node)
		if len(l.Allocations) != 0 {
			t.Fatalf("%s: allocations left after DEL: %+v", node, l.Allocations)
		}
		for _, ip := range l.IPs {
			if ip.State != "free" {
				t.Fatalf("%s: %s still %s after DEL", node, ip.Addr, ip.State)
			}
		}
		rules := c.mustRun("sim", "exec", node, "--", "ip", "-6", "rule")
		routes := c.mustRun("sim", "exec", node, "--", "ip", "-6", "route")
		for _, p := range all {
			if p.node == node && (strings.Contains(rules, p.ip6.String()) || strings.Contains(routes, p.ip6.String())) {
				t.Fatalf("%s: %s left in ip -6 rule/route after DEL:\n%s\n%s", node, p.ip6, rules, routes)
			}
		}
		c.mustVerify(t, node)
	}
}

// dualList is "veni ipam list -o json" with what dual stack adds.
type dualList struct {
	IPs []struct {
		Addr  netip.Addr `json:"addr"`
		State string     `json:"state"`
		ENIID string     `json:"eniID"`
	} `json:"ips"`
	Allocations []struct {
		Key   string     `json:"key"`
		IP    netip.Addr `json:"ip"`
		IP6   netip.Addr `json:"ip6"`
		ENIID string     `json:"eniID"`
		State string     `json:"state"`
	} `json:"allocations"`
	Pool struct {
		Stack string `json:"stack"`
	} `json:"pool"`
}

func (c *cluster) dualList(tb testing.TB, node string) dualList {
	tb.Helper()
	out := c.mustRun("sim", "exec", node, "--", c.bin, "ipam", "list", "-o", "json", "--config", c.nodes[node].config)
	var l dualList
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		tb.Fatalf("ipam list on %s: %v\n%s", node, err, out)
	}
	return l
}

// probeDual logs each dual-stack pod and runs the IPv4 and the IPv6 TCP
// matrix between all of them, within and across nodes.
func probeDual(t *testing.T, ctx context.Context, all []dualPod) {
	t.Helper()
	v4 := make([]testPod, 0, len(all))
	v6 := make([]testPod, 0, len(all))
	for _, p := range all {
		v4 = append(v4, p.testPod)
		six := p.testPod
		six.ip = p.ip6
		v6 = append(v6, six)
		t.Logf("%s on %s: %s %s (ADD %s)", p.pod.Name, p.node, p.ip, p.ip6, p.took.Round(time.Millisecond))
	}
	if fails := probeAll(ctx, v4); len(fails) > 0 {
		t.Fatalf("ipv4 tcp matrix: %d failures:\n%s", len(fails), summarize(fails, 10))
	}
	if fails := probeAll(ctx, v6); len(fails) > 0 {
		t.Fatalf("ipv6 tcp matrix: %d failures:\n%s", len(fails), summarize(fails, 10))
	}
}
