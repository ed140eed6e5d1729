package podpolicy

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/veni-cni/veni/policy"
	"github.com/veni-cni/veni/store"
)

// benchManifests is the bench world as manifests: 10 namespaces
// of 100 pods (10 of each on this node, "local"), 100 policies of 10
// rules (1,000 rules) each selecting one app.
func benchManifests() string {
	var b strings.Builder
	for n := range 10 {
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: ns%d, labels: {team: t%d}}\n", n, n%3)
		for i := range 100 {
			node := "local"
			if i >= 10 {
				node = fmt.Sprintf("remote%d", i%20)
			}
			fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Pod\nmetadata: {name: p%d, namespace: ns%d, labels: {app: app%d, tier: tier%d}, annotations: {k8s.aliyun.com/pod-ips: \"10.%d.%d.%d\"}}\n"+
				"spec: {nodeName: %s, containers: [{name: c, ports: [{name: http, containerPort: 8080}, {name: metrics, containerPort: 9090}]}]}\n",
				i, n, i%10, i%3, n, i/256, i%256+1, node)
		}
		for j := range 10 {
			k := (j + 1) % 10
			fmt.Fprintf(&b, `---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: np%d, namespace: ns%d}
spec:
  podSelector: {matchLabels: {app: app%d}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from: [{podSelector: {matchLabels: {app: app%d}}}]
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
  - to: [{podSelector: {matchLabels: {app: app%d}}}]
    ports: [{port: http}]
  - to: [{namespaceSelector: {}, podSelector: {matchLabels: {app: app0}}}]
    ports: [{port: 53, protocol: UDP}]
  - to: [{ipBlock: {cidr: 0.0.0.0/0, except: [10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16]}}]
  - ports: [{port: metrics}]
  - to: [{ipBlock: {cidr: 10.%d.0.0/16}}]
    ports: [{port: 5432}, {port: 6379}]
`, j, n, j, k, j%3, j, k, j, k, k)
		}
	}
	return b.String()
}

// BenchmarkADDRead measures what a CNI ADD's first read transaction costs
// with NetworkPolicy against the bench world (100 local pods, 1,000
// rules): the read it always made (allocation, ENIs, node), then the same
// plus the pod's plan from its record, and from the stored snapshot when
// the daemon has not compiled it yet.
func BenchmarkADDRead(b *testing.B) {
	db, dir := testStore(b), b.TempDir()
	writeFile(b, dir, "world.yaml", benchManifests())
	s := NewSyncer(SyncOptions{DB: db, Enabled: true, ManifestDir: dir, Node: "local", NodeIPs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}})
	rep, err := s.Pass(context.Background())
	if err != nil || rep.Local != 100 {
		b.Fatalf("pass %+v, %v", rep, err)
	}
	key := reserve(b, db, "ns3", "p5", "10.0.0.10")
	base := func(tx *store.ReadTx) error {
		if _, err := tx.Allocation(key); err != nil {
			return err
		}
		if _, err := tx.ENIs(); err != nil {
			return err
		}
		_, err := tx.Node()
		return err
	}
	run := func(b *testing.B, withPlan bool, want string) {
		for b.Loop() {
			err := db.View(func(tx *store.ReadTx) error {
				if err := base(tx); err != nil {
					return err
				}
				if !withPlan {
					return nil
				}
				p, err := PlanForAdd(tx, true, "ns3", "p5")
				if err == nil && p.From != want {
					err = fmt.Errorf("plan from %s, want %s", p.From, want)
				}
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("without-policy", func(b *testing.B) { run(b, false, "") })
	b.Run("record", func(b *testing.B) { run(b, true, FromRecord) })
	mustUpdate(b, db, func(tx *store.WriteTx) error { return tx.DeletePolicyRecord("ns3", "p5") })
	b.Run("no-record-compile", func(b *testing.B) { run(b, true, FromSnapshot) })
	// The record's size, for the report.
	var r policy.Ruleset
	_ = r
}

// BenchmarkPass_PolicyEdit measures what a daemon does between a policy
// edit in its manifest folder and the kernel calls that enforce it, on
// the bench world with its 100 local pods bound: read the folder again,
// compile every local pod, encode the changed records with their kernel
// tables, write them, and hand the changed rulesets to the kernel (a fake
// here: BenchmarkKernelMemory measures the real install per endpoint).
// Each op edits one policy's port, which changes its ten pods' rulesets.
func BenchmarkPass_PolicyEdit(b *testing.B) {
	db, dir := testStore(b), b.TempDir()
	mustUpdate(b, db, func(tx *store.WriteTx) error {
		for n := range 10 {
			for i := range 10 {
				ip := netip.AddrFrom4([4]byte{10, 0, byte(100 + n), byte(i + 1)})
				cid := fmt.Sprintf("c-ns%d-p%d", n, i)
				key := store.NewOwnerKey(cid, "eth0")
				if err := tx.PutIP(store.IP{Addr: ip, ENIID: "eni-a", State: store.IPBound, Owner: key, AddedAt: time.Now()}); err != nil {
					return err
				}
				a := store.Allocation{Key: key, ContainerID: cid, IfName: "eth0", PodNamespace: fmt.Sprintf("ns%d", n), PodName: fmt.Sprintf("p%d", i),
					IP: ip, ENIID: "eni-a", State: store.IPBound, ReservedAt: time.Now(), BoundAt: time.Now(), HostIfindex: 1000 + 10*n + i, HostVeth: "veni-x"}
				if err := tx.PutAllocation(a); err != nil {
					return err
				}
			}
		}
		return nil
	})
	world := benchManifests()
	writeFile(b, dir, "world.yaml", world)
	k := newFakeKernel()
	s := NewSyncer(SyncOptions{DB: db, Enabled: true, ManifestDir: dir, Node: "local", NodeIPs: []netip.Addr{netip.MustParseAddr("10.0.0.1")},
		OpenKernel: func(bool) (Kernel, error) { return k, nil }})
	if rep, err := s.Pass(context.Background()); err != nil || rep.Local != 100 || rep.Applied != 100 {
		b.Fatalf("first pass %+v, %v", rep, err)
	}
	edit := "  - to: [{ipBlock: {cidr: 10.3.0.0/16}}]\n    ports: [{port: 5432}, {port: 6379}]\n"
	if !strings.Contains(world, edit) {
		b.Fatal("the bench world has no rule to edit")
	}
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		port := 7000 + i%2
		writeFile(b, dir, "world.yaml", strings.Replace(world, edit, fmt.Sprintf("  - to: [{ipBlock: {cidr: 10.3.0.0/16}}]\n    ports: [{port: 5432}, {port: %d}]\n", port), 1))
		b.StartTimer()
		rep, err := s.Pass(context.Background())
		if err != nil || rep.Written == 0 || rep.Applied == 0 {
			b.Fatalf("pass after an edit: %+v, %v", rep, err)
		}
	}
}
