package store

import (
	"time"
)

// The Kubernetes mirror: what the daemon learned from the API server that
// a CNI call may need (a pod's labels, container ports and annotations,
// namespaces' labels, network policies), so that an ADD never waits for
// the API server and keeps working while the daemon is down. Only the
// daemon writes it; it is a cache, rebuilt from the API server's lists
// whenever the daemon starts.

// Pod is a pod scheduled on this node, as the API server last said.
type Pod struct {
	Namespace   string            `json:"namespace"`
	Name        string            `json:"name"`
	UID         string            `json:"uid"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"` // only those veni reads (see the daemon)
	Ports       []PodPort         `json:"ports,omitempty"`       // container ports, for named ports in policies
	HostNetwork bool              `json:"hostNetwork,omitempty"`
	Phase       string            `json:"phase,omitempty"`
	// Stateful is set for a pod a StatefulSet owns: it comes back under
	// the same name, and keeps its address if it does so in time.
	Stateful bool `json:"stateful,omitempty"`
	// Created is the pod's creationTimestamp; Mirrored when the daemon
	// wrote this record (their difference is the mirror's lag).
	Created  time.Time `json:"created,omitzero"`
	Mirrored time.Time `json:"mirrored"`
}

// PodPort is one named or numbered container port.
type PodPort struct {
	Name     string `json:"name,omitempty"`
	Port     int32  `json:"port"`
	Protocol string `json:"protocol"` // TCP, UDP, SCTP
}

// PodKey is the mirror's key of a pod: "namespace/name".
func PodKey(namespace, name string) string { return namespace + "/" + name }

// Namespace is a namespace's labels, for namespace selectors.
type Namespace struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
}

// Policy is a NetworkPolicy as the API server serves it (networking.k8s.io/v1
// JSON), kept whole for the policy enforcer.
type Policy struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	UID       string `json:"uid"`
	Raw       []byte `json:"raw"` // the object's JSON
}

// MirrorPod returns the mirrored pod namespace/name, or an error wrapping
// ErrNotFound.
func (t *ReadTx) MirrorPod(namespace, name string) (Pod, error) {
	return get[Pod](t, bucketPods, []byte(PodKey(namespace, name)), "pod")
}

// MirrorPods returns every mirrored pod, ordered by namespace/name.
func (t *ReadTx) MirrorPods() ([]Pod, error) { return list[Pod](t, bucketPods) }

// PutMirrorPod records p.
func (t *WriteTx) PutMirrorPod(p Pod) error {
	return put(t, bucketPods, []byte(PodKey(p.Namespace, p.Name)), p)
}

// DeleteMirrorPod forgets a pod; an unknown one is no error.
func (t *WriteTx) DeleteMirrorPod(namespace, name string) error {
	return t.tx.Bucket(bucketPods).Delete([]byte(PodKey(namespace, name)))
}

// MirrorNamespaces returns every mirrored namespace, ordered by name.
func (t *ReadTx) MirrorNamespaces() ([]Namespace, error) { return list[Namespace](t, bucketNS) }

// PutMirrorNamespace records ns.
func (t *WriteTx) PutMirrorNamespace(ns Namespace) error {
	return put(t, bucketNS, []byte(ns.Name), ns)
}

// DeleteMirrorNamespace forgets a namespace.
func (t *WriteTx) DeleteMirrorNamespace(name string) error {
	return t.tx.Bucket(bucketNS).Delete([]byte(name))
}

// MirrorPolicies returns every mirrored network policy, ordered by
// namespace/name.
func (t *ReadTx) MirrorPolicies() ([]Policy, error) { return list[Policy](t, bucketPolicy) }

// PutMirrorPolicy records p.
func (t *WriteTx) PutMirrorPolicy(p Policy) error {
	return put(t, bucketPolicy, []byte(PodKey(p.Namespace, p.Name)), p)
}

// DeleteMirrorPolicy forgets a network policy.
func (t *WriteTx) DeleteMirrorPolicy(namespace, name string) error {
	return t.tx.Bucket(bucketPolicy).Delete([]byte(PodKey(namespace, name)))
}

// PodNetworking is a network.alibabacloud.com/v1beta1 PodNetworking as
// the API server serves it (cluster-scoped), kept whole for package
// podnetwork.
type PodNetworking struct {
	Name string `json:"name"`
	UID  string `json:"uid,omitempty"`
	Raw  []byte `json:"raw"` // the object's JSON
}

// MirrorPodNetworkings returns every mirrored PodNetworking, by name.
func (t *ReadTx) MirrorPodNetworkings() ([]PodNetworking, error) {
	return list[PodNetworking](t, bucketPodNetworkings)
}

// PutMirrorPodNetworking records p.
func (t *WriteTx) PutMirrorPodNetworking(p PodNetworking) error {
	return put(t, bucketPodNetworkings, []byte(p.Name), p)
}

// DeleteMirrorPodNetworking forgets a PodNetworking.
func (t *WriteTx) DeleteMirrorPodNetworking(name string) error {
	return t.tx.Bucket(bucketPodNetworkings).Delete([]byte(name))
}
