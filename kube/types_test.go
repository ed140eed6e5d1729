package kube

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	coordv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// convert marshals in and unmarshals into out.
func convert(t *testing.T, in, out any) {
	t.Helper()
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("unmarshal %s into %T: %v", b, out, err)
	}
}

// refPolicy is a NetworkPolicy using every field of the v1 spec.
func refPolicy() *networkingv1.NetworkPolicy {
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	p80, named := intstr.FromInt32(80), intstr.FromString("http")
	end := int32(8080)
	return &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: "np", Namespace: "ns", UID: "u-1", ResourceVersion: "12", Labels: map[string]string{"a": "b"}},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{
				MatchLabels:      map[string]string{"app": "web"},
				MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"a", "b"}}},
			},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &p80, EndPort: &end}, {Protocol: &udp, Port: &named}, {}},
				From: []networkingv1.NetworkPolicyPeer{
					{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"role": "client"}}},
					{NamespaceSelector: &metav1.LabelSelector{}, PodSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "x", Operator: metav1.LabelSelectorOpExists}}}},
					{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/8", Except: []string{"10.1.0.0/16", "10.2.0.0/16"}}},
				},
			}},
			Egress: []networkingv1.NetworkPolicyEgressRule{
				{To: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "::/0"}}}},
				{},
			},
		},
	}
}

func TestNetworkPolicy_JSON_MatchesK8sAPI(t *testing.T) {
	ref := refPolicy()
	var ours NetworkPolicy
	convert(t, ref, &ours)

	in := ours.Spec.Ingress[0]
	if *in.Ports[0].Protocol != "TCP" || in.Ports[0].Port.IsString || in.Ports[0].Port.IntVal != 80 || *in.Ports[0].EndPort != 8080 {
		t.Errorf("numeric port: %+v", in.Ports[0])
	}
	if !in.Ports[1].Port.IsString || in.Ports[1].Port.StrVal != "http" || in.Ports[1].Port.String() != "http" {
		t.Errorf("named port: %+v", in.Ports[1].Port)
	}
	if in.Ports[2].Port != nil || in.Ports[2].Protocol != nil {
		t.Errorf("empty port: %+v", in.Ports[2])
	}
	if in.From[1].NamespaceSelector == nil || !in.From[1].NamespaceSelector.Empty() {
		t.Errorf("empty namespaceSelector must stay non-nil and empty: %+v", in.From[1].NamespaceSelector)
	}
	if in.From[0].NamespaceSelector != nil {
		t.Errorf("absent namespaceSelector must stay nil")
	}
	if len(ours.Spec.Egress) != 2 || ours.Spec.Egress[1].To != nil {
		t.Errorf("egress: %+v", ours.Spec.Egress)
	}

	// And back: what we write, Kubernetes reads identically.
	var back networkingv1.NetworkPolicy
	convert(t, &ours, &back)
	if !reflect.DeepEqual(back.Spec, ref.Spec) {
		t.Errorf("spec round trip differs:\n got %+v\nwant %+v", back.Spec, ref.Spec)
	}
	if back.Name != "np" || back.Namespace != "ns" || back.UID != "u-1" || back.ResourceVersion != "12" || back.Labels["a"] != "b" {
		t.Errorf("meta round trip: %+v", back.ObjectMeta)
	}
}

func TestPod_JSON_MatchesK8sAPI(t *testing.T) {
	created := metav1.NewTime(time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC))
	deleted := metav1.NewTime(created.Add(time.Minute))
	ctrl := true
	ref := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "p", Namespace: "ns", UID: "uid", ResourceVersion: "5",
			CreationTimestamp: created, DeletionTimestamp: &deleted,
			Labels: map[string]string{"app": "web"}, Annotations: map[string]string{"k8s.aliyun.com/pod-ips": "10.0.0.5"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "rs", UID: "rs-uid", Controller: &ctrl}},
			Finalizers:      []string{"f"},
		},
		Spec: corev1.PodSpec{
			NodeName: "node-1", HostNetwork: true,
			Containers: []corev1.Container{{Name: "c", Image: "img", Ports: []corev1.ContainerPort{
				{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP},
				{ContainerPort: 53, Protocol: corev1.ProtocolUDP},
			}}},
		},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.5", PodIPs: []corev1.PodIP{{IP: "10.0.0.5"}, {IP: "fd00::5"}}},
	}
	var ours Pod
	convert(t, ref, &ours)
	if !ours.CreationTimestamp.Equal(created.Time) || !ours.DeletionTimestamp.Equal(deleted.Time) {
		t.Errorf("timestamps: %v %v", ours.CreationTimestamp, ours.DeletionTimestamp)
	}
	var back corev1.Pod
	convert(t, &ours, &back)
	if !reflect.DeepEqual(back.Spec.Containers[0].Ports, ref.Spec.Containers[0].Ports) ||
		back.Spec.NodeName != "node-1" || !back.Spec.HostNetwork ||
		!reflect.DeepEqual(back.Status, ref.Status) ||
		!reflect.DeepEqual(back.OwnerReferences, ref.OwnerReferences) ||
		!back.CreationTimestamp.Equal(&created) || !back.DeletionTimestamp.Equal(&deleted) ||
		!reflect.DeepEqual(back.Labels, ref.Labels) || !reflect.DeepEqual(back.Annotations, ref.Annotations) ||
		!reflect.DeepEqual(back.Finalizers, ref.Finalizers) {
		t.Errorf("round trip differs:\n got %+v\nwant %+v", back, ref)
	}
}

func TestNode_JSON_MatchesK8sAPI(t *testing.T) {
	hb := metav1.NewTime(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	ref := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n", Labels: map[string]string{"terway-config": "pool-a"}},
		Spec:       corev1.NodeSpec{ProviderID: "cn-hangzhou.i-123"},
		Status: corev1.NodeStatus{
			Conditions: []corev1.NodeCondition{{Type: "SufficientIP", Status: corev1.ConditionFalse, Reason: "VSwitchExhausted", Message: "vsw-1 out", LastHeartbeatTime: hb, LastTransitionTime: hb}},
			Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.0.2"}},
		},
	}
	var ours Node
	convert(t, ref, &ours)
	var back corev1.Node
	convert(t, &ours, &back)
	if !reflect.DeepEqual(back.Status.Addresses, ref.Status.Addresses) || back.Spec.ProviderID != ref.Spec.ProviderID ||
		len(back.Status.Conditions) != 1 || back.Status.Conditions[0].Reason != "VSwitchExhausted" ||
		!back.Status.Conditions[0].LastTransitionTime.Equal(&hb) {
		t.Errorf("round trip differs:\n got %+v\nwant %+v", back, ref)
	}
}

func TestLease_JSON_MatchesK8sAPI(t *testing.T) {
	at := metav1.NewMicroTime(time.Date(2025, 1, 2, 3, 4, 5, 123456000, time.UTC))
	holder, dur, tr := "node-a", int32(15), int32(3)
	ref := &coordv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: "l", Namespace: "kube-system"},
		Spec:       coordv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &dur, AcquireTime: &at, RenewTime: &at, LeaseTransitions: &tr},
	}
	var ours Lease
	convert(t, ref, &ours)
	if !ours.Spec.RenewTime.Equal(at.Time) {
		t.Errorf("microtime: %v, want %v", ours.Spec.RenewTime, at)
	}
	var back coordv1.Lease
	convert(t, &ours, &back)
	if !reflect.DeepEqual(back.Spec.HolderIdentity, ref.Spec.HolderIdentity) || !back.Spec.RenewTime.Equal(ref.Spec.RenewTime) ||
		!back.Spec.AcquireTime.Equal(ref.Spec.AcquireTime) || *back.Spec.LeaseTransitions != 3 || *back.Spec.LeaseDurationSeconds != 15 {
		t.Errorf("round trip differs:\n got %+v\nwant %+v", back.Spec, ref.Spec)
	}
}

func TestEvent_JSON_MatchesK8sAPI(t *testing.T) {
	now := metav1.NewTime(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))
	ref := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "n.1", Namespace: "default"},
		InvolvedObject: corev1.ObjectReference{Kind: "Node", Name: "n", UID: "u", APIVersion: "v1"},
		Reason:         "AllocIPFailed", Message: "vsw-1 out of IPs", Type: corev1.EventTypeWarning,
		Source:         corev1.EventSource{Component: "veni", Host: "n"},
		FirstTimestamp: now, LastTimestamp: now, Count: 4,
		Series:              &corev1.EventSeries{Count: 4, LastObservedTime: metav1.NewMicroTime(now.Time)},
		ReportingController: "veni", ReportingInstance: "veni-n",
	}
	var ours Event
	convert(t, ref, &ours)
	var back corev1.Event
	convert(t, &ours, &back)
	// reportingComponent is the JSON name of ReportingController.
	if back.ReportingController != "veni" || back.Count != 4 || back.Series.Count != 4 ||
		!back.LastTimestamp.Equal(&now) || back.InvolvedObject != ref.InvolvedObject || back.Source != ref.Source {
		t.Errorf("round trip differs:\n got %+v\nwant %+v", back, ref)
	}
}

func TestTime_JSON_Null(t *testing.T) {
	var m ObjectMeta
	if err := json.Unmarshal([]byte(`{"creationTimestamp":null,"deletionTimestamp":null}`), &m); err != nil {
		t.Fatal(err)
	}
	if !m.CreationTimestamp.IsZero() || m.DeletionTimestamp != nil {
		t.Errorf("null times: %+v", m)
	}
	b, _ := json.Marshal(ObjectMeta{Name: "x"})
	if string(b) != `{"name":"x"}` {
		t.Errorf("zero times must be omitted: %s", b)
	}
}
