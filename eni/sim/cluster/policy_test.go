package cluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/veni-cni/veni/policy"
)

func TestParsePodPort(t *testing.T) {
	for _, c := range []struct {
		in   string
		want PodPort
		err  string
	}{
		{"http:8080/TCP", PodPort{"http", 8080, "TCP"}, ""},
		{"dns:53/udp", PodPort{"dns", 53, "UDP"}, ""},
		{"http:8080", PodPort{"http", 8080, "TCP"}, ""},
		{"9090/sctp", PodPort{"", 9090, "SCTP"}, ""},
		{"http:80x/TCP", PodPort{}, "like http:8080/TCP"},
		{"http:0", PodPort{}, "like http:8080/TCP"},
		{"http:70000", PodPort{}, "like http:8080/TCP"},
		{"http:80/icmp", PodPort{}, "not TCP, UDP or SCTP"},
	} {
		got, err := ParsePodPort(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: err %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
	if l, err := ParseLabels("app=web, tier=front"); err != nil || l["app"] != "web" || l["tier"] != "front" {
		t.Errorf("labels: %v, %v", l, err)
	}
	if _, err := ParseLabels("app"); err == nil || !strings.Contains(err.Error(), "key=value") {
		t.Errorf("bad label: %v", err)
	}
}

// Ensure the pods the sim describes and the policies it applies are what
// a node's policy source reads, and bad files are refused with the reason.
func TestPolicyApplyAndPodManifest(t *testing.T) {
	dir := t.TempDir()
	if err := writePodManifest(dir, "node-1", "shop", "web", PodSpec{Labels: map[string]string{"app": "web"}, Ports: []PodPort{{"http", 8080, "TCP"}}}, "10.0.0.7"); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "allow.yaml")
	if err := os.WriteFile(f, []byte("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: allow, namespace: shop}\nspec:\n  podSelector: {matchLabels: {app: web}}\n  ingress: [{ports: [{port: http}]}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	names, err := PolicyApply(dir, f)
	if err != nil || names != "shop/allow" {
		t.Fatalf("apply: %q, %v", names, err)
	}
	snap, err := policy.LoadDir(filepath.Join(dir, ManifestsDir))
	if err != nil {
		t.Fatal(err)
	}
	rs, err := snap.Compile(policy.PodRef{Namespace: "shop", Name: "web"})
	if err != nil || !rs.Ingress.Isolated || rs.Node != "node-1" {
		t.Fatalf("web from the sim's folder: %+v, %v", rs, err)
	}
	if len(rs.IPs) != 1 || rs.IPs[0].String() != "10.0.0.7" {
		t.Errorf("web's address from its manifest: %v", rs.IPs)
	}
	if ok, err := snap.Verdict(policy.IPEndpoint(rs.IPs[0]), policy.PodEndpoint("shop", "web"), policy.ProtoTCP, 9090); err != nil || ok {
		t.Errorf("web:9090 allowed (%v): only its http port is", err)
	}
	if err := PolicyDelete(dir, f); err != nil {
		t.Fatal(err)
	}
	if err := PolicyDelete(dir, f); err == nil || !strings.Contains(err.Error(), "was applied") {
		t.Errorf("second delete: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	_ = os.WriteFile(bad, []byte("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x}\nspec: {podSelector: {}, policyTypes: [Sideways]}\n"), 0o644)
	if _, err := PolicyApply(dir, bad); err == nil {
		t.Error("a policy with a bad policyType was applied")
	}
	pods := filepath.Join(t.TempDir(), "pods.yaml")
	_ = os.WriteFile(pods, []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c}]}\n"), 0o644)
	if _, err := PolicyApply(dir, pods); err == nil || !strings.Contains(err.Error(), "veni sim pod add") {
		t.Errorf("pods file: %v", err)
	}
}
