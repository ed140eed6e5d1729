package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// matrix parses "veni sim connectivity": from → to → "ok" or "FAIL".
func matrix(out string) map[string]map[string]string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	m := make(map[string]map[string]string)
	if len(lines) == 0 {
		return m
	}
	head := strings.Fields(lines[0])[3:] // "FROM \ TO" then pod names
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != len(head)+1 || !strings.Contains(f[0], "@") {
			continue
		}
		from, _, _ := strings.Cut(f[0], "@")
		m[from] = make(map[string]string)
		for i, to := range head {
			m[from][to] = f[i+1]
		}
	}
	return m
}

// Ensure NetworkPolicy on the simulated VPC: pods with labels and named
// ports on two nodes, a policy applied to every node lets the clients of
// both nodes reach web on its named port and keeps the stranger out; the
// policy deleted, everyone reaches web again.
func TestSim_NetworkPolicy(t *testing.T) {
	s := mustSim(t)
	s.mustRun("sim", "up", "--nodes", "2")
	s.mustRun("sim", "pod", "add", "node-1", "web", "-n", "shop", "--labels", "app=web", "--port", "probe:7777/TCP")
	s.mustRun("sim", "pod", "add", "node-1", "client", "-n", "shop", "--labels", "app=client")
	s.mustRun("sim", "pod", "add", "node-2", "far", "-n", "shop", "--labels", "app=client")
	s.mustRun("sim", "pod", "add", "node-2", "stranger", "-n", "shop", "--labels", "app=other")

	converge := func(what string, want map[[2]string]string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		var last string
		for {
			out, _ := s.run("sim", "connectivity", "--timeout", "300ms")
			last = out
			m := matrix(out)
			ok := len(m) == 4
			for pair, v := range want {
				if m[pair[0]][pair[1]] != v {
					ok = false
				}
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: matrix did not converge within 10s:\n%s", what, last)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	converge("no policy", map[[2]string]string{
		{"stranger", "web"}: "ok", {"client", "web"}: "ok", {"far", "web"}: "ok", {"web", "stranger"}: "ok",
	})

	policy := filepath.Join(t.TempDir(), "web-allow.yaml")
	if err := os.WriteFile(policy, []byte(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-allow, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{port: probe}]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := s.mustRun("sim", "policy", "apply", policy); !strings.Contains(out, "shop/web-allow") {
		t.Fatalf("apply: %s", out)
	}
	start := time.Now()
	converge("web-allow", map[[2]string]string{
		{"stranger", "web"}: "FAIL", // not a client
		{"client", "web"}:   "ok",   // same node
		{"far", "web"}:      "ok",   // other node, known from the sim's manifests
		{"web", "stranger"}: "ok",   // web's egress is not isolated
		{"stranger", "far"}: "ok",   // far is selected by nothing
	})
	t.Logf("policy applied → matrix converged in %s", time.Since(start).Round(time.Millisecond))

	show := s.mustRun("sim", "exec", "node-1", "--", s.bin, "policy", "show", "shop/web", "--config", filepath.Join(s.dir, "nodes", "node-1", "veni.json"))
	if !strings.Contains(show, "isolated by shop/web-allow") {
		t.Errorf("veni policy show on node-1:\n%s", show)
	}
	// status counts per endpoint: the stranger's probes to web were
	// dropped at web's ingress, the client's were allowed.
	var st struct {
		Policy struct {
			Enabled   bool `json:"enabled"`
			Endpoints []struct {
				Pod             string `json:"pod"`
				IngressIsolated bool   `json:"ingressIsolated"`
				AllowedIngress  uint64 `json:"allowedIngress"`
				DeniedIngress   uint64 `json:"deniedIngress"`
			} `json:"endpoints"`
		} `json:"policy"`
	}
	raw := s.mustRun("sim", "exec", "node-1", "--", s.bin, "status", "-o", "json", "--config", filepath.Join(s.dir, "nodes", "node-1", "veni.json"))
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		t.Fatalf("veni status -o json: %v\n%s", err, raw)
	}
	web := -1
	for i, ep := range st.Policy.Endpoints {
		if ep.Pod == "shop/web" {
			web = i
		}
	}
	if !st.Policy.Enabled || web < 0 {
		t.Fatalf("veni status on node-1 lists no policy endpoint for shop/web:\n%s", raw)
	}
	if ep := st.Policy.Endpoints[web]; !ep.IngressIsolated || ep.AllowedIngress == 0 || ep.DeniedIngress == 0 {
		t.Errorf("veni status: shop/web %+v, want ingress isolated with allowed and denied counts", ep)
	}
	if text := s.mustRun("sim", "exec", "node-1", "--", s.bin, "status", "--config", filepath.Join(s.dir, "nodes", "node-1", "veni.json")); !strings.Contains(text, "shop/web") || !strings.Contains(text, "isolated in") {
		t.Errorf("veni status on node-1 does not show shop/web's isolation:\n%s", text)
	}

	s.mustRun("sim", "policy", "delete", policy)
	converge("policy deleted", map[[2]string]string{
		{"stranger", "web"}: "ok", {"client", "web"}: "ok", {"far", "web"}: "ok",
	})
}
