package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/veni-cni/veni/ebpf/fastpath"
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
			s := mustDatapathSim(t, mode)
			client := s.mustAddLabeledPod(t, "node-1", "client", "app=client")
			backends := map[string]dpPod{
				"dns-near":   s.mustAddLabeledPod(t, "node-1", "dns-near", "app=dns"),
				"other-near": s.mustAddLabeledPod(t, "node-1", "other-near", "app=other"),
				"dns-far":    s.mustAddLabeledPod(t, "node-2", "dns-far", "app=dns"),
				"other-far":  s.mustAddLabeledPod(t, "node-2", "other-far", "app=other"),
			}
			for _, b := range backends {
				echo, err := pods.Serve(b.netns, b.ip)
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
			s.mustExec(t, "node-1", "nft", "add", "table", "ip", "vsvc")
			s.mustExec(t, "node-1", "nft", "add", "chain", "ip", "vsvc", "pre", "{", "type", "nat", "hook", "prerouting", "priority", "-100", ";", "}")
			for name, vip := range vips {
				s.mustExec(t, "node-1", "nft", "add", "rule", "ip", "vsvc", "pre", "ip", "daddr", vip.String(), "tcp", "dport", strconv.Itoa(pods.ProbePort),
					"counter", "dnat", "to", netip.AddrPortFrom(backends[name].ip, pods.ProbePort).String())
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
			s.mustRun("sim", "policy", "apply", policy)
			// Enforced: a direct dial to a pod the policy does not allow fails.
			deadline := time.Now().Add(15 * time.Second)
			for {
				if _, err := dialVia(client.netns, backends["other-near"].ip); err != nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the policy was not enforced within 15s")
				}
				time.Sleep(300 * time.Millisecond)
			}
			// The daemon hooks the ENIs on its next full pass (1s).
			time.Sleep(2 * time.Second)

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
							t.Fatalf("client → %s (%s via %s): connected (%q), want dropped", tc.name, b.ip, vips[tc.name], reply)
						}
						return
					}
					if err != nil {
						t.Fatalf("client → %s (%s via %s): %v", tc.name, b.ip, vips[tc.name], err)
					}
					if want := b.ip.String() + " hello\n"; reply != want {
						t.Fatalf("reply %q, want %q", reply, want)
					}
				})
			}
		})
	}
}
