package kube_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/veni-cni/veni/internal/kubetest"
	"github.com/veni-cni/veni/kube"
)

// The daemon's goal is ≤ 40 MB RSS with 100 pods and 1,000
// NetworkPolicies cached. These tests measure what the informer caches
// cost in heap, with realistic objects: managedFields as the server sends
// them, and the kubectl last-applied annotation on policies.

func realisticPolicy(i int, ns string) *networkingv1.NetworkPolicy {
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	p8080, named, p53 := intstr.FromInt32(8080), intstr.FromString("http"), intstr.FromInt32(53)
	np := &networkingv1.NetworkPolicy{
		TypeMeta: metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{
			Name: fmt.Sprintf("allow-frontend-to-svc-%04d", i), Namespace: ns,
			Labels: map[string]string{"app.kubernetes.io/name": fmt.Sprintf("svc-%04d", i), "app.kubernetes.io/part-of": "shop", "team": "payments"},
		},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": fmt.Sprintf("svc-%04d", i)}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{
				{
					From: []networkingv1.NetworkPolicyPeer{
						{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"role": "frontend"}}},
						{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "web"}},
							PodSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"edge", "api"}}}}},
					},
					Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &p8080}, {Protocol: &tcp, Port: &named}},
				},
				{From: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/8", Except: []string{"10.1.0.0/16", "10.2.0.0/16"}}}}},
			},
		},
	}
	np.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{
		To:    []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "kube-system"}}}},
		Ports: []networkingv1.NetworkPolicyPort{{Protocol: &udp, Port: &p53}},
	}}
	last, _ := json.Marshal(np)
	np.Annotations = map[string]string{"kubectl.kubernetes.io/last-applied-configuration": string(last)}
	return np
}

func realisticPod(i int, ns string) *corev1.Pod {
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Name: fmt.Sprintf("svc-%04d-7d9f8b6c5d-x%04d", i, i), Namespace: ns,
			Labels:      map[string]string{"app": fmt.Sprintf("svc-%04d", i), "pod-template-hash": "7d9f8b6c5d", "role": "backend"},
			Annotations: map[string]string{"k8s.aliyun.com/pod-ips": fmt.Sprintf("10.0.%d.%d", i/250, i%250+2)},
		},
		Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{
			{Name: "app", Image: "registry.example/shop/app:1.2.3", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}, {Name: "metrics", ContainerPort: 9090, Protocol: corev1.ProtocolTCP}}},
			{Name: "sidecar", Image: "registry.example/proxy:2.0", Ports: []corev1.ContainerPort{{Name: "admin", ContainerPort: 15000, Protocol: corev1.ProtocolTCP}}},
		}},
	}
}

// managedFields is what a server adds to every object (we must not keep it).
func withManagedFields(m *metav1.ObjectMeta) {
	fields := `{"f:metadata":{"f:annotations":{".":{},"f:kubectl.kubernetes.io/last-applied-configuration":{}},"f:labels":{".":{},"f:app":{},"f:team":{}}},"f:spec":{"f:ingress":{},"f:podSelector":{},"f:policyTypes":{}}}`
	m.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubectl-client-side-apply", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1",
		FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(fields)}}}
	m.UID = "0f5e0c7a-4a7e-4b7e-9c1e-6a1d2b3c4d5e"
	m.ResourceVersion = "123456"
	m.CreationTimestamp = metav1.NewTime(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
}

// fakeListServer serves one list per path and holds watches open.
func fakeListServer(t *testing.T, lists map[string][]byte) *kube.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("watch") == "true" {
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			return
		}
		b, ok := lists[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(b)
	}))
	t.Cleanup(srv.Close)
	c, err := kube.New(&kube.Config{Host: srv.URL, QPS: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// measureCaches syncs a NetworkPolicy and a Pod informer and returns the
// heap they hold.
func measureCaches(t *testing.T, c *kube.Client, stripAnnotations bool) (uint64, int, int) {
	t.Helper()
	before := heapAlloc()
	ctx, cancel := context.WithCancel(context.Background())
	var opts kube.InformerOptions[kube.NetworkPolicy]
	if stripAnnotations {
		opts.Transform = func(np *kube.NetworkPolicy) { np.Annotations = nil }
	}
	npi := kube.NewInformer(c, kube.NetworkPolicies, opts)
	podi := kube.NewInformer(c, kube.Pods, kube.InformerOptions[kube.Pod]{FieldSelector: "spec.nodeName=node-1"})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = npi.Run(ctx) }()
	go func() { defer wg.Done(); _ = podi.Run(ctx) }()
	sctx, scancel := context.WithTimeout(ctx, 60*time.Second)
	defer scancel()
	if npi.WaitForSync(sctx) != nil || podi.WaitForSync(sctx) != nil {
		t.Fatal("informers did not sync")
	}
	after := heapAlloc()
	nps, pods := len(npi.List()), len(podi.List())
	cancel()
	wg.Wait()
	if after < before {
		return 0, nps, pods
	}
	return after - before, nps, pods
}

// TestInformer_Memory_1000Policies measures the caches against a fake
// server (hermetic, always runs).
func TestInformer_Memory_1000Policies(t *testing.T) {
	var npList networkingv1.NetworkPolicyList
	for i := range 1000 {
		np := realisticPolicy(i, fmt.Sprintf("ns-%02d", i%20))
		withManagedFields(&np.ObjectMeta)
		npList.Items = append(npList.Items, *np)
	}
	var podList corev1.PodList
	for i := range 100 {
		p := realisticPod(i, fmt.Sprintf("ns-%02d", i%20))
		withManagedFields(&p.ObjectMeta)
		podList.Items = append(podList.Items, *p)
	}
	npJSON, _ := json.Marshal(npList)
	podJSON, _ := json.Marshal(podList)
	c := fakeListServer(t, map[string][]byte{
		"/apis/networking.k8s.io/v1/networkpolicies": npJSON,
		"/api/v1/pods": podJSON,
	})
	for _, strip := range []bool{false, true} {
		heap, nps, pods := measureCaches(t, c, strip)
		if nps != 1000 || pods != 100 {
			t.Fatalf("cached %d policies, %d pods", nps, pods)
		}
		t.Logf("heap for 1,000 NetworkPolicies + 100 pods cached (strip last-applied: %v): %.2f MB (wire: %.2f MB)",
			strip, float64(heap)/(1<<20), float64(len(npJSON)+len(podJSON))/(1<<20))
		limit := uint64(12 << 20)
		if strip {
			limit = 6 << 20
		}
		if heap > limit {
			t.Errorf("caches hold %d bytes, over %d", heap, limit)
		}
	}
}

// TestInformer_Memory_RealServer creates the same objects in a real API
// server and measures again.
func TestInformer_Memory_RealServer(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 1,100 objects")
	}
	cl := kubetest.Start(t, kubetest.Options{})
	c := fastClient(t, cl.Config())
	cs := clientGo(t, cl)
	ctx := context.Background()
	var nss []string
	for range 20 {
		nss = append(nss, newNamespace(t, c, "mem"))
	}
	work := make(chan func() error)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range work {
				if err := f(); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range 1000 {
		np := realisticPolicy(i, nss[i%20])
		work <- func() error {
			_, err := cs.NetworkingV1().NetworkPolicies(np.Namespace).Create(ctx, np, metav1.CreateOptions{})
			return err
		}
	}
	for i := range 100 {
		p := realisticPod(i, nss[i%20])
		work <- func() error {
			_, err := cs.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{})
			return err
		}
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	for _, strip := range []bool{false, true} {
		heap, nps, pods := measureCaches(t, c, strip)
		if nps != 1000 || pods != 100 {
			t.Fatalf("cached %d policies, %d pods", nps, pods)
		}
		t.Logf("real server: heap for 1,000 NetworkPolicies + 100 pods (strip last-applied: %v): %.2f MB", strip, float64(heap)/(1<<20))
	}
	// A process linking only kube (testdata/rssprobe), for the RSS.
	bin := filepath.Join(t.TempDir(), "rssprobe")
	if out, err := exec.Command("go", "build", "-trimpath", "-o", bin, "./testdata/rssprobe").CombinedOutput(); err != nil {
		t.Fatalf("build rssprobe: %v\n%s", err, out)
	}
	ca := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(ca, cl.CAData(), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "PROBE_HOST="+cl.Host, "PROBE_TOKEN="+kubetest.AdminToken, "PROBE_CA_FILE="+ca,
		"PROBE_POD_SELECTOR=spec.nodeName=node-1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "policies=1000 pods=100 ") {
		t.Fatalf("rssprobe: %v\n%s", err, out)
	}
	t.Logf("process linking only kube, both caches synced: %s", strings.TrimSpace(string(out)))
}
