package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/veni-cni/veni/ebpf/fastpath"
	simcluster "github.com/veni-cni/veni/eni/sim/cluster"
	"github.com/veni-cni/veni/eni/sim/fabric"
	"github.com/veni-cni/veni/eni/sim/pods"
	"github.com/veni-cni/veni/internal/testutil"
)

// mustAddLabeledPod is mustAddPod for a pod of the default namespace with
// labels.
func (s *dpSim) mustAddLabeledPod(tb testing.TB, node, name, labels string) dpPod {
	tb.Helper()
	var (
		out string
		err error
	)
	for attempt := 0; attempt < 20; attempt++ {
		if out, err = s.run("sim", "pod", "add", node, name, "--labels", labels); err == nil || !strings.Contains(out, "try again") {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if err != nil {
		tb.Fatalf("sim pod add %s %s: %v\n%s", node, name, err, out)
	}
	m := podAddLine.FindStringSubmatch(out)
	if m == nil {
		tb.Fatalf("sim pod add output: %q", out)
	}
	p := dpPod{node: node, name: name, ip: netip.MustParseAddr(m[1]), netns: m[2]}
	s.pods = append(s.pods, p)
	return p
}

// Ensure a pod whose egress allows only the DNS pods (podSelector
// app=dns) reaches them through a Service ClusterIP: the egress is decided
// after the node's DNAT (kube-proxy's stand-in, an nftables rule), against
// the backend, whether it runs on the client's node (decided on the
// backend's veth) or on another (decided on the ENI's egress). A ClusterIP
// that maps to a pod the policy does not allow stays closed.
func TestDatapath_ServiceEgressPolicy(t *testing.T) {
	for _, mode := range []string{"ebpf", "plain"} {
		t.Run(mode, func(t *testing.T) {
			if mode == "ebpf" {
				if err := fastpath.Supported(); err != nil {
					testutil.Skipf(t, "kernel lacks the fast path: %v", err)
				}
			}
			serviceEgressPolicy(t, mustDatapathSim(t, mode), false)
		})
	}
}

// Ensure the same over IPv6, on dual-stack nodes whose service_cidr lists
// an IPv6 range too (a dual-stack cluster's Services have an IPv6
// ClusterIP): the client dials the IPv6 ClusterIPs, DNATed by ip6
// nftables rules, and the egress is decided against the IPv6 backend.
// One datapath: a pod's IPv6 crosses the same hooks on both.
func TestDatapath_ServiceEgressPolicyIPv6(t *testing.T) {
	mode := "ebpf"
	if fastpath.Supported() != nil {
		mode = "plain"
	}
	s := &dpSim{testSim: mustSim(t), instances: make(map[string]string)}
	s.mustRun("sim", "up", "--nodes", "2", "--datapath", mode, "--daemon-sync-interval", "1s",
		"--vswitches", dualVSwitches, "--node-config", "ip_stack=dual",
		"--node-config", "service_cidr="+fabric.ServiceCIDR.String()+","+serviceCIDR6.String())
	serviceEgressPolicy(t, s, true)
}

// serviceCIDR6 is the IPv6 Service CIDR of TestDatapath_ServiceEgressPolicyIPv6.
var serviceCIDR6 = netip.MustParsePrefix("fd00:100::/108")

// serviceEgressPolicy runs the Service egress case on s over IPv4 or, v6,
// over IPv6 (s's nodes dual stack, service_cidr with serviceCIDR6).
func serviceEgressPolicy(t *testing.T, s *dpSim, v6 bool) {
	addr := func(p dpPod) netip.Addr {
		if v6 {
			return mustDSPod(t, s.dir, p.node, "default", p.name).ip6
		}
		return p.ip
	}
	client := s.mustAddLabeledPod(t, "node-1", "client", "app=client")
	backends := make(map[string]netip.Addr)
	for _, b := range []struct{ node, name, app string }{
		{"node-1", "dns-near", "app=dns"}, {"node-1", "other-near", "app=other"},
		{"node-2", "dns-far", "app=dns"}, {"node-2", "other-far", "app=other"},
	} {
		p := s.mustAddLabeledPod(t, b.node, b.name, b.app)
		backends[b.name] = addr(p)
		echo, err := pods.Serve(p.netns, backends[b.name])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { echo.Close() })
	}
	// One ClusterIP per backend, DNATed on the client's node.
	vips := map[string]netip.Addr{
		"dns-near":   netip.MustParseAddr("100.100.53.1"),
		"other-near": netip.MustParseAddr("100.100.53.2"),
		"dns-far":    netip.MustParseAddr("100.100.53.3"),
		"other-far":  netip.MustParseAddr("100.100.53.4"),
	}
	family := "ip"
	if v6 {
		family = "ip6"
		for name, vip := range vips {
			vips[name] = netip.MustParseAddr(fmt.Sprintf("fd00:100::35%02x", vip.As4()[3]))
			if !serviceCIDR6.Contains(vips[name]) {
				t.Fatalf("vip %s outside %s", vips[name], serviceCIDR6)
			}
		}
	}
	s.mustExec(t, "node-1", "nft", "add", "table", family, "vsvc")
	s.mustExec(t, "node-1", "nft", "add", "chain", family, "vsvc", "pre", "{", "type", "nat", "hook", "prerouting", "priority", "-100", ";", "}")
	for name, vip := range vips {
		s.mustExec(t, "node-1", "nft", "add", "rule", family, "vsvc", "pre", family, "daddr", vip.String(), "tcp", "dport", strconv.Itoa(pods.ProbePort),
			"counter", "dnat", "to", netip.AddrPortFrom(backends[name], pods.ProbePort).String())
	}

	policy := filepath.Join(t.TempDir(), "dns-only.yaml")
	if err := os.WriteFile(policy, []byte(fmt.Sprintf(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: dns-only, namespace: default}
spec:
  podSelector: {matchLabels: {app: client}}
  policyTypes: [Egress]
  egress:
  - to: [{podSelector: {matchLabels: {app: dns}}}]
    ports: [{port: %d, protocol: TCP}]
`, pods.ProbePort)), 0o644); err != nil {
		t.Fatal(err)
	}
	var node6 netip.Addr
	if v6 {
		// The node's own IPv6 on its primary NIC (the sim's primary ENIs
		// have none of their own): the daemon's policy pass reads it.
		node6 = netip.MustParseAddr("fd00:ac1e:1::fff0")
		s.mustExec(t, "node-1", "sysctl", "-qw", "net.ipv6.conf.eth0.disable_ipv6=0")
		s.mustExec(t, "node-1", "ip", "-6", "addr", "add", node6.String()+"/128", "dev", "eth0", "nodad")
	}
	s.mustRun("sim", "policy", "apply", policy)
	// Enforced: a direct dial to a pod the policy does not allow fails.
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := dialVia(client.netns, backends["other-near"]); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the policy was not enforced within 15s")
		}
		time.Sleep(300 * time.Millisecond)
	}
	// The daemon hooks the ENIs on its next full pass (1s).
	time.Sleep(2 * time.Second)
	if v6 {
		// veni policy trace knows the node by its IPv6 too.
		out := s.mustExec(t, "node-1", s.bin, "policy", "trace", "--config", simcluster.Paths(s.dir, "node-1").Config,
			"--from", node6.String(), "--to", "default/dns-near", "--port", strconv.Itoa(pods.ProbePort)+"/TCP", "-o", "json")
		var tr struct {
			From    struct{ Kind string }
			Allowed bool
		}
		if err := json.Unmarshal([]byte(out), &tr); err != nil || tr.From.Kind != "node" || !tr.Allowed {
			t.Errorf("policy trace from the node's ipv6 %s: %v\n%s", node6, err, out)
		}
	}

	for _, tc := range []struct {
		name string
		pass bool
	}{
		{"dns-near", true},
		{"other-near", false},
		{"dns-far", true},
		{"other-far", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := backends[tc.name]
			reply, err := dialVia(client.netns, vips[tc.name])
			if !tc.pass {
				if err == nil {
					t.Fatalf("client → %s (%s via %s): connected (%q), want dropped", tc.name, b, vips[tc.name], reply)
				}
				return
			}
			if err != nil {
				t.Fatalf("client → %s (%s via %s): %v", tc.name, b, vips[tc.name], err)
			}
			if want := b.String() + " hello\n"; reply != want {
				t.Fatalf("reply %q, want %q", reply, want)
			}
		})
	}
}
