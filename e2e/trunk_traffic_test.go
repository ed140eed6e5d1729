package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	simcluster "github.com/veni-cni/veni/eni/sim/cluster"
)

// Ensure a member pod talks through the simulated VPC, which carries a
// trunk's members as the cloud does (802.1Q on the trunk's link, VLAN ID
// = DeviceIndex, untagged member traffic dropped): TCP and UDP both ways
// between a member pod on node-1 and a pod on node-2, and with a shared
// pod on its own node, on the eBPF and the plain datapath.
func TestSim_TrunkMembers_Traffic(t *testing.T) {
	for _, dp := range []string{"ebpf", "plain"} {
		t.Run(dp, func(t *testing.T) {
			c := trunkSim(t, "--datapath", dp)
			c.mustRun("sim", "pod", "add", "node-2", "remote")
			c.mustRun("sim", "pod", "add", "node-1", "local")
			c.mustRun("sim", "pod", "add", "node-1", "member", "--labels", "net=trunk")
			var m simcluster.MatrixJSON
			var out string
			for deadline := time.Now().Add(15 * time.Second); ; {
				out, _ = c.run("sim", "connectivity", "-o", "json", "--proto", "tcp,udp", "--timeout", "1s")
				if err := json.NewDecoder(strings.NewReader(out)).Decode(&m); err != nil {
					t.Fatalf("connectivity -o json: %v\n%s", err, out)
				}
				failed := 0
				for _, r := range m.Results {
					if !r.OK {
						failed++
					}
				}
				if failed == 0 || time.Now().After(deadline) {
					break
				}
				time.Sleep(500 * time.Millisecond)
			}
			seen := 0
			for _, r := range m.Results {
				if !strings.HasSuffix(r.From, "/member") && !strings.HasSuffix(r.To, "/member") {
					continue
				}
				seen++
				if !r.OK {
					t.Errorf("%s -> %s %s/%d: %s", r.From, r.To, r.Protocol, r.Port, r.Error)
				}
			}
			if seen < 8 {
				t.Fatalf("only %d probes to or from the member pod:\n%s", seen, out)
			}
			c.mustVerify(t, "node-1")
		})
	}
}

// Ensure a member pod is in its PodNetworking's security groups, not the
// node's: with a group that admits only tcp/8080 from sg-sim-default, a
// pod on node-2 reaches the member on 8080 and not on 8081, while a
// shared pod on node-1 is reached on both.
func TestSim_TrunkMembers_SecurityGroups(t *testing.T) {
	c := trunkSim(t)
	web := strings.TrimSpace(c.mustRun("sim", "sg", "create", "--name", "web"))
	if !strings.HasPrefix(web, "sg-") {
		t.Fatalf("sg create printed %q", web)
	}
	c.mustRun("sim", "sg", "authorize", web, "--port", "8080/8080", "--group", "sg-sim-default")
	pn := filepath.Join(t.TempDir(), "web.yaml")
	if err := os.WriteFile(pn, []byte(`apiVersion: network.alibabacloud.com/v1beta1
kind: PodNetworking
metadata: {name: web-members}
spec:
  selector:
    podSelector: {matchLabels: {net: web}}
  securityGroupIDs: [`+web+`]
  eniOptions: {eniType: Trunk}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	c.mustRun("sim", "policy", "apply", pn)
	c.mustRun("sim", "pod", "add", "node-2", "client")
	c.mustRun("sim", "pod", "add", "node-1", "web", "--labels", "net=web")
	c.mustRun("sim", "pod", "add", "node-1", "plain")
	want := map[string]bool{"web/8080": true, "web/8081": false, "plain/8080": true, "plain/8081": true}
	var got map[string]bool
	var out string
	for deadline := time.Now().Add(15 * time.Second); ; {
		out, _ = c.run("sim", "connectivity", "-o", "json", "--timeout", "700ms", "--port", "8080,8081")
		var m simcluster.MatrixJSON
		if err := json.NewDecoder(strings.NewReader(out)).Decode(&m); err != nil {
			t.Fatalf("connectivity -o json: %v\n%s", err, out)
		}
		got = map[string]bool{}
		for _, r := range m.Results {
			if strings.HasSuffix(r.From, "/client") {
				got[r.To[strings.LastIndex(r.To, "/")+1:]+"/"+fmt.Sprint(r.Port)] = r.OK
			}
		}
		if fmt.Sprint(got) == fmt.Sprint(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("client -> pods by port %v, want %v\n%s", got, want, out)
	}
}
