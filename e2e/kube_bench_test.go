package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/veni-cni/veni/kube"
	"github.com/veni-cni/veni/store"
)

// BenchmarkKube_DaemonRSS measures the resident memory of a node daemon
// joined to a cluster that holds 100 pods on its node and 1,000
// NetworkPolicies (the goal: at most 40 MB), side by side with the same
// daemon in the same run before the cluster held them, and reports both
// and their ratio. One iteration is one cluster: run it with -benchtime 1x.
//
//	go test -run '^$' -bench Kube_DaemonRSS -benchtime 1x ./e2e/
func BenchmarkKube_DaemonRSS(b *testing.B) {
	for range b.N {
		k := mustKubeCluster(b, "--nodes", "1", "--daemon-sync-interval", "10s")
		pid := k.daemonPID(b, "node-1")
		time.Sleep(3 * time.Second) // past start-up: the first pass, informers synced
		before := settledRSS(b, pid)

		ctx := context.Background()
		for i := range 1000 {
			ns := fmt.Sprintf("team-%d", i%10)
			if i < 10 {
				if _, err := kube.Create(ctx, k.client, kube.Namespaces, &kube.Namespace{ObjectMeta: kube.ObjectMeta{Name: ns, Labels: map[string]string{"team": ns}}}, kube.WriteOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			np := &kube.NetworkPolicy{ObjectMeta: kube.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("np-%d", i)}, Spec: kube.NetworkPolicySpec{
				PodSelector: kube.LabelSelector{MatchLabels: map[string]string{"app": fmt.Sprintf("app-%d", i%50)}},
				PolicyTypes: []string{"Ingress", "Egress"},
				Ingress: []kube.NetworkPolicyIngressRule{{From: []kube.NetworkPolicyPeer{
					{NamespaceSelector: &kube.LabelSelector{MatchLabels: map[string]string{"team": ns}}},
					{IPBlock: &kube.IPBlock{CIDR: "172.30.0.0/16", Except: []string{"172.30.9.0/24"}}},
				}}},
			}}
			if _, err := kube.Create(ctx, k.client, kube.NetworkPolicies, np, kube.WriteOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		for i := range 100 {
			k.createPod(b, "node-1", fmt.Sprintf("pod-%d", i))
		}
		db := store.File{Path: k.storePath(b, "node-1")}
		deadline := time.Now().Add(2 * time.Minute)
		for {
			var pods []store.Pod
			var pols []store.Policy
			_ = db.View(func(tx *store.ReadTx) error {
				pods, _ = tx.MirrorPods()
				pols, _ = tx.MirrorPolicies()
				return nil
			})
			if len(pods) == 100 && len(pols) == 1000 {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("mirror holds %d pods and %d policies after 2 minutes", len(pods), len(pols))
			}
			time.Sleep(200 * time.Millisecond)
		}
		after := settledRSS(b, pid)
		b.ReportMetric(float64(before)/(1<<20), "MB-rss-empty")
		b.ReportMetric(float64(after)/(1<<20), "MB-rss-100pods-1000policies")
		b.ReportMetric(float64(after)/float64(before), "ratio")
		b.Logf("daemon RSS: %.1f MB with an empty cluster, %.1f MB with 100 pods and 1,000 NetworkPolicies cached (%.2fx; goal <= 40 MB)",
			float64(before)/(1<<20), float64(after)/(1<<20), float64(after)/float64(before))
	}
}

// settledRSS is a process's resident set once it has stopped growing for
// a few seconds (the Go heap settles after a burst of decoding).
func settledRSS(tb testing.TB, pid int) int64 {
	tb.Helper()
	var last int64
	for range 20 {
		rss, err := rssOf(pid)
		if err != nil {
			tb.Fatal(err)
		}
		if last != 0 && rss <= last {
			return rss
		}
		last = rss
		time.Sleep(2 * time.Second)
	}
	return last
}

// rssOf is a process's resident set, from /proc.
func rssOf(pid int) (int64, error) {
	raw, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

// daemonPID finds the node's veni daemon process.
func (k *kubeCluster) daemonPID(tb testing.TB, node string) int {
	tb.Helper()
	want := []byte("daemon\x00--config\x00" + k.nodes[node].config)
	pids := findProcs(func(_ int, cmdline, _ []byte) bool { return bytes.Contains(cmdline, want) })
	if len(pids) != 1 {
		tb.Fatalf("daemon of %s: %d processes", node, len(pids))
	}
	return pids[0]
}

// storePath is a node's store, from its veni.json.
func (k *kubeCluster) storePath(tb testing.TB, node string) string {
	tb.Helper()
	return filepath.Join(filepath.Dir(k.nodes[node].config), "veni.db")
}
