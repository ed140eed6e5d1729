package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/veni-cni/veni/store"
)

// The policy row's world: the issue's figure is "100 policies / 1,000
// rules selecting the pods". Every bench pod (namespace bench, labels
// app=bench) is selected by all 100 policies of 10 rules each, whose peers
// are pods of 10 other namespaces on other nodes; every bench pod the run
// will add is described beforehand, so the daemon has compiled its record
// before its ADD, as in a cluster whose informer saw the pod first.
const (
	policyNamespaces = 10
	policyPeers      = 20 // pods per peer namespace
	policyPolicies   = 100
)

// writePolicyWorld writes the world into the sim's manifest folder, with
// pods bench/pod-0 .. pod-(pods-1) on the sim's node.
func writePolicyWorld(simDir string, pods int) error {
	var b strings.Builder
	fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: bench, labels: {team: t0}}\n")
	for n := range policyNamespaces {
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: peer%d, labels: {team: t%d}}\n", n, n%3)
		for i := range policyPeers {
			fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Pod\nmetadata: {name: p%d, namespace: peer%d, labels: {app: app%d, tier: tier%d}, annotations: {k8s.aliyun.com/pod-ips: \"10.%d.%d.%d\"}}\n"+
				"spec: {nodeName: remote%d, containers: [{name: c, ports: [{name: http, containerPort: 8080}, {name: metrics, containerPort: 9090}]}]}\n",
				i, n, i%10, i%3, 100+n, i/200, i%200+1, i%20)
		}
	}
	for j := range policyPolicies {
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
			"spec: {nodeName: %s, containers: [{name: c, ports: [{name: http, containerPort: 8080}]}]}\n", i, simNodeName)
	}
	dir := filepath.Join(simDir, "manifests")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp := filepath.Join(dir, ".bench-world.yaml.tmp")
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "bench-world.yaml"))
}

// waitPolicyRecords waits until the node's daemon has compiled the record
// of every bench pod the run will add (an isolated one: the policies
// select it).
func waitPolicyRecords(ctx context.Context, storePath string, pods int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		have := 0
		err := store.View(storePath, func(tx *store.ReadTx) error {
			for i := range pods {
				if _, err := tx.PolicyRecord("bench", fmt.Sprintf("pod-%d", i)); err == nil {
					have++
				}
			}
			return nil
		})
		if err == nil && have == pods {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the daemon compiled %d of %d bench pods' policy records in %s: %v (see the daemon log in the sim dir)", have, pods, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
