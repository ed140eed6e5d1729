package daemon

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/veni-cni/veni/podpolicy"
	"github.com/veni-cni/veni/policy"
	"github.com/veni-cni/veni/store"
)

const policyTestPod = `apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {containers: [{name: c, ports: [{name: http, containerPort: 8080}]}]}
`

const policyTestDeny = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: shop}
spec: {podSelector: {}}
`

func storedRuleset(t *testing.T, db store.File, ns, name string) (*policy.Ruleset, store.PolicyState) {
	t.Helper()
	var (
		rs *policy.Ruleset
		st store.PolicyState
	)
	err := db.View(func(tx *store.ReadTx) error {
		st, _ = tx.PolicyState()
		r, err := tx.PolicyRecord(ns, name)
		if err != nil {
			return nil
		}
		rs, err = podpolicy.DecodeRecord(r)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return rs, st
}

// Ensure a standalone daemon with a manifest folder compiles its pods into
// the store, and follows a policy written into the folder within a second.
func TestDaemon_PolicyFromManifestFolder(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pods.yaml"), []byte(policyTestPod), 0o644); err != nil {
		t.Fatal(err)
	}
	n := newLoopNode(t, `, "policy_manifest_dir": "`+dir+`"`)
	<-n.start(t)
	eventually(t, "web's record and a synced state", func() bool {
		rs, st := storedRuleset(t, n.env.Store, "shop", "web")
		return rs != nil && st.Synced && slices.Contains(st.Sources, "manifests")
	})
	if rs, _ := storedRuleset(t, n.env.Store, "shop", "web"); rs.Ingress.Isolated {
		t.Fatalf("web isolated with no policy: %+v", rs.Ingress)
	}
	start := time.Now()
	if err := os.WriteFile(filepath.Join(dir, "deny.yaml"), []byte(policyTestDeny), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, "web isolated by shop/deny", func() bool {
		rs, _ := storedRuleset(t, n.env.Store, "shop", "web")
		return rs != nil && rs.Ingress.Isolated && slices.Equal(rs.Ingress.Policies, []string{"shop/deny"})
	})
	took := time.Since(start)
	t.Logf("manifest written → record in the store: %s", took)
	if took > time.Second {
		t.Errorf("policy change took %s to compile, want ≤ 1s", took)
	}
}

// Ensure network_policy off leaves no records behind from an earlier run.
func TestDaemon_PolicyOffRemovesRecords(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pods.yaml"), []byte(policyTestPod), 0o644); err != nil {
		t.Fatal(err)
	}
	n := newLoopNode(t, `, "network_policy": false, "policy_manifest_dir": "`+dir+`"`)
	err := n.env.Store.Update(func(tx *store.WriteTx) error {
		rs := []byte(`{"pod":{"namespace":"shop","name":"web"},"ingress":{"isolated":true},"egress":{"isolated":false}}`)
		return tx.PutPolicyRecord(store.PolicyRecord{Namespace: "shop", Name: "web", Ruleset: rs, Digest: store.PolicyDigest(rs)})
	})
	if err != nil {
		t.Fatal(err)
	}
	<-n.start(t)
	eventually(t, "records gone and the state off", func() bool {
		rs, st := storedRuleset(t, n.env.Store, "shop", "web")
		return rs == nil && !st.Enabled && st.Generation > 0
	})
}
