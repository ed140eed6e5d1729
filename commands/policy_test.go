package commands

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/veni-cni/veni/podpolicy"
	"github.com/veni-cni/veni/policy"
	"github.com/veni-cni/veni/store"
)

// runPolicy runs "veni policy ARGS" against a node config naming db.
func runPolicy(t *testing.T, db store.File, args ...string) (string, error) {
	t.Helper()
	conf := filepath.Join(t.TempDir(), "veni.json")
	if err := os.WriteFile(conf, []byte(`{"store_path": "`+db.Path+`", "service_cidr": "172.21.0.0/20"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	root := NewRootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(append([]string{"policy", "--config", conf}, args...))
	err := root.Execute()
	return out.String(), err
}

// Ensure the policy commands read the node's store: show a pod's compiled
// policy, trace a flow, in text and JSON, and say what to fix on bad input.
func TestPolicyCommands(t *testing.T) {
	dir := t.TempDir()
	db := store.File{Path: filepath.Join(dir, "veni.db")}
	mdir := filepath.Join(dir, "manifests")
	if err := os.Mkdir(mdir, 0o755); err != nil {
		t.Fatal(err)
	}
	manifests := `apiVersion: v1
kind: Pod
metadata: {name: db, namespace: shop, labels: {app: db}, annotations: {k8s.aliyun.com/pod-ips: "10.0.0.20"}}
spec: {containers: [{name: c}]}
---
apiVersion: v1
kind: Pod
metadata: {name: api, namespace: shop, labels: {app: api}, annotations: {k8s.aliyun.com/pod-ips: "10.0.0.21"}}
spec: {containers: [{name: c}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-from-api, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress: [{from: [{podSelector: {matchLabels: {app: api}}}], ports: [{port: 5432}]}]
`
	if err := os.WriteFile(filepath.Join(mdir, "shop.yaml"), []byte(manifests), 0o644); err != nil {
		t.Fatal(err)
	}
	s := podpolicy.NewSyncer(podpolicy.SyncOptions{DB: db, Enabled: true, ManifestDir: mdir, Node: "n1", NodeIPs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}})
	if _, err := s.Pass(t.Context()); err != nil {
		t.Fatal(err)
	}

	out, err := runPolicy(t, db, "show", "shop/db")
	if err != nil || !strings.Contains(out, "ingress: isolated by shop/db-from-api") || !strings.Contains(out, "10.0.0.21/32") {
		t.Errorf("show text: %v\n%s", err, out)
	}
	out, err = runPolicy(t, db, "show", "shop/db", "-o", "json")
	var rep podpolicy.ShowReport
	if err != nil || json.Unmarshal([]byte(out), &rep) != nil || rep.From != podpolicy.FromRecord || !rep.Ruleset.Ingress.Isolated {
		t.Errorf("show json: %v\n%s", err, out)
	}
	out, err = runPolicy(t, db, "trace", "--from", "shop/api", "--to", "shop/db", "--port", "5432/tcp")
	if err != nil || !strings.Contains(out, "allowed") || !strings.Contains(out, "shop/db-from-api") {
		t.Errorf("trace allowed: %v\n%s", err, out)
	}
	// A ClusterIP is not what the kernel decides a Service dial against.
	if out, err := runPolicy(t, db, "trace", "--from", "shop/api", "--to", "172.21.0.10", "--port", "53/udp"); err == nil || !strings.Contains(err.Error(), "Service CIDR 172.21.0.0/20") || !strings.Contains(err.Error(), "trace a backend") {
		t.Errorf("trace to a ClusterIP: %v\n%s", err, out)
	}
	out, err = runPolicy(t, db, "trace", "--from", "10.0.0.99", "--to", "shop/db", "--port", "5432", "-o", "json")
	var tr policy.Trace
	if err != nil || json.Unmarshal([]byte(out), &tr) != nil || tr.Allowed || tr.Ingress.Allowed {
		t.Errorf("trace denied json: %v\n%s", err, out)
	}
	// With facts but an instance that never enforced: drops says so.
	if err := db.Update(func(tx *store.WriteTx) error {
		return tx.PutNode(store.NodeInfo{InstanceID: "i-policycmd-never"})
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := runPolicy(t, db, "drops", "--for", "10ms"); !errors.Is(err, podpolicy.ErrNoEnforcer) {
		t.Errorf("drops with no enforcer: %v, want ErrNoEnforcer", err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"trace", "--from", "shop/api", "--to", "shop/db", "--port", "http"}, "like 80/TCP"},
		{[]string{"trace", "--from", "shop/api", "--to", "shop/db", "--port", "80/gre"}, "protocol"},
		{[]string{"trace", "--from", "a/b/c", "--to", "shop/db", "--port", "80"}, "--from"},
		{[]string{"show", "shop/nobody"}, "is it on this node"},
		{[]string{"show", "shop/db", "-o", "yaml"}, "want text or json"},
	} {
		if _, err := runPolicy(t, db, c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("veni policy %s: err %v, want it to mention %q", strings.Join(c.args, " "), err, c.want)
		}
	}
}
