package kube_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/veni-cni/veni/internal/kubetest"
	"github.com/veni-cni/veni/kube"
)

// Tests against a real kube-apiserver + etcd (internal/kubetest). They
// skip when the binaries cannot be built, unless VENI_REQUIRE_PRIVILEGED=1.

func clientGo(t *testing.T, c *kubetest.Cluster) kubernetes.Interface {
	t.Helper()
	r := c.REST()
	cs, err := kubernetes.NewForConfig(&rest.Config{Host: r.Host, BearerToken: r.BearerToken, TLSClientConfig: rest.TLSClientConfig{CAData: r.CAData}, QPS: 200, Burst: 400})
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// newNamespace creates a namespace for one test.
func newNamespace(t *testing.T, c *kube.Client, prefix string) string {
	t.Helper()
	ns, err := kube.Create(context.Background(), c, kube.Namespaces, &kube.Namespace{ObjectMeta: kube.ObjectMeta{GenerateName: prefix + "-", Labels: map[string]string{"veni-test": prefix}}}, kube.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

func fastClient(t *testing.T, cfg *kube.Config) *kube.Client {
	t.Helper()
	cfg.QPS = -1
	c, err := kube.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestClient_RealServer(t *testing.T) {
	cl := kubetest.Start(t, kubetest.Options{})
	c := fastClient(t, cl.Config())
	ctx := context.Background()

	t.Run("CRUD", func(t *testing.T) {
		ns := newNamespace(t, c, "crud")
		cm, err := kube.Create(ctx, c, kube.ConfigMaps, &kube.ConfigMap{ObjectMeta: kube.ObjectMeta{Name: "cm", Namespace: ns}, Data: map[string]string{"a": "1"}}, kube.WriteOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if cm.UID == "" || cm.ResourceVersion == "" || cm.CreationTimestamp.IsZero() || cm.Kind != "ConfigMap" {
			t.Errorf("server copy: %+v", cm)
		}
		_, err = kube.Create(ctx, c, kube.ConfigMaps, &kube.ConfigMap{ObjectMeta: kube.ObjectMeta{Name: "cm", Namespace: ns}}, kube.WriteOptions{})
		if !kube.IsAlreadyExists(err) {
			t.Errorf("second create: %v", err)
		}
		stale := *cm
		cm.Data["a"] = "2"
		cm2, err := kube.Update(ctx, c, kube.ConfigMaps, cm, kube.WriteOptions{})
		if err != nil || cm2.Data["a"] != "2" {
			t.Fatalf("update: %+v %v", cm2, err)
		}
		stale.Data = map[string]string{"a": "stale"}
		if _, err := kube.Update(ctx, c, kube.ConfigMaps, &stale, kube.WriteOptions{}); !kube.IsConflict(err) {
			t.Errorf("stale update: %v, want Conflict", err)
		}
		got, err := kube.Get(ctx, c, kube.ConfigMaps, ns, "cm")
		if err != nil || got.Data["a"] != "2" {
			t.Errorf("get: %+v %v", got, err)
		}
		if err := kube.Delete(ctx, c, kube.ConfigMaps, ns, "cm", kube.DeleteOptions{ResourceVersion: "1"}); !kube.IsConflict(err) {
			t.Errorf("delete with a wrong precondition: %v, want Conflict", err)
		}
		if err := kube.Delete(ctx, c, kube.ConfigMaps, ns, "cm", kube.DeleteOptions{UID: got.UID}); err != nil {
			t.Fatal(err)
		}
		_, err = kube.Get(ctx, c, kube.ConfigMaps, ns, "cm")
		if !kube.IsNotFound(err) {
			t.Fatalf("get after delete: %v", err)
		}
		if !strings.Contains(err.Error(), "kube get configmaps "+ns+"/cm") {
			t.Errorf("error text %q does not name verb and object", err)
		}
	})

	t.Run("ListPagingAndSelectors", func(t *testing.T) {
		ns := newNamespace(t, c, "list")
		for i := range 25 {
			_, err := kube.Create(ctx, c, kube.ConfigMaps, &kube.ConfigMap{ObjectMeta: kube.ObjectMeta{
				Name: fmt.Sprintf("cm-%02d", i), Namespace: ns, Labels: map[string]string{"parity": []string{"even", "odd"}[i%2]},
			}}, kube.WriteOptions{})
			if err != nil {
				t.Fatal(err)
			}
		}
		page, err := kube.List(ctx, c, kube.ConfigMaps, ns, kube.ListOptions{Limit: 10})
		if err != nil || len(page.Items) != 10 || page.Continue == "" {
			t.Fatalf("first page: %d items, continue %q, %v", len(page.Items), page.Continue, err)
		}
		all, err := kube.ListAll(ctx, c, kube.ConfigMaps, ns, kube.ListOptions{Limit: 10})
		// No controller-manager runs, so no kube-root-ca.crt: exactly ours.
		if err != nil || len(all.Items) != 25 || all.ResourceVersion == "" || all.Continue != "" {
			t.Fatalf("ListAll: %d items, rv %q, continue %q, %v", len(all.Items), all.ResourceVersion, all.Continue, err)
		}
		sel := &kube.LabelSelector{MatchExpressions: []kube.LabelSelectorRequirement{{Key: "parity", Operator: kube.LabelSelectorOpIn, Values: []string{"odd"}}}}
		odd, err := kube.ListAll(ctx, c, kube.ConfigMaps, ns, kube.ListOptions{LabelSelector: sel.String(), Limit: 5})
		if err != nil || len(odd.Items) != 12 {
			t.Fatalf("label selector: %d, %v", len(odd.Items), err)
		}
		for _, o := range odd.Items {
			if !sel.Matches(o.Labels) {
				t.Errorf("%s does not match", o.Name)
			}
		}
		one, err := kube.List(ctx, c, kube.ConfigMaps, ns, kube.ListOptions{FieldSelector: "metadata.name=cm-07"})
		if err != nil || len(one.Items) != 1 || one.Items[0].Name != "cm-07" {
			t.Fatalf("field selector: %+v %v", one, err)
		}
	})

	t.Run("PatchTypesAndStatus", func(t *testing.T) {
		node, err := kube.Create(ctx, c, kube.Nodes, &kube.Node{ObjectMeta: kube.ObjectMeta{Name: "patch-node", Labels: map[string]string{"a": "1"}}, Spec: kube.NodeSpec{ProviderID: "cn-hangzhou.i-1"}}, kube.WriteOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n, err := kube.Patch(ctx, c, kube.Nodes, "", node.Name, kube.MergePatch, []byte(`{"metadata":{"labels":{"b":"2"},"annotations":{"veni.io/instance":"ecs.g7.large"}}}`), kube.WriteOptions{})
		if err != nil || n.Labels["a"] != "1" || n.Labels["b"] != "2" || n.Annotations["veni.io/instance"] != "ecs.g7.large" {
			t.Fatalf("merge patch: %+v %v", n, err)
		}
		cond := func(status, reason string) []byte {
			b, _ := json.Marshal(map[string]any{"status": map[string]any{"conditions": []kube.NodeCondition{{
				Type: "SufficientIP", Status: status, Reason: reason, Message: "vSwitch vsw-1: 0 free IPs",
				LastHeartbeatTime: kube.NewTime(time.Now()), LastTransitionTime: kube.NewTime(time.Now()),
			}}}})
			return b
		}
		for _, st := range []struct{ status, reason string }{{"False", "IPExhausted"}, {"True", "SufficientIP"}} {
			n, err = kube.Patch(ctx, c, kube.Nodes, "", node.Name, kube.StrategicMergePatch, cond(st.status, st.reason), kube.WriteOptions{Subresource: "status"})
			if err != nil {
				t.Fatal(err)
			}
		}
		// Strategic merge merges conditions by type: one SufficientIP, last value.
		var found []kube.NodeCondition
		for _, c := range n.Status.Conditions {
			if c.Type == "SufficientIP" {
				found = append(found, c)
			}
		}
		if len(found) != 1 || found[0].Status != "True" {
			t.Errorf("conditions after two strategic patches: %+v", n.Status.Conditions)
		}
		// JSON patch with a test op: optimistic concurrency without a resourceVersion.
		_, err = kube.Patch(ctx, c, kube.Nodes, "", node.Name, kube.JSONPatch, []byte(`[{"op":"test","path":"/metadata/labels/a","value":"1"},{"op":"replace","path":"/metadata/labels/a","value":"3"}]`), kube.WriteOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = kube.Patch(ctx, c, kube.Nodes, "", node.Name, kube.JSONPatch, []byte(`[{"op":"test","path":"/metadata/labels/a","value":"1"}]`), kube.WriteOptions{})
		if err == nil {
			t.Error("failed JSON patch test op accepted")
		}
		// Status update (PUT) of a fully modelled object is not needed for
		// nodes; the status subresource ignored spec changes:
		n, _ = kube.Get(ctx, c, kube.Nodes, "", node.Name)
		if n.Labels["a"] != "3" || n.Spec.ProviderID != "cn-hangzhou.i-1" {
			t.Errorf("after patches: %+v", n)
		}
	})

	t.Run("MatchesClientGo", func(t *testing.T) { testMatchesClientGo(t, cl, c) })
	t.Run("Forbidden", func(t *testing.T) { testForbidden(t, cl) })
	t.Run("KubeconfigAndCredentials", func(t *testing.T) { testCredentials(t, cl) })
}

// testMatchesClientGo creates objects with client-go, reads them with both
// clients, and checks our decoding equals client-go's for every field we
// model (client-go's object converted through JSON into our type).
func testMatchesClientGo(t *testing.T, cl *kubetest.Cluster, c *kube.Client) {
	ctx := context.Background()
	cs := clientGo(t, cl)
	ns := newNamespace(t, c, "cmp")
	tcp := corev1.ProtocolTCP
	port, named := intstr.FromInt32(443), intstr.FromString("metrics")
	end := int32(500)
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "np", Namespace: ns, Labels: map[string]string{"a": "b"}},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"x"}}}},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &port, EndPort: &end}, {Port: &named}},
				From: []networkingv1.NetworkPolicyPeer{
					{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}, PodSelector: &metav1.LabelSelector{}},
					{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/8", Except: []string{"10.9.0.0/16"}}},
				},
			}},
			Egress: []networkingv1.NetworkPolicyEgressRule{{}},
		},
	}
	if _, err := cs.NetworkingV1().NetworkPolicies(ns).Create(ctx, np, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: ns, Labels: map[string]string{"app": "web"}, Annotations: map[string]string{"k8s.aliyun.com/pod-ips": "10.0.0.9"}},
		Spec: corev1.PodSpec{NodeName: "node-x", Containers: []corev1.Container{{Name: "c", Image: "pause", Ports: []corev1.ContainerPort{
			{Name: "metrics", ContainerPort: 9090}, {ContainerPort: 53, Protocol: corev1.ProtocolUDP},
		}}}},
	}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.9", PodIPs: []corev1.PodIP{{IP: "10.0.0.9"}}}
	if _, err := cs.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	compare := func(name string, ref, ours any) {
		t.Helper()
		b, _ := json.Marshal(ref)
		conv := reflect.New(reflect.TypeOf(ours).Elem()).Interface()
		if err := json.Unmarshal(b, conv); err != nil {
			t.Fatal(err)
		}
		// client-go's typed clients drop apiVersion/kind; ours keep them.
		reflect.ValueOf(conv).Elem().FieldByName("TypeMeta").SetZero()
		o := reflect.New(reflect.TypeOf(ours).Elem())
		o.Elem().Set(reflect.ValueOf(ours).Elem())
		o.Elem().FieldByName("TypeMeta").SetZero()
		if !reflect.DeepEqual(conv, o.Interface()) {
			t.Errorf("%s differs:\nclient-go %+v\nours      %+v", name, conv, o.Interface())
		}
	}
	refNP, _ := cs.NetworkingV1().NetworkPolicies(ns).Get(ctx, "np", metav1.GetOptions{})
	ourNP, err := kube.Get(ctx, c, kube.NetworkPolicies, ns, "np")
	if err != nil {
		t.Fatal(err)
	}
	compare("networkpolicy", refNP, ourNP)
	refPod, _ := cs.CoreV1().Pods(ns).Get(ctx, "p", metav1.GetOptions{})
	ourPod, _ := kube.Get(ctx, c, kube.Pods, ns, "p")
	compare("pod", refPod, ourPod)
	refNS, _ := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	ourNS, _ := kube.Get(ctx, c, kube.Namespaces, "", ns)
	compare("namespace", refNS, ourNS)
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "cmp-node", Labels: map[string]string{"terway-config": "pool-a"}, Annotations: map[string]string{"x": "y"}},
		Spec:       corev1.NodeSpec{ProviderID: "cn-hangzhou.i-abc"},
	}
	if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	node.Status = corev1.NodeStatus{
		Conditions: []corev1.NodeCondition{{Type: "SufficientIP", Status: corev1.ConditionTrue, Reason: "SufficientIP", Message: "ok",
			LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}},
		Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.1.5"}, {Type: corev1.NodeHostName, Address: "cmp-node"}},
	}
	if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	refNode, _ := cs.CoreV1().Nodes().Get(ctx, "cmp-node", metav1.GetOptions{})
	ourNode, _ := kube.Get(ctx, c, kube.Nodes, "", "cmp-node")
	if len(ourNode.Status.Conditions) != 1 || len(ourNode.Status.Addresses) != 2 {
		t.Errorf("node status not decoded: %+v", ourNode.Status)
	}
	compare("node", refNode, ourNode)
	// A list through both.
	refList, _ := cs.NetworkingV1().NetworkPolicies("").List(ctx, metav1.ListOptions{})
	ourList, _ := kube.ListAll(ctx, c, kube.NetworkPolicies, "", kube.ListOptions{})
	if len(refList.Items) != len(ourList.Items) {
		t.Errorf("list: client-go %d, ours %d", len(refList.Items), len(ourList.Items))
	}
}

// testForbidden checks that RBAC denials are IsForbidden and that the
// error names the verb and the resource an operator must grant.
func testForbidden(t *testing.T, cl *kubetest.Cluster) {
	ctx := context.Background()
	rc := fastClient(t, cl.ConfigFor(kubetest.RestrictedToken))
	cl.Grant(t, kubetest.RestrictedUser, kubetest.Rule{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}})

	tests := []struct {
		name     string
		call     func() error
		verb     string
		resource string
	}{
		{"list pods (only get granted)", func() error {
			_, err := kube.List(ctx, rc, kube.Pods, "", kube.ListOptions{})
			return err
		}, "list", "pods"},
		{"watch pods", func() error {
			_, err := kube.Watch(ctx, rc, kube.Pods, "default", kube.ListOptions{})
			return err
		}, "watch", "pods"},
		{"patch node status", func() error {
			_, err := kube.Patch(ctx, rc, kube.Nodes, "", "n", kube.StrategicMergePatch, []byte(`{}`), kube.WriteOptions{Subresource: "status"})
			return err
		}, "patch", "nodes/status"},
		{"create lease", func() error {
			_, err := kube.Create(ctx, rc, kube.Leases, &kube.Lease{ObjectMeta: kube.ObjectMeta{Name: "l", Namespace: "kube-system"}}, kube.WriteOptions{})
			return err
		}, "create", "leases.coordination.k8s.io"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if !kube.IsForbidden(err) {
				t.Fatalf("err = %v, want Forbidden", err)
			}
			t.Log(err)
			want := fmt.Sprintf("needs verb %q on resource %q", tc.verb, tc.resource)
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
			if !strings.Contains(err.Error(), tc.verb) || !strings.Contains(err.Error(), kubetest.RestrictedUser) {
				t.Errorf("error %q lacks the server's message", err)
			}
		})
	}
	// The granted verb works (NotFound, not Forbidden).
	if _, err := kube.Get(ctx, rc, kube.Pods, "default", "nope"); !kube.IsNotFound(err) {
		t.Errorf("granted get: %v", err)
	}
	bad := fastClient(t, cl.ConfigFor("wrong-token"))
	if _, err := kube.Get(ctx, bad, kube.Pods, "default", "x"); !kube.IsUnauthorized(err) || !strings.Contains(err.Error(), "token") {
		t.Errorf("bad token: %v", err)
	}
}

// whoAmI asks the server which user a client authenticates as.
func whoAmI(t *testing.T, c *kube.Client) string {
	t.Helper()
	b, err := c.Raw(context.Background(), kube.RawRequest{Method: "POST", Path: "/apis/authentication.k8s.io/v1/selfsubjectreviews",
		Body: []byte(`{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`)})
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Status struct {
			UserInfo struct {
				Username string `json:"username"`
			} `json:"userInfo"`
		} `json:"status"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r.Status.UserInfo.Username
}

// testCredentials checks kubeconfig (token and client certificate),
// in-cluster config, and a rotating service account token file.
func testCredentials(t *testing.T, cl *kubetest.Cluster) {
	for _, tc := range []struct {
		name     string
		certUser bool
		want     string
	}{{"kubeconfig token", false, kubetest.AdminUser}, {"kubeconfig client certificate", true, kubetest.CertUser}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := kube.LoadKubeconfig(cl.WriteKubeconfig(t, tc.certUser), "")
			if err != nil {
				t.Fatal(err)
			}
			if got := whoAmI(t, fastClient(t, cfg)); got != tc.want {
				t.Errorf("authenticated as %q, want %q", got, tc.want)
			}
		})
	}

	t.Run("in-cluster with rotating token", func(t *testing.T) {
		dir := t.TempDir()
		tokA := cl.ServiceAccountToken(t, "default", "veni-a", time.Hour)
		tokB := cl.ServiceAccountToken(t, "default", "veni-b", time.Hour)
		for name, data := range map[string]string{"token": tokA, "ca.crt": string(cl.CAData()), "namespace": "default"} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		host, port, _ := strings.Cut(strings.TrimPrefix(cl.Host, "https://"), ":")
		t.Setenv("KUBERNETES_SERVICE_HOST", host)
		t.Setenv("KUBERNETES_SERVICE_PORT", port)
		cfg, err := kube.InClusterConfigFrom(dir)
		if err != nil {
			t.Fatal(err)
		}
		cfg.TokenReload = 100 * time.Millisecond
		c := fastClient(t, cfg)
		if got := whoAmI(t, c); got != "system:serviceaccount:default:veni-a" {
			t.Fatalf("first token: %q", got)
		}
		// kubelet rotates by replacing the file.
		if err := os.WriteFile(filepath.Join(dir, "token.new"), []byte(tokB), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "token.new"), filepath.Join(dir, "token")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
		if got := whoAmI(t, c); got != "system:serviceaccount:default:veni-b" {
			t.Errorf("after rotation: %q", got)
		}
	})
}
