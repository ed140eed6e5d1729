package kubesync

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veni-cni/veni/kube"
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

// Ensure a pod with an ENI of its own is annotated as Terway's webhook and
// controller annotate one: k8s.aliyun.com/pod-eni "true" and
// k8s.aliyun.com/pod-networking naming the PodNetworking that selects it,
// beside pod-ips; a shared pod gets pod-ips only.
func TestSync_DedicatedPodAnnotations(t *testing.T) {
	h := startHarness(t, `{}`, &fakeCloud{}, nil)
	h.mustCreate(testPod("default", "web", testNode))
	h.mustCreate(testPod("default", "plain", testNode))
	pn := `{"apiVersion":"network.alibabacloud.com/v1beta1","kind":"PodNetworking","metadata":{"name":"web-own"},` +
		`"spec":{"selector":{"podSelector":{"matchLabels":{"app":"web"}}},"eniOptions":{"eniType":"ENI"}}}`
	own, shared := netip.MustParseAddr("172.30.1.30"), netip.MustParseAddr("172.30.1.31")
	err := h.db.Update(func(tx *store.WriteTx) error {
		if err := tx.PutPolicySource(store.PolicySource{Name: "manifests", PodNetworkings: []store.PodNetworking{{Name: "web-own", Raw: []byte(pn)}}}); err != nil {
			return err
		}
		if err := tx.PutENI(store.ENI{ID: "eni-own", State: store.ENIReady, Kind: store.ENIExclusive, Pod: "default/web"}); err != nil {
			return err
		}
		if err := tx.PutENI(store.ENI{ID: "eni-shared", State: store.ENIReady}); err != nil {
			return err
		}
		for _, p := range []struct {
			cid, pod, eni string
			ip            netip.Addr
		}{{"c1", "web", "eni-own", own}, {"c2", "plain", "eni-shared", shared}} {
			key := store.NewOwnerKey(p.cid, "eth0")
			if err := tx.PutIP(store.IP{Addr: p.ip, ENIID: p.eni, State: store.IPBound, Owner: key}); err != nil {
				return err
			}
			if err := tx.PutAllocation(store.Allocation{Key: key, ContainerID: p.cid, IfName: "eth0", PodNamespace: "default", PodName: p.pod, IP: p.ip, ENIID: p.eni, State: store.IPBound}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	annotations := func(name string) map[string]string {
		h.sync.Notify()
		p, err := kube.Get(context.Background(), h.client, kube.Pods, "default", name)
		if err != nil {
			return nil
		}
		return p.Annotations
	}
	eventually(t, "web's annotations", 20*time.Second, func() bool {
		a := annotations("web")
		return a[AnnotationPodIPs] == own.String() && a[podnetwork.AnnotationPodENI] == "true" && a[podnetwork.AnnotationPodNetworking] == "web-own"
	})
	eventually(t, "plain's pod-ips", 20*time.Second, func() bool { return annotations("plain")[AnnotationPodIPs] == shared.String() })
	if a := annotations("plain"); a[podnetwork.AnnotationPodENI] != "" || a[podnetwork.AnnotationPodNetworking] != "" {
		t.Errorf("a shared pod annotated as having its own ENI: %v", a)
	}
}
