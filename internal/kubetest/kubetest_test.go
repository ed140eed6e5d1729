package kubetest

import (
	"context"
	"crypto/tls"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/veni-cni/veni/kube"
)

func TestCluster_Start_KubectlAndRestart(t *testing.T) {
	c := Start(t, Options{})
	out, err := c.Kubectl(t, "get", "namespace", "default", "-o", "name")
	if err != nil || strings.TrimSpace(out) != "namespace/default" {
		t.Fatalf("kubectl: %q %v", out, err)
	}
	cl := c.Client(t)
	ctx := context.Background()
	if _, err := kube.Create(ctx, cl, kube.ConfigMaps, &kube.ConfigMap{ObjectMeta: kube.ObjectMeta{Name: "survives", Namespace: "default"}}, kube.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	c.RestartAPIServer(t)
	if _, err := kube.Get(ctx, cl, kube.ConfigMaps, "default", "survives"); err != nil {
		t.Errorf("object lost across an API server restart: %v", err)
	}
	if rev := c.CompactEtcd(t); rev <= 0 {
		t.Errorf("compaction revision %d", rev)
	}
}

func TestProxy_Block_CutsAndRefuses(t *testing.T) {
	c := Start(t, Options{})
	p := c.NewProxy(t)
	cfg := c.Config()
	cfg.Host, cfg.Timeout = p.Host, 2*time.Second
	cl, err := kube.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := kube.Get(ctx, cl, kube.Namespaces, "", "default"); err != nil {
		t.Fatalf("through the proxy: %v", err)
	}
	if p.Conns() != 1 {
		t.Errorf("%d connections, want 1 (kept alive)", p.Conns())
	}
	p.Block()
	if _, err := kube.Get(ctx, cl, kube.Namespaces, "", "default"); err == nil {
		t.Error("request passed a blocked proxy")
	}
	p.Unblock()
	if _, err := kube.Get(ctx, cl, kube.Namespaces, "", "default"); err != nil {
		t.Errorf("after unblock: %v", err)
	}
}

func TestCluster_Stop_CleansUp(t *testing.T) {
	var c *Cluster
	t.Run("inner", func(t *testing.T) { c = Start(t, Options{}) })
	if c == nil {
		t.Skip("no cluster")
	}
	if _, err := os.Stat(c.Dir); !os.IsNotExist(err) {
		t.Errorf("%s left behind: %v", c.Dir, err)
	}
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // probe only
	if _, err := hc.Get(c.Host + "/readyz"); err == nil {
		t.Error("API server still answering after cleanup")
	}
	if _, err := hc.Get(c.EtcdURL + "/health"); err == nil {
		t.Error("etcd still answering after cleanup")
	}
}

// TestBinaries_Missing runs this binary with no usable binaries: the test
// skips, or fails under VENI_REQUIRE_PRIVILEGED=1.
func TestBinaries_Missing(t *testing.T) {
	if os.Getenv("VENI_KUBETEST_PROBE") == "1" {
		Binaries(t)
		return
	}
	for _, tc := range []struct {
		require string
		fail    bool
		want    string
	}{{"", false, "--- SKIP"}, {"1", true, "VENI_REQUIRE_PRIVILEGED=1"}} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestBinaries_Missing$", "-test.v")
		cmd.Env = append(os.Environ(), "VENI_KUBETEST_PROBE=1", "VENI_K8S_BIN=/nonexistent", "VENI_REQUIRE_PRIVILEGED="+tc.require)
		out, err := cmd.CombinedOutput()
		if (err != nil) != tc.fail || !strings.Contains(string(out), tc.want) || !strings.Contains(string(out), "kube-apiserver missing in /nonexistent") {
			t.Errorf("VENI_REQUIRE_PRIVILEGED=%q: err %v, output:\n%s", tc.require, err, out)
		}
	}
}
