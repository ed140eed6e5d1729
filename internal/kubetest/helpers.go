package kubetest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/veni-cni/veni/kube"
)

// WriteKubeconfig writes a kubeconfig for the admin token (certUser false)
// or for CertUser's client certificate (certUser true), and returns its
// path. It uses the embedded -data forms.
func (c *Cluster) WriteKubeconfig(tb testing.TB, certUser bool) string {
	tb.Helper()
	b64 := base64.StdEncoding.EncodeToString
	user := "  user:\n    token: " + AdminToken + "\n"
	if certUser {
		user = "  user:\n    client-certificate-data: " + b64(c.pki.clientCert) +
			"\n    client-key-data: " + b64(c.pki.clientKey) + "\n"
	}
	kc := "apiVersion: v1\nkind: Config\ncurrent-context: kubetest\n" +
		"clusters:\n- name: kubetest\n  cluster:\n    server: " + c.Host +
		"\n    certificate-authority-data: " + b64(c.pki.caPEM) + "\n" +
		"contexts:\n- name: kubetest\n  context:\n    cluster: kubetest\n    user: kubetest\n    namespace: default\n" +
		"users:\n- name: kubetest\n" + user
	name := "kubeconfig"
	if certUser {
		name = "kubeconfig-cert"
	}
	p := filepath.Join(c.Dir, name)
	if err := os.WriteFile(p, []byte(kc), 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

// Kubectl runs kubectl against the cluster as admin and returns its
// combined output.
func (c *Cluster) Kubectl(tb testing.TB, args ...string) (string, error) {
	tb.Helper()
	kc := c.WriteKubeconfig(tb, false)
	cmd := exec.Command(filepath.Join(c.BinDir, "kubectl"), append([]string{"--kubeconfig=" + kc}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// CompactEtcd compacts etcd's history up to its current revision (as the
// API server does every 5 minutes), so that watches from any older
// resourceVersion fail with 410 Gone. It returns the revision.
func (c *Cluster) CompactEtcd(tb testing.TB) int64 {
	tb.Helper()
	var rng struct {
		Header struct {
			Revision string `json:"revision"`
		} `json:"header"`
	}
	etcdPost(tb, c.EtcdURL+"/v3/kv/range", `{"key":"`+base64.StdEncoding.EncodeToString([]byte("/"))+`"}`, &rng)
	rev, err := strconv.ParseInt(rng.Header.Revision, 10, 64)
	if err != nil {
		tb.Fatalf("kubetest: etcd revision %q: %v", rng.Header.Revision, err)
	}
	etcdPost(tb, c.EtcdURL+"/v3/kv/compaction", fmt.Sprintf(`{"revision":"%d","physical":true}`, rev), nil)
	return rev
}

func etcdPost(tb testing.TB, url, body string, out any) {
	tb.Helper()
	resp, err := http.Post(url, "application/json", bytes.NewBufferString(body))
	if err != nil {
		tb.Fatalf("kubetest: etcd %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("kubetest: etcd %s: %s: %s", url, resp.Status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			tb.Fatalf("kubetest: etcd %s: %v", url, err)
		}
	}
}

// Rule is one RBAC policy rule.
type Rule struct {
	APIGroups []string `json:"apiGroups"`
	Resources []string `json:"resources"`
	Verbs     []string `json:"verbs"`
}

// Grant gives user the rules cluster-wide through a ClusterRole and a
// ClusterRoleBinding named after it, and waits until the authorizer
// honours the first rule (RBAC caches briefly).
func (c *Cluster) Grant(tb testing.TB, user string, rules ...Rule) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := c.Client(tb)
	name := "kubetest-" + user
	role, _ := json.Marshal(map[string]any{
		"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
		"metadata": map[string]string{"name": name}, "rules": rules,
	})
	binding, _ := json.Marshal(map[string]any{
		"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
		"metadata": map[string]string{"name": name},
		"roleRef":  map[string]string{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
		"subjects": []map[string]string{{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}},
	})
	for _, o := range []struct{ path, body string }{
		{"/apis/rbac.authorization.k8s.io/v1/clusterroles", string(role)},
		{"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", string(binding)},
	} {
		if _, err := cl.Raw(ctx, kube.RawRequest{Method: "POST", Path: o.path, Body: []byte(o.body)}); err != nil {
			tb.Fatalf("kubetest: grant %s: %v", user, err)
		}
	}
	if len(rules) == 0 || len(rules[0].Verbs) == 0 || len(rules[0].Resources) == 0 {
		return
	}
	group := ""
	if len(rules[0].APIGroups) > 0 {
		group = rules[0].APIGroups[0]
	}
	review, _ := json.Marshal(map[string]any{
		"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
		"spec": map[string]any{"user": user, "resourceAttributes": map[string]string{
			"verb": rules[0].Verbs[0], "group": group, "resource": rules[0].Resources[0],
		}},
	})
	for ctx.Err() == nil {
		b, err := cl.Raw(ctx, kube.RawRequest{Method: "POST", Path: "/apis/authorization.k8s.io/v1/subjectaccessreviews", Body: review})
		if err != nil {
			tb.Fatalf("kubetest: access review: %v", err)
		}
		var r struct {
			Status struct {
				Allowed bool `json:"allowed"`
			} `json:"status"`
		}
		if json.Unmarshal(b, &r) == nil && r.Status.Allowed {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.Fatalf("kubetest: grant to %s not effective after 30 s", user)
}

// ServiceAccountToken creates service account namespace/name (if missing)
// and returns a bound token for it, valid for ttl (the server enforces at
// least 10 minutes).
func (c *Cluster) ServiceAccountToken(tb testing.TB, namespace, name string, ttl time.Duration) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := c.Client(tb)
	sa, _ := json.Marshal(map[string]any{
		"apiVersion": "v1", "kind": "ServiceAccount",
		"metadata": map[string]string{"name": name, "namespace": namespace},
	})
	if _, err := cl.Raw(ctx, kube.RawRequest{Method: "POST", Path: "/api/v1/namespaces/" + namespace + "/serviceaccounts", Body: sa}); err != nil && !kube.IsAlreadyExists(err) {
		tb.Fatalf("kubetest: service account: %v", err)
	}
	treq, _ := json.Marshal(map[string]any{
		"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
		"spec": map[string]any{"expirationSeconds": int64(ttl / time.Second)},
	})
	b, err := cl.Raw(ctx, kube.RawRequest{Method: "POST", Path: "/api/v1/namespaces/" + namespace + "/serviceaccounts/" + name + "/token", Body: treq})
	if err != nil {
		tb.Fatalf("kubetest: token request: %v", err)
	}
	var tr struct {
		Status struct {
			Token string `json:"token"`
		} `json:"status"`
	}
	if err := json.Unmarshal(b, &tr); err != nil || tr.Status.Token == "" {
		tb.Fatalf("kubetest: token request: no token in %s", b)
	}
	return tr.Status.Token
}
