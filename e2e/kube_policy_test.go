package e2e

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/veni-cni/veni/kube"
	"github.com/veni-cni/veni/podpolicy"
	"github.com/veni-cni/veni/policy"
	"github.com/veni-cni/veni/store"
)

// Ensure the Kubernetes source: a NetworkPolicy created in the API server
// reaches the node's store as the pod's compiled record (informer, mirror,
// the daemon's loop), the pod's ADD finds it, and the policy's deletion
// opens the pod again.
func TestKube_NetworkPolicy(t *testing.T) {
	k := mustKubeCluster(t, "--nodes", "2")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	obj := k.createPod(t, "node-1", "web")
	db := store.File{Path: k.storePath(t, "node-1")}
	record := func() (*policy.Ruleset, string) {
		var (
			rs   *policy.Ruleset
			from string
		)
		_ = db.View(func(tx *store.ReadTx) error {
			r, err := tx.PolicyRecord("default", "web")
			if err != nil {
				return nil
			}
			rs, _ = podpolicy.DecodeRecord(r)
			p, err := podpolicy.PlanForAdd(tx, true, "default", "web")
			if err == nil {
				from = p.From
			}
			return nil
		})
		return rs, from
	}
	kubeEventually(t, "web's record, unisolated", 30*time.Second, func() bool {
		rs, _ := record()
		return rs != nil && !rs.Ingress.Isolated
	})

	np := &kube.NetworkPolicy{ObjectMeta: kube.ObjectMeta{Namespace: "default", Name: "web-allow"}}
	np.Spec.PodSelector = kube.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	httpPort := kube.FromString("http")
	np.Spec.Ingress = []kube.NetworkPolicyIngressRule{{
		From:  []kube.NetworkPolicyPeer{{PodSelector: &kube.LabelSelector{MatchLabels: map[string]string{"app": "client"}}}},
		Ports: []kube.NetworkPolicyPort{{Port: &httpPort}},
	}}
	start := time.Now()
	if _, err := kube.Create(ctx, k.client, kube.NetworkPolicies, np, kube.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	kubeEventually(t, "web's record isolated by default/web-allow", 30*time.Second, func() bool {
		rs, _ := record()
		return rs != nil && rs.Ingress.Isolated && slices.Equal(rs.Ingress.Policies, []string{"default/web-allow"})
	})
	took := time.Since(start)
	t.Logf("NetworkPolicy created in the API server → compiled record in the node's store: %s", took.Round(time.Millisecond))
	if took > 2*time.Second {
		t.Errorf("policy took %s to reach the node's store", took)
	}

	// A client on node-2 (its address from its ADD there) becomes a peer
	// in web's record on node-1: the peer informer of every pod.
	cobj := k.createPod(t, "node-2", "client")
	cp := k.newPod(t, "node-2", cobj.Name)
	cp.Namespace, cp.UID = cobj.Namespace, cobj.UID
	ctp, _, err := k.add(ctx, "node-2", cp)
	if err != nil {
		t.Fatalf("ADD on node-2: %v", err)
	}
	kubeEventually(t, "node-2's client allowed into web on node-1", 30*time.Second, func() bool {
		rs, _ := record()
		if rs == nil {
			return false
		}
		_, by, _ := rs.Ingress.Lookup(ctp.ip, policy.ProtoTCP, 8080)
		return len(by) > 0
	})

	// The ADD of the pod finds its record.
	p := k.newPod(t, "node-1", obj.Name)
	p.Namespace, p.UID = obj.Namespace, obj.UID
	if _, _, err := k.add(ctx, "node-1", p); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	if _, from := record(); from != podpolicy.FromRecord {
		t.Errorf("ADD's plan from %q, want the record", from)
	}

	if err := kube.Delete(ctx, k.client, kube.NetworkPolicies, "default", "web-allow", kube.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	kubeEventually(t, "web open again", 30*time.Second, func() bool {
		rs, _ := record()
		return rs != nil && !rs.Ingress.Isolated
	})
}
