package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	simcluster "github.com/veni-cni/veni/eni/sim/cluster"
	"github.com/veni-cni/veni/eni/sim/pods"
)

// dsPod is a dual-stack pod of the sim: its namespace and both addresses.
type dsPod struct {
	key, netns string
	ip4, ip6   netip.Addr
}

// mustDSPod reads pod ns/name of node from the sim's record, and its IPv6
// (global scope) from its eth0.
func mustDSPod(t *testing.T, dir, node, ns, name string) dsPod {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(simcluster.Paths(dir, node).PodsDir, ns+"_"+name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var rec simcluster.PodRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	p := dsPod{key: ns + "/" + name, netns: rec.Pod.NetNS, ip4: rec.IP}
	h, err := netns.GetFromPath(p.netns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	addrs, err := nl.AddrList(nil, netlink.FAMILY_V6)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.IsGlobalUnicast() {
			p.ip6 = ip
		}
	}
	if !p.ip6.IsValid() {
		t.Fatalf("%s has no IPv6 address: %v", p.key, addrs)
	}
	return p
}

// Ensure NetworkPolicy decides dual-stack pods' IPv6 as their IPv4: on two
// dual-stack nodes (vSwitches with IPv6 /64s, ip_stack dual), each policy
// case applied with "veni sim policy apply" gives the same TCP verdict over
// IPv6 as over IPv4 for every pod pair, across nodes too, and the
// hand-written verdicts of the case on both: pod and namespace selectors,
// named ports, ipBlocks of both families with excepts, egress isolation.
// On the eBPF datapath both families take the fast path, which runs the
// destination's ingress check before it redirects into a pod.
func TestSim_PolicyDualStackParity(t *testing.T) {
	for _, datapath := range []string{"plain", "ebpf"} {
		t.Run(datapath, func(t *testing.T) { policyDualStackParity(t, datapath) })
	}
}

func policyDualStackParity(t *testing.T, datapath string) {
	s := mustSim(t)
	s.mustRun("sim", "up", "--nodes", "2", "--vswitches", dualVSwitches, "--node-config", "ip_stack=dual", "--daemon-sync-interval", "1s", "--datapath", datapath)
	type spec struct{ node, ns, name, app string }
	specs := []spec{
		{"node-1", "x", "a", "a"}, {"node-2", "x", "b", "b"}, {"node-1", "x", "c", "c"},
		{"node-2", "y", "a", "a"}, {"node-1", "y", "b", "b"},
	}
	var all []dsPod
	for _, sp := range specs {
		s.mustRun("sim", "pod", "add", sp.node, sp.name, "-n", sp.ns, "--labels", "app="+sp.app, "--port", "probe:7777/TCP")
		p := mustDSPod(t, s.dir, sp.node, sp.ns, sp.name)
		for _, ip := range []netip.Addr{p.ip4, p.ip6} {
			srv, err := pods.Serve(p.netns, ip)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { srv.Close() })
		}
		t.Logf("%s on %s: %s %s", p.key, sp.node, p.ip4, p.ip6)
		all = append(all, p)
	}
	s.mustRun("sim", "namespace", "label", "x", "team=red")
	s.mustRun("sim", "namespace", "label", "y", "team=blue")

	// measure probes every ordered pair over one family: "x/a>x/b" → ok.
	measure := func(v6 bool) map[string]bool {
		var mu sync.Mutex
		var wg sync.WaitGroup
		out := make(map[string]bool)
		for _, from := range all {
			for _, to := range all {
				if from.key == to.key {
					continue
				}
				dst := to.ip4
				if v6 {
					dst = to.ip6
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					ctx, cancel := context.WithTimeout(context.Background(), time.Second)
					defer cancel()
					err := pods.Dial(ctx, from.netns, dst, 400*time.Millisecond)
					mu.Lock()
					out[from.key+">"+to.key] = err == nil
					mu.Unlock()
				}()
			}
		}
		wg.Wait()
		return out
	}
	render := func(m map[string]bool) string {
		var keys []string
		for k, ok := range m {
			v := "FAIL"
			if ok {
				v = "ok"
			}
			keys = append(keys, k+" "+v)
		}
		sort.Strings(keys)
		return strings.Join(keys, "\n")
	}

	file := filepath.Join(t.TempDir(), "case.yaml")
	cases := []struct {
		name, doc string
		want      map[string]bool // hand-written verdicts (both families)
	}{
		{"no policy", "", map[string]bool{"x/c>x/a": true, "y/a>x/b": true}},
		{"default deny ingress in x", `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: x}
spec: {podSelector: {}}`, map[string]bool{"x/c>x/a": false, "y/a>x/b": false, "x/a>y/b": true}},
		{"app=b of any namespace to x/a on the named port", `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: b-to-a, namespace: x}
spec:
  podSelector: {matchLabels: {app: a}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: b}}, namespaceSelector: {}}]
    ports: [{port: probe}]`, map[string]bool{"x/b>x/a": true, "y/b>x/a": true, "x/c>x/a": false, "y/a>x/a": false, "x/c>x/b": true}},
		{"namespace team=blue only, AND'd with app=a", `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: blue-a, namespace: x}
spec:
  podSelector: {}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {team: blue}}, podSelector: {matchLabels: {app: a}}}]`, map[string]bool{"y/a>x/b": true, "y/a>x/c": true, "y/b>x/b": false, "x/a>x/b": false}},
		{"egress of x/a to node-1's vSwitch only (ipBlocks of both families)", `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a-egress, namespace: x}
spec:
  podSelector: {matchLabels: {app: a}}
  policyTypes: [Egress]
  egress:
  - to: [{ipBlock: {cidr: 172.30.1.0/24}}, {ipBlock: {cidr: "fd00:ac1e:1::/64"}}]`, map[string]bool{"x/a>x/c": true, "x/a>y/b": true, "x/a>x/b": false, "x/a>y/a": false, "x/b>x/a": true}},
		{"ingress of x/c from everywhere but node-2's vSwitch (except, both families)", `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: c-except, namespace: x}
spec:
  podSelector: {matchLabels: {app: c}}
  ingress:
  - from: [{ipBlock: {cidr: 0.0.0.0/0, except: [172.30.2.0/24]}}, {ipBlock: {cidr: "::/0", except: ["fd00:ac1e:2::/64"]}}]`,
			map[string]bool{"x/a>x/c": true, "y/b>x/c": true, "x/b>x/c": false, "y/a>x/c": false}},
	}
	applied := false
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if applied {
				s.mustRun("sim", "policy", "delete", file)
				applied = false
			}
			if tc.doc != "" {
				if err := os.WriteFile(file, []byte(tc.doc), 0o644); err != nil {
					t.Fatal(err)
				}
				s.mustRun("sim", "policy", "apply", file)
				applied = true
			}
			deadline := time.Now().Add(15 * time.Second)
			for {
				v4, v6 := measure(false), measure(true)
				var bad []string
				for pair, want := range tc.want {
					if v4[pair] != want || v6[pair] != want {
						bad = append(bad, fmt.Sprintf("%s: ipv4 %v ipv6 %v, want %v", pair, v4[pair], v6[pair], want))
					}
				}
				for pair := range v4 {
					if v4[pair] != v6[pair] {
						bad = append(bad, fmt.Sprintf("%s: ipv4 %v, ipv6 %v", pair, v4[pair], v6[pair]))
					}
				}
				if len(bad) == 0 {
					t.Logf("%d pairs, same verdicts over both families", len(v4))
					return
				}
				if time.Now().After(deadline) {
					sort.Strings(bad)
					t.Fatalf("verdicts did not converge within 15s:\n%s\nipv4:\n%s\nipv6:\n%s", strings.Join(bad, "\n"), render(v4), render(v6))
				}
				time.Sleep(300 * time.Millisecond)
			}
		})
	}
}
