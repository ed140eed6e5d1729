package podnetwork

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/veni-cni/veni/kube"
	"github.com/veni-cni/veni/store"
)

// Pod annotations Terway's webhook and controller write, read and written
// here under the same names.
const (
	// AnnotationPodNetworking names the PodNetworking a pod uses.
	AnnotationPodNetworking = "k8s.aliyun.com/pod-networking"
	// AnnotationPodENI is "true" on a pod that has a dedicated ENI.
	AnnotationPodENI = "k8s.aliyun.com/pod-eni"
	// AnnotationIPReservation keeps a shared-ENI pod's address for it
	// after it goes, so the pod recreated on this node in time gets it
	// back: "true" for DefaultStick, a duration ("10m") for that long,
	// "false" not even for a StatefulSet's pod (which sticks by default).
	AnnotationIPReservation = "k8s.aliyun.com/pod-ip-reservation"
)

// DefaultStick is how long a released address waits for its pod
// (Terway's defaultStickTimeForSts).
const DefaultStick = 5 * time.Minute

// Kind is the kind of network a pod asks for.
type Kind string

// Kinds.
const (
	// Shared: an address of the node's shared ENIs (no PodNetworking
	// selects the pod).
	Shared Kind = ""
	// NodeDefault: a dedicated ENI of the node's kind (eniType Default):
	// a member on a trunk node, an exclusive ENI on an exclusive node.
	NodeDefault Kind = "Default"
	// Exclusive: an ENI of the pod's own, moved into its namespace.
	Exclusive Kind = "ENI"
	// Member: a member ENI on the node's trunk.
	Member Kind = "Trunk"
)

// DefaultReleaseAfter is how long a Fixed allocation with the TTL
// strategy and no releaseAfter outlives its pod (Terway's default).
const DefaultReleaseAfter = 5 * time.Minute

// Request is what a pod asks for.
type Request struct {
	// Networking is the PodNetworking that selected the pod; "" when none.
	Networking string
	Kind       Kind
	// SecurityGroupIDs and VSwitchIDs are the PodNetworking's; empty
	// means the node's (eni_conf).
	SecurityGroupIDs []string
	VSwitchIDs       []string
	// Fixed keeps the dedicated ENI (and so its address) for the pod's
	// next incarnation: for ReleaseAfter after the pod is gone, or for
	// ever when ReleaseNever.
	Fixed        bool
	ReleaseNever bool
	ReleaseAfter time.Duration
	// StickFor is how long the pod's shared-ENI addresses stay kept for
	// it once it goes (AnnotationIPReservation, StatefulSets); zero: they
	// go straight back to the pool.
	StickFor time.Duration
}

// Dedicated reports whether the pod asks for an ENI of its own.
func (r Request) Dedicated() bool { return r.Kind != Shared }

// FixedPolicy is what the store keeps with a fixed pod's ENI (its release
// strategy and PodNetworking), nil when the pod does not ask for a fixed
// IP.
func (r Request) FixedPolicy() *store.Fixed {
	if !r.Fixed {
		return nil
	}
	return &store.Fixed{Networking: r.Networking, Never: r.ReleaseNever, ReleaseAfter: r.ReleaseAfter}
}

// Errors of Resolve.
var (
	// ErrPodUnknown: PodNetworkings exist but the pod's labels are not
	// known yet (the daemon has not mirrored it), so it cannot be told
	// whether one selects it. An ADD should fail with "try again later"
	// rather than give a pod the wrong network for its whole life.
	ErrPodUnknown = errors.New("pod not known yet")
	// ErrInvalid: a PodNetworking cannot be used as written, or two
	// select the same pod.
	ErrInvalid = errors.New("invalid PodNetworking")
)

// Parse decodes a stored PodNetworking and checks what veni relies on.
func Parse(raw []byte) (kube.PodNetworking, error) {
	var pn kube.PodNetworking
	if err := json.Unmarshal(raw, &pn); err != nil {
		return pn, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return pn, Validate(&pn)
}

// Validate checks a PodNetworking the way Terway's webhook does, plus what
// veni needs: a known eniType and allocation, a parseable releaseAfter,
// valid selectors, at most 10 security groups.
func Validate(pn *kube.PodNetworking) error {
	fail := func(format string, a ...any) error {
		return fmt.Errorf("%w %q: %s", ErrInvalid, pn.Name, fmt.Sprintf(format, a...))
	}
	if pn.Name == "" {
		return fmt.Errorf("%w: no metadata.name", ErrInvalid)
	}
	switch pn.Spec.ENIOptions.ENIType {
	case "", kube.ENITypeDefault, kube.ENITypeENI, kube.ENITypeTrunk:
	default:
		return fail("eniOptions.eniType %q: want Default, ENI or Trunk", pn.Spec.ENIOptions.ENIType)
	}
	a := pn.Spec.AllocationType
	switch a.Type {
	case "", kube.AllocationElastic:
		if a.ReleaseStrategy != "" || a.ReleaseAfter != "" {
			return fail("allocationType: releaseStrategy and releaseAfter apply to type Fixed only")
		}
	case kube.AllocationFixed:
		switch a.ReleaseStrategy {
		case "", kube.ReleaseTTL:
			if a.ReleaseAfter != "" {
				if d, err := time.ParseDuration(a.ReleaseAfter); err != nil || d <= 0 {
					return fail("allocationType.releaseAfter %q: want a positive duration such as 5m0s", a.ReleaseAfter)
				}
			}
		case kube.ReleaseNever:
			if a.ReleaseAfter != "" {
				return fail("allocationType.releaseAfter with releaseStrategy Never")
			}
		default:
			return fail("allocationType.releaseStrategy %q: want TTL or Never", a.ReleaseStrategy)
		}
	default:
		return fail("allocationType.type %q: want Elastic or Fixed", a.Type)
	}
	if n := len(pn.Spec.SecurityGroupIDs); n > 10 {
		return fail("%d securityGroupIDs: at most 10", n)
	}
	for _, id := range pn.Spec.SecurityGroupIDs {
		if !strings.HasPrefix(id, "sg-") {
			return fail("securityGroupIDs: %q is not a security group id (sg-...)", id)
		}
	}
	for _, id := range pn.Spec.VSwitchOptions {
		if !strings.HasPrefix(id, "vsw-") {
			return fail("vSwitchOptions: %q is not a vSwitch id (vsw-...)", id)
		}
	}
	for what, sel := range map[string]*kube.LabelSelector{"podSelector": pn.Spec.Selector.PodSelector, "namespaceSelector": pn.Spec.Selector.NamespaceSelector} {
		if sel != nil {
			if err := sel.Validate(); err != nil {
				return fail("selector.%s: %v", what, err)
			}
		}
	}
	return nil
}

// Selects reports whether pn selects a pod with these labels in a
// namespace with these labels.
func Selects(pn *kube.PodNetworking, podLabels, nsLabels map[string]string) bool {
	s := pn.Spec.Selector
	if s.PodSelector == nil && s.NamespaceSelector == nil {
		return false
	}
	if s.PodSelector != nil && !s.PodSelector.Matches(podLabels) {
		return false
	}
	return s.NamespaceSelector == nil || s.NamespaceSelector.Matches(nsLabels)
}

// RequestOf is what pn asks for.
func RequestOf(pn *kube.PodNetworking) Request {
	r := Request{
		Networking:       pn.Name,
		Kind:             Kind(pn.Spec.ENIOptions.ENIType),
		SecurityGroupIDs: slices.Clone(pn.Spec.SecurityGroupIDs),
		VSwitchIDs:       slices.Clone(pn.Spec.VSwitchOptions),
	}
	if r.Kind == Shared {
		r.Kind = NodeDefault
	}
	if a := pn.Spec.AllocationType; a.Type == kube.AllocationFixed {
		r.Fixed = true
		r.ReleaseNever = a.ReleaseStrategy == kube.ReleaseNever
		if !r.ReleaseNever {
			r.ReleaseAfter = DefaultReleaseAfter
			if d, err := time.ParseDuration(a.ReleaseAfter); err == nil && d > 0 {
				r.ReleaseAfter = d
			}
		}
	}
	return r
}

// Select returns what a pod with podLabels and podAnnotations in a
// namespace with nsLabels asks for, given every PodNetworking.
func Select(pns []kube.PodNetworking, podLabels, podAnnotations, nsLabels map[string]string) (Request, error) {
	if name := podAnnotations[AnnotationPodNetworking]; name != "" {
		for i := range pns {
			if pns[i].Name == name {
				return RequestOf(&pns[i]), nil
			}
		}
		return Request{}, fmt.Errorf("%w: pod is annotated %s=%s and no such PodNetworking exists", ErrInvalid, AnnotationPodNetworking, name)
	}
	var hit *kube.PodNetworking
	for i := range pns {
		if !Selects(&pns[i], podLabels, nsLabels) {
			continue
		}
		if hit != nil {
			return Request{}, fmt.Errorf("%w: PodNetworkings %q and %q both select the pod; make their selectors disjoint", ErrInvalid, hit.Name, pns[i].Name)
		}
		hit = &pns[i]
	}
	if hit == nil {
		return Request{}, nil
	}
	return RequestOf(hit), nil
}

// Resolve returns what pod namespace/name asks for, from what tx's store
// holds: the PodNetworkings and the pod's and its namespace's labels, from
// the Kubernetes mirror and the manifest folders. With no PodNetworking
// stored it asks for the shared network without looking further.
//
// May return an error wrapping ErrPodUnknown or ErrInvalid.
func Resolve(tx *store.ReadTx, namespace, name string) (Request, error) {
	raws, err := tx.MirrorPodNetworkings()
	if err != nil {
		return Request{}, err
	}
	srcPNs, err := tx.SourcePodNetworkings()
	if err != nil {
		return Request{}, err
	}
	raws = append(raws, srcPNs...)
	pod, found, err := findPod(tx, namespace, name)
	if err != nil {
		return Request{}, err
	}
	var stick time.Duration
	if found {
		if stick, err = StickFor(pod); err != nil {
			return Request{}, err
		}
	}
	if len(raws) == 0 {
		return Request{StickFor: stick}, nil
	}
	pns := make([]kube.PodNetworking, 0, len(raws))
	for _, r := range raws {
		pn, err := Parse(r.Raw)
		if err != nil {
			// An API server accepted it (or a folder holds it): the pods
			// it would select cannot be told apart from the others, so
			// no pod may be given a network while it stands.
			return Request{}, err
		}
		pns = append(pns, pn)
	}
	if !found {
		return Request{}, fmt.Errorf("%w: %d PodNetworking(s) exist and pod %s/%s is not mirrored yet", ErrPodUnknown, len(pns), namespace, name)
	}
	nsLabels, err := namespaceLabels(tx, namespace)
	if err != nil {
		return Request{}, err
	}
	r, err := Select(pns, pod.Labels, pod.Annotations, nsLabels)
	if err != nil {
		return r, err
	}
	if !r.Dedicated() {
		r.StickFor = stick
	}
	return r, nil
}

// StickFor is how long pod's shared-ENI addresses wait for it once it
// goes: AnnotationIPReservation's, else DefaultStick for a StatefulSet's
// pod, else zero. May return an error wrapping ErrInvalid for an
// annotation that is neither a boolean nor a duration.
func StickFor(pod store.Pod) (time.Duration, error) {
	v, ok := pod.Annotations[AnnotationIPReservation]
	switch {
	case !ok:
		if pod.Stateful {
			return DefaultStick, nil
		}
		return 0, nil
	case v == "true":
		return DefaultStick, nil
	case v == "false":
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 || d > 24*time.Hour {
		return 0, fmt.Errorf("%w: pod %s/%s: annotation %s=%q: want true, false or a duration up to 24h such as 10m",
			ErrInvalid, pod.Namespace, pod.Name, AnnotationIPReservation, v)
	}
	return d, nil
}

// findPod looks the pod up in the Kubernetes mirror, then in the folders.
func findPod(tx *store.ReadTx, namespace, name string) (store.Pod, bool, error) {
	for _, get := range []func(string, string) (store.Pod, error){tx.MirrorPod, tx.SourcePod} {
		p, err := get(namespace, name)
		switch {
		case err == nil:
			return p, true, nil
		case !errors.Is(err, store.ErrNotFound):
			return p, false, err
		}
	}
	return store.Pod{}, false, nil
}

// namespaceLabels returns the namespace's labels, with the
// kubernetes.io/metadata.name label the API server always sets.
func namespaceLabels(tx *store.ReadTx, namespace string) (map[string]string, error) {
	nss, err := tx.MirrorNamespaces()
	if err != nil {
		return nil, err
	}
	src, err := tx.SourceNamespaces()
	if err != nil {
		return nil, err
	}
	labels := map[string]string{}
	for _, ns := range append(nss, src...) {
		if ns.Name == namespace {
			maps.Copy(labels, ns.Labels)
		}
	}
	labels["kubernetes.io/metadata.name"] = namespace
	return labels, nil
}
