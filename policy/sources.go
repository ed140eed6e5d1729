package policy

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/veni-cni/veni/kube"
	"github.com/veni-cni/veni/store"
)

// AnnotationPodIPs is the pod annotation veni (like Terway) writes with a
// pod's addresses, "10.0.1.5" or "10.0.1.5,fd00::5". It is read when the
// pod's status has none yet (the status lags the annotation) and in
// manifests, where a status is awkward to write. Same name as
// kubesync.AnnotationPodIPs, not imported to keep this package light.
const AnnotationPodIPs = "k8s.aliyun.com/pod-ips"

// FromKube builds a snapshot from the API server's objects (the daemon's
// informer caches). Nodes may be only the local one: node addresses serve
// the kubelet-probe exemption of that node's pods and name addresses in
// traces. A policy it cannot read is enforced closed
// (Input.FailClosedOnInvalid) and named in Warnings. May return an error
// wrapping ErrInvalidObject.
func FromKube(pods []*kube.Pod, namespaces []*kube.Namespace, policies []*kube.NetworkPolicy, nodes []*kube.Node) (*Snapshot, error) {
	in := Input{FailClosedOnInvalid: true}
	var errs []error
	for _, p := range pods {
		pod, err := PodFromKube(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		in.Pods = append(in.Pods, pod)
	}
	for _, n := range namespaces {
		in.Namespaces = append(in.Namespaces, Namespace{Name: n.Name, Labels: n.Labels})
	}
	for _, p := range policies {
		in.Policies = append(in.Policies, *p)
	}
	for _, n := range nodes {
		node, err := NodeFromKube(n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		in.Nodes = append(in.Nodes, node)
	}
	if len(errs) > 0 {
		return nil, joinErrors(errs)
	}
	return New(in)
}

// PodFromKube converts a core/v1 Pod. Its addresses come from
// status.podIPs, else status.podIP, else AnnotationPodIPs; a pod that
// finished (Succeeded, Failed) has none, since its address may already be
// another pod's. May return an error wrapping ErrInvalidObject.
func PodFromKube(p *kube.Pod) (Pod, error) {
	ns := p.Namespace
	if ns == "" {
		ns = "default"
	}
	out := Pod{Namespace: ns, Name: p.Name, Labels: p.Labels, HostNetwork: p.Spec.HostNetwork, Node: p.Spec.NodeName,
		Annotations: p.Annotations,
		Stateful:    slices.ContainsFunc(p.OwnerReferences, func(o kube.OwnerReference) bool { return o.Kind == "StatefulSet" })}
	bad := func(format string, a ...any) (Pod, error) {
		return Pod{}, fmt.Errorf("pod %s/%s: %w: %w", ns, p.Name, ErrInvalidObject, fmt.Errorf(format, a...))
	}
	for _, c := range p.Spec.Containers {
		for _, cp := range c.Ports {
			proto, err := ParseProtocol(cp.Protocol)
			if err != nil {
				return bad("container %s: %w", c.Name, err)
			}
			if cp.ContainerPort < 1 || cp.ContainerPort > 65535 {
				return bad("container %s: port %d out of 1-65535", c.Name, cp.ContainerPort)
			}
			out.Ports = append(out.Ports, ContainerPort{Name: cp.Name, Port: uint16(cp.ContainerPort), Protocol: proto})
		}
	}
	if p.Status.Phase == kube.PodSucceeded || p.Status.Phase == kube.PodFailed {
		return out, nil
	}
	var raw []string
	switch {
	case len(p.Status.PodIPs) > 0:
		for _, ip := range p.Status.PodIPs {
			raw = append(raw, ip.IP)
		}
	case p.Status.PodIP != "":
		raw = []string{p.Status.PodIP}
	case p.Annotations[AnnotationPodIPs] != "":
		raw = strings.Split(p.Annotations[AnnotationPodIPs], ",")
	}
	ips, err := parseAddrs(raw)
	if err != nil {
		return bad("%w", err)
	}
	out.IPs = ips
	return out, nil
}

// NodeFromKube converts a core/v1 Node: its InternalIP addresses, the
// source of its kubelet's probes. (An ExternalIP on Alibaba Cloud is an
// EIP translated outside the host; no packet carries it here.)
func NodeFromKube(n *kube.Node) (Node, error) {
	out := Node{Name: n.Name}
	var raw []string
	for _, a := range n.Status.Addresses {
		if a.Type == "InternalIP" {
			raw = append(raw, a.Address)
		}
	}
	ips, err := parseAddrs(raw)
	if err != nil {
		return Node{}, fmt.Errorf("node %s: %w: %w", n.Name, ErrInvalidObject, err)
	}
	out.IPs = ips
	return out, nil
}

func parseAddrs(raw []string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, s := range raw {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("address %q: %w", s, err)
		}
		out = append(out, ip.Unmap())
	}
	return out, nil
}

// Mirror is what the store's Kubernetes mirror holds, as a CNI ADD reads
// it in one read transaction, plus what the mirror does not hold.
type Mirror struct {
	// Node is this node; every mirrored pod is on it.
	Node Node
	// Pods, Namespaces and Policies are the mirror's records
	// (ReadTx.MirrorPods, MirrorNamespaces, MirrorPolicies).
	Pods       []store.Pod
	Namespaces []store.Namespace
	Policies   []store.Policy
	// Allocations give this node's pods their addresses before the
	// annotation the daemon writes reaches the mirror (ReadTx.Allocations).
	Allocations []store.Allocation
	// Remote are pods of other nodes. The mirror keeps only this node's
	// pods, so without them a selector peer matches only local pods and
	// remote peers stay denied until the daemon supplies them (allow
	// rules apply eventually, which Kubernetes permits; nothing is
	// allowed that should not be).
	Remote []Pod
	// OtherNodes are other nodes' addresses, for traces.
	OtherNodes []Node
}

// podIPs returns the addresses of mirrored pod p whose allocations hold
// allocated.
func (m Mirror) podIPs(p store.Pod, allocated []netip.Addr) ([]netip.Addr, error) {
	switch {
	case p.Phase == kube.PodSucceeded || p.Phase == kube.PodFailed:
		return nil, nil
	case len(allocated) > 0:
		return allocated, nil
	case p.HostNetwork:
		return m.Node.IPs, nil
	}
	ips, err := parseAddrs(strings.Split(p.Annotations[AnnotationPodIPs], ","))
	if err != nil {
		return ips, fmt.Errorf("mirrored pod %s: %w: %w", store.PodKey(p.Namespace, p.Name), ErrInvalidObject, err)
	}
	return ips, nil
}

// PodIPs returns the addresses pod ref of m.Pods has in FromMirror(m)'s
// snapshot (unmapped, sorted, without repeats), or false when m.Pods
// does not hold it: a caller whose mirror changed only in its
// allocations takes a pod's new addresses without building a snapshot.
func (m Mirror) PodIPs(ref PodRef) ([]netip.Addr, bool, error) {
	i := slices.IndexFunc(m.Pods, func(p store.Pod) bool { return p.Namespace == ref.Namespace && p.Name == ref.Name })
	if i < 0 {
		return nil, false, nil
	}
	var allocated []netip.Addr
	for _, a := range m.Allocations {
		if a.PodNamespace == ref.Namespace && a.PodName == ref.Name && (a.State == store.IPReserved || a.State == store.IPBound) && a.IP.IsValid() {
			allocated = append(allocated, a.IP.Unmap())
		}
	}
	ips, err := m.podIPs(m.Pods[i], allocated)
	if err != nil {
		return nil, true, err
	}
	var out []netip.Addr
	for _, ip := range ips { // as the snapshot keeps them (Snapshot.addPod)
		if ip = ip.Unmap(); !slices.Contains(out, ip) {
			out = append(out, ip)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out, true, nil
}

// FromMirror builds a snapshot from the store's mirror records. A mirrored
// pod's addresses are those of its allocations (reserved or bound), else
// those of AnnotationPodIPs; finished pods have none. A policy it cannot
// read is enforced closed (Input.FailClosedOnInvalid); one whose JSON does
// not even decode isolates its whole namespace both ways. Both are in
// Warnings. May return an error wrapping ErrInvalidObject.
func FromMirror(m Mirror) (*Snapshot, error) {
	in := Input{Nodes: append([]Node{m.Node}, m.OtherNodes...), FailClosedOnInvalid: true}
	var unreadable []string
	byPod := make(map[string][]netip.Addr)
	for _, a := range m.Allocations {
		if a.PodName == "" || a.State != store.IPReserved && a.State != store.IPBound || !a.IP.IsValid() {
			continue
		}
		key := store.PodKey(a.PodNamespace, a.PodName)
		byPod[key] = append(byPod[key], a.IP.Unmap())
	}
	var errs []error
	for _, p := range m.Pods {
		pod := Pod{Namespace: p.Namespace, Name: p.Name, Labels: p.Labels, HostNetwork: p.HostNetwork, Node: m.Node.Name}
		for _, cp := range p.Ports {
			proto, err := ParseProtocol(cp.Protocol)
			if err != nil || cp.Port < 1 || cp.Port > 65535 {
				errs = append(errs, fmt.Errorf("mirrored pod %s: port %d/%s: %w", store.PodKey(p.Namespace, p.Name), cp.Port, cp.Protocol, ErrInvalidObject))
				continue
			}
			pod.Ports = append(pod.Ports, ContainerPort{Name: cp.Name, Port: uint16(cp.Port), Protocol: proto})
		}
		ips, err := m.podIPs(p, byPod[store.PodKey(p.Namespace, p.Name)])
		if err != nil {
			errs = append(errs, err)
		}
		pod.IPs = ips
		in.Pods = append(in.Pods, pod)
	}
	in.Pods = append(in.Pods, m.Remote...)
	for _, n := range m.Namespaces {
		in.Namespaces = append(in.Namespaces, Namespace{Name: n.Name, Labels: n.Labels})
	}
	for _, p := range m.Policies {
		var np kube.NetworkPolicy
		if err := json.Unmarshal(p.Raw, &np); err != nil {
			// Its selection is unknown: closed for its whole namespace.
			unreadable = append(unreadable, fmt.Sprintf("mirrored policy %s: %v: %v: it isolates every pod of %s both ways and allows nothing",
				store.PodKey(p.Namespace, p.Name), ErrInvalidPolicy, err, p.Namespace))
			np = kube.NetworkPolicy{ObjectMeta: kube.ObjectMeta{Namespace: p.Namespace, Name: p.Name},
				Spec: kube.NetworkPolicySpec{PolicyTypes: []string{kube.PolicyTypeIngress, kube.PolicyTypeEgress}}}
		}
		in.Policies = append(in.Policies, np)
	}
	if len(errs) > 0 {
		return nil, joinErrors(errs)
	}
	s, err := New(in)
	if err != nil {
		return nil, err
	}
	s.warnings = append(unreadable, s.warnings...)
	return s, nil
}
