package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Ensure a PodNetworking reaches the CNI ADD through the sim's manifest
// folder and the node's daemon: a pod it selects is refused with a clear
// error on a node that serves only shared ENIs (rather than given a shared
// address its PodNetworking says it must not have), a pod it does not
// select gets a shared address, and once the PodNetworking is deleted the
// selected pod gets one too.
func TestSim_PodNetworkingSelects(t *testing.T) {
	s := mustSim(t)
	s.mustRun("sim", "up", "--nodes", "1")
	pn := filepath.Join(t.TempDir(), "web-own.yaml")
	if err := os.WriteFile(pn, []byte(`apiVersion: network.alibabacloud.com/v1beta1
kind: PodNetworking
metadata: {name: web-own}
spec:
  selector:
    podSelector: {matchLabels: {app: web}}
  securityGroupIDs: [sg-sim-default]
  eniOptions: {eniType: ENI}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := s.mustRun("sim", "policy", "apply", pn); !strings.Contains(out, "podnetworking/web-own") {
		t.Fatalf("apply: %s", out)
	}
	out, err := s.run("sim", "pod", "add", "node-1", "web", "--labels", "app=web")
	if err == nil {
		t.Fatalf("a pod web-own selects got a shared address:\n%s", out)
	}
	for _, want := range []string{"web-own", "dedicated ENI", "eniType ENI"} {
		if !strings.Contains(out, want) {
			t.Errorf("the refusal does not say %q:\n%s", want, out)
		}
	}
	s.mustRun("sim", "pod", "add", "node-1", "db", "--labels", "app=db")
	s.mustRun("sim", "policy", "delete", pn)
	s.mustRun("sim", "pod", "add", "node-1", "web", "--labels", "app=web")
	s.mustRun("sim", "pod", "del", "node-1", "web")
	s.mustRun("sim", "pod", "del", "node-1", "db")
}
