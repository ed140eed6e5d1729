package kubesync

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veni-cni/veni/podnetwork"
	"github.com/veni-cni/veni/store"
)

// Ensure PodNetworkings reach the store from a real API server once the
// CRD is installed (packaging/kubernetes/podnetworking-crd.yaml), so an
// ADD resolves its pod's network without the API server; and that a
// cluster without the CRD costs no warning and gives shared ENIs.
func TestSync_PodNetworkings(t *testing.T) {
	old := crdRecheck
	crdRecheck = 300 * time.Millisecond
	t.Cleanup(func() { crdRecheck = old })
	h := startHarness(t, `{}`, &fakeCloud{}, nil)
	h.mustCreate(testPod("default", "web", testNode))
	resolve := func() (podnetwork.Request, error) {
		var r podnetwork.Request
		err := h.db.View(func(tx *store.ReadTx) error {
			var err error
			r, err = podnetwork.Resolve(tx, "default", "web")
			return err
		})
		return r, err
	}
	eventually(t, "the pod in the store", 20*time.Second, func() bool {
		var err error
		_ = h.db.View(func(tx *store.ReadTx) error { _, err = tx.MirrorPod("default", "web"); return nil })
		return err == nil
	})
	if r, err := resolve(); err != nil || r.Dedicated() {
		t.Fatalf("without the CRD: %+v, %v; want the shared network", r, err)
	}

	crd, err := filepath.Abs("../packaging/kubernetes/podnetworking-crd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	t.Log("pod mirrored")
	if out, err := h.kc.Kubectl(t, "apply", "-f", crd); err != nil {
		t.Fatalf("apply the CRD: %v\n%s", err, out)
	}
	if out, err := h.kc.Kubectl(t, "wait", "--for=condition=established", "--timeout=30s", "crd/podnetworkings.network.alibabacloud.com"); err != nil {
		t.Fatalf("CRD not established: %v\n%s", err, out)
	}
	pn := filepath.Join(t.TempDir(), "pn.yaml")
	err = os.WriteFile(pn, []byte(`apiVersion: network.alibabacloud.com/v1beta1
kind: PodNetworking
metadata:
  name: web-own
spec:
  selector:
    podSelector:
      matchLabels: {app: web}
  securityGroupIDs: [sg-web]
  eniOptions: {eniType: Trunk}
  allocationType: {type: Fixed, releaseStrategy: TTL, releaseAfter: 10m}
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := h.kc.Kubectl(t, "apply", "-f", pn); err != nil {
		t.Fatalf("apply the PodNetworking: %v\n%s", err, out)
	}
	t.Log("PodNetworking applied")
	eventually(t, "the PodNetworking to select the pod from the store", 30*time.Second, func() bool {
		r, err := resolve()
		return err == nil && r.Networking == "web-own" && r.Kind == podnetwork.Member &&
			r.Fixed && r.ReleaseAfter == 10*time.Minute && len(r.SecurityGroupIDs) == 1
	})
	t.Log("PodNetworking mirrored")
	if out, err := h.kc.Kubectl(t, "delete", "-f", pn); err != nil {
		t.Fatalf("delete the PodNetworking: %v\n%s", err, out)
	}
	eventually(t, "the deleted PodNetworking to leave the store", 30*time.Second, func() bool {
		r, err := resolve()
		return err == nil && !r.Dedicated()
	})
	if logs := h.logs.String(); strings.Contains(logs, "level=WARN") && strings.Contains(logs, "PodNetworking") {
		t.Errorf("warnings about PodNetworkings:\n%s", logs)
	}
}
