package podpolicy

import (
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/veni-cni/veni/policy"
	"github.com/veni-cni/veni/store"
)

// cniBenchWorld is bench-cni's policy world (bench/cni/policy_linux.go):
// pods bench/pod-0..pods-1 on node "local", all selected by 100 policies
// of 10 rules whose peers are 200 pods of 10 namespaces on other nodes.
func cniBenchWorld(pods int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: bench, labels: {team: t0}}\n")
	for n := range 10 {
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: peer%d, labels: {team: t%d}}\n", n, n%3)
		for i := range 20 {
			fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Pod\nmetadata: {name: p%d, namespace: peer%d, labels: {app: app%d, tier: tier%d}, annotations: {k8s.aliyun.com/pod-ips: \"10.%d.%d.%d\"}}\n"+
				"spec: {nodeName: remote%d, containers: [{name: c, ports: [{name: http, containerPort: 8080}, {name: metrics, containerPort: 9090}]}]}\n",
				i, n, i%10, i%3, 100+n, i/200, i%200+1, i%20)
		}
	}
	for j := range 100 {
		k := (j + 1) % 10
		fmt.Fprintf(&b, `---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: np%d, namespace: bench}
spec:
  podSelector: {matchLabels: {app: bench}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from: [{namespaceSelector: {}, podSelector: {matchLabels: {app: app%d}}}]
    ports: [{port: http}]
  - from: [{namespaceSelector: {matchLabels: {team: t%d}}, podSelector: {matchLabels: {tier: tier1}}}]
    ports: [{port: 8080, endPort: 8090}]
  - from: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.%d.0.0/16, 10.%d.0.0/24]}}]
    ports: [{port: 443}]
  - from: [{ipBlock: {cidr: 172.16.%d.0/24}}]
    ports: [{port: 9000}, {port: 9000, protocol: UDP}]
  - from: [{namespaceSelector: {}}]
    ports: [{port: metrics}]
  egress:
  - to: [{namespaceSelector: {}, podSelector: {matchLabels: {app: app%d}}}]
    ports: [{port: http}]
  - to: [{namespaceSelector: {}, podSelector: {matchLabels: {app: app0}}}]
    ports: [{port: 53, protocol: UDP}]
  - to: [{ipBlock: {cidr: 0.0.0.0/0, except: [10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16]}}]
  - ports: [{port: metrics}]
  - to: [{ipBlock: {cidr: 10.%d.0.0/16}}]
    ports: [{port: 5432}, {port: 6379}]
`, j, j%10, j%3, 100+j%10, 100+k, j, k, 100+k)
	}
	for i := range pods {
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Pod\nmetadata: {name: pod-%d, namespace: bench, labels: {app: bench}}\n"+
			"spec: {nodeName: local, containers: [{name: c, ports: [{name: http, containerPort: 8080}]}]}\n", i)
	}
	return b.String()
}

// addFreeIPs adds free addresses 10.0.1.0 .. 10.0.1.0+n-1 (n <= 256) to
// eni-a.
func addFreeIPs(tb testing.TB, db store.File, n int) {
	mustUpdate(tb, db, func(tx *store.WriteTx) error {
		for i := range n {
			ip := netip.AddrFrom4([4]byte{10, 0, byte(1 + i/256), byte(i % 256)})
			if err := tx.PutIP(store.IP{Addr: ip, ENIID: "eni-a", State: store.IPFree, AddedAt: time.Now()}); err != nil {
				return err
			}
		}
		return nil
	})
}

// BenchmarkPass_PodAdd measures what a daemon's passes cost per CNI ADD
// and DEL on bench-cni's policy world (the bench/cni row veni/policy:
// every local pod selected by 100 policies of 1,000 rules), with 300 of
// its 632 pods bound: a pod's reservation (ADD's tx1), its bind (tx2) and
// its release each wake a pass. full is the pass that reads, decodes and
// merges the whole store every time (Syncer.noCache); cached the daemon's.
func BenchmarkPass_PodAdd(b *testing.B) {
	b.Run("full", func(b *testing.B) { benchPassPodAdd(b, true) })
	b.Run("cached", func(b *testing.B) { benchPassPodAdd(b, false) })
}

func benchPassPodAdd(b *testing.B, full bool) {
	db, dir := testStore(b), b.TempDir()
	const pods, bound = 632, 300
	addFreeIPs(b, db, bound+1)
	writeFile(b, dir, "world.yaml", cniBenchWorld(pods))
	k := &countKernel{}
	s := NewSyncer(SyncOptions{DB: db, Enabled: true, ManifestDir: dir, Node: "local", NodeIPs: []netip.Addr{netip.MustParseAddr("10.0.0.1")},
		OpenKernel: func(bool) (Kernel, error) { return k, nil }})
	s.noCache = full
	ipOf := func(i int) string { return netip.AddrFrom4([4]byte{10, 0, byte(1 + i/256), byte(i % 256)}).String() }
	for i := range bound {
		bind(b, db, reserve(b, db, "bench", fmt.Sprintf("pod-%d", i), ipOf(i)), 1000+i)
	}
	mustPass(b, s)
	written, applied := 0, 0
	var took [3]time.Duration
	var cpu time.Duration // the process's user+sys time in the passes
	pass := func() PassReport {
		t0 := cpuTime(b)
		r := mustPass(b, s)
		cpu += cpuTime(b) - t0
		return r
	}
	for b.Loop() {
		key := reserve(b, db, "bench", fmt.Sprintf("pod-%d", bound), ipOf(bound))
		r1 := pass()
		bind(b, db, key, 1000+bound)
		r2 := pass()
		release(b, db, key)
		r3 := pass()
		for i, r := range []PassReport{r1, r2, r3} {
			written += r.Written
			applied += r.Applied
			took[i] += r.Took
		}
	}
	b.ReportMetric(float64(written)/float64(b.N), "records/op")
	b.ReportMetric(float64(applied)/float64(b.N), "applied/op")
	for i, name := range []string{"reserve", "bind", "release"} {
		b.ReportMetric(float64(took[i].Microseconds())/1e3/float64(b.N), name+"-ms/op")
	}
	b.ReportMetric(float64(cpu.Microseconds())/1e3/float64(3*b.N), "cpu-ms/pass")
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// countKernel counts the endpoints set: the daemon's own work is
// measured, not a fake's (BenchmarkKernelMemory measures the kernel's).
type countKernel struct{ set int }

func (k *countKernel) SetEndpoint(Endpoint, *policy.Ruleset) error { k.set++; return nil }
func (k *countKernel) SetEndpointTable(Endpoint, string, []byte) error {
	k.set++
	return nil
}
func (k *countKernel) FailClosed(Endpoint) error     { return nil }
func (k *countKernel) AttachEndpoint(Endpoint) error { return nil }
func (k *countKernel) RemoveEndpoint(Endpoint) error { return nil }

// release frees key's address and forgets its allocation, as a DEL.
func release(tb testing.TB, db store.File, key store.OwnerKey) {
	tb.Helper()
	mustUpdate(tb, db, func(tx *store.WriteTx) error {
		a, err := tx.Allocation(key)
		if err != nil {
			return err
		}
		rec, err := tx.IP(a.IP)
		if err != nil {
			return err
		}
		rec.State, rec.Owner = store.IPFree, ""
		if err := tx.PutIP(rec); err != nil {
			return err
		}
		return tx.DeleteAllocation(key)
	})
}
