package policy

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/veni-cni/veni/kube"
)

// Input is everything a Snapshot is built from. New copies what it keeps;
// the caller may reuse Input afterwards.
type Input struct {
	// Policies are networking.k8s.io/v1 NetworkPolicies as the API server
	// serves them; New applies the server's defaulting (policyTypes,
	// protocol) itself, so manifests need not.
	Policies []kube.NetworkPolicy
	// Namespaces and their labels. A namespace only named by a pod or a
	// policy is known with just LabelNamespaceName.
	Namespaces []Namespace
	// Pods of the whole cluster: the endpoints to compile and the peers
	// selectors resolve to.
	Pods []Pod
	// Nodes and their addresses (kubelet probes, hostNetwork pods).
	Nodes []Node
	// PodNetworkings a manifest folder holds. The enforcer does not use
	// them: they ride with the folder's other objects to package
	// podnetwork, which decides which pods get a dedicated ENI.
	PodNetworkings []kube.PodNetworking
	// FailClosedOnInvalid makes a policy New cannot read isolate what it
	// selects and allow nothing (see Warnings) instead of failing New.
	// Set it for policies an API server has accepted, which veni must
	// enforce whatever it thinks of them (FromKube and FromMirror do);
	// leave it unset for manifests, whose author wants the error.
	FailClosedOnInvalid bool
}

// Snapshot is an immutable, validated view of policies, namespaces, pods
// and nodes, ready to compile endpoints from. It is safe for concurrent
// use: the indexes it builds on first use are guarded.
type Snapshot struct {
	policies []*npolicy                   // sorted by namespace/name
	byNS     map[string][]*npolicy        // policy namespace → its policies
	nsLabels map[string]map[string]string // namespace → labels
	pods     []*Pod                       // sorted by namespace/name
	podByRef map[PodRef]*Pod              // every pod
	podByIP  map[netip.Addr]*Pod          // pods on the pod network only
	nodes    map[string]*Node             // name → node
	nodeOf   map[netip.Addr]string        // node address → node name
	warnings []string                     // what New accepted but a human should know

	namedOnce sync.Once
	named     map[string][]*Pod // container port name → pods on the pod network declaring it
	identOnce sync.Once
	identID   map[*Pod]int32 // pod → index in identKeys
	identKeys []string       // every pod's IdentityOf, sorted, unique
}

// New validates in and builds a Snapshot. May return an error wrapping
// ErrInvalidPolicy or ErrInvalidObject; every invalid object is reported
// (errors joined), and no snapshot is returned then: an enforcer that
// cannot read a policy cannot know what it allows.
func New(in Input) (*Snapshot, error) {
	s := &Snapshot{
		byNS:     make(map[string][]*npolicy),
		nsLabels: make(map[string]map[string]string),
		podByRef: make(map[PodRef]*Pod, len(in.Pods)),
		podByIP:  make(map[netip.Addr]*Pod, len(in.Pods)),
		nodes:    make(map[string]*Node, len(in.Nodes)),
		nodeOf:   make(map[netip.Addr]string),
	}
	var errs []error
	for _, n := range in.Namespaces {
		if n.Name == "" {
			errs = append(errs, fmt.Errorf("namespace without a name: %w", ErrInvalidObject))
			continue
		}
		if _, dup := s.nsLabels[n.Name]; dup {
			errs = append(errs, fmt.Errorf("namespace %s given twice: %w", n.Name, ErrInvalidObject))
			continue
		}
		labels := maps.Clone(n.Labels)
		if labels == nil {
			labels = make(map[string]string, 1)
		}
		labels[LabelNamespaceName] = n.Name
		s.nsLabels[n.Name] = labels
	}
	for _, n := range in.Nodes {
		if err := s.addNode(n); err != nil {
			errs = append(errs, err)
		}
	}
	for i := range in.Pods {
		if err := s.addPod(in.Pods[i]); err != nil {
			errs = append(errs, err)
		}
	}
	seen := make(map[string]bool, len(in.Policies))
	for i := range in.Policies {
		np, err := parsePolicy(&in.Policies[i])
		if err != nil && in.FailClosedOnInvalid {
			np = failClosedPolicy(&in.Policies[i])
			s.warnings = append(s.warnings, fmt.Sprintf("%v: it isolates the pods it selects and allows nothing", err))
		} else if err != nil {
			errs = append(errs, err)
			continue
		}
		if seen[np.ref] {
			errs = append(errs, fmt.Errorf("policy %s given twice: %w", np.ref, ErrInvalidPolicy))
			continue
		}
		seen[np.ref] = true
		s.policies = append(s.policies, np)
		s.ensureNamespace(np.namespace)
	}
	if len(errs) > 0 {
		return nil, joinErrors(errs)
	}
	slices.SortFunc(s.policies, func(a, b *npolicy) int { return strings.Compare(a.ref, b.ref) })
	for _, np := range s.policies {
		s.byNS[np.namespace] = append(s.byNS[np.namespace], np)
	}
	slices.SortFunc(s.pods, func(a, b *Pod) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
	for _, p := range s.pods {
		if p.HostNetwork {
			continue
		}
		for _, ip := range p.IPs {
			if other, dup := s.podByIP[ip]; dup {
				s.warnings = append(s.warnings, fmt.Sprintf("address %s held by pods %s and %s: a peer lookup by address sees %s", ip, other.Ref(), p.Ref(), other.Ref()))
				continue
			}
			if node, isNode := s.nodeOf[ip]; isNode {
				s.warnings = append(s.warnings, fmt.Sprintf("address %s of pod %s is also node %s's", ip, p.Ref(), node))
			}
			s.podByIP[ip] = p
		}
	}
	return s, nil
}

func joinErrors(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	// Keep every cause for errors.Is while printing one per line.
	return &multiError{errs: errs, msg: strings.Join(msgs, "\n")}
}

type multiError struct {
	errs []error
	msg  string
}

func (m *multiError) Error() string   { return m.msg }
func (m *multiError) Unwrap() []error { return m.errs }

func (s *Snapshot) ensureNamespace(name string) {
	if _, ok := s.nsLabels[name]; !ok {
		s.nsLabels[name] = map[string]string{LabelNamespaceName: name}
	}
}

func (s *Snapshot) addNode(n Node) error {
	if n.Name == "" {
		return fmt.Errorf("node without a name: %w", ErrInvalidObject)
	}
	if _, dup := s.nodes[n.Name]; dup {
		return fmt.Errorf("node %s given twice: %w", n.Name, ErrInvalidObject)
	}
	c := &Node{Name: n.Name}
	for _, ip := range n.IPs {
		if !ip.IsValid() {
			return fmt.Errorf("node %s: invalid address: %w", n.Name, ErrInvalidObject)
		}
		ip = ip.Unmap()
		c.IPs = append(c.IPs, ip)
		s.nodeOf[ip] = n.Name
	}
	s.nodes[n.Name] = c
	return nil
}

func (s *Snapshot) addPod(p Pod) error {
	if p.Name == "" {
		return fmt.Errorf("pod without a name in namespace %q: %w", p.Namespace, ErrInvalidObject)
	}
	if p.Namespace == "" {
		p.Namespace = "default"
	}
	ref := p.Ref()
	if _, dup := s.podByRef[ref]; dup {
		return fmt.Errorf("pod %s given twice: %w", ref, ErrInvalidObject)
	}
	c := &Pod{Namespace: p.Namespace, Name: p.Name, Labels: maps.Clone(p.Labels), HostNetwork: p.HostNetwork, Node: p.Node}
	if c.Labels == nil {
		c.Labels = map[string]string{}
	}
	for _, ip := range p.IPs {
		if !ip.IsValid() {
			return fmt.Errorf("pod %s: invalid address: %w", ref, ErrInvalidObject)
		}
		ip = ip.Unmap()
		if !slices.Contains(c.IPs, ip) {
			c.IPs = append(c.IPs, ip)
		}
	}
	slices.SortFunc(c.IPs, netip.Addr.Compare)
	for _, cp := range p.Ports {
		if cp.Port == 0 {
			return fmt.Errorf("pod %s: container port %q: number 0: %w", ref, cp.Name, ErrInvalidObject)
		}
		if !cp.Protocol.HasPorts() {
			return fmt.Errorf("pod %s: container port %d: protocol %s: %w", ref, cp.Port, cp.Protocol, ErrInvalidObject)
		}
		c.Ports = append(c.Ports, cp)
	}
	s.pods = append(s.pods, c)
	s.podByRef[ref] = c
	s.ensureNamespace(c.Namespace)
	return nil
}

// Warnings returns what New accepted but a human should know: an address
// held by two pods, a pod address that is also a node's, a policy it
// could not read and enforces closed.
func (s *Snapshot) Warnings() []string { return slices.Clone(s.warnings) }

// Pod returns a copy of the pod namespace/name, or false.
func (s *Snapshot) Pod(ref PodRef) (Pod, bool) {
	p, ok := s.podByRef[ref]
	if !ok {
		return Pod{}, false
	}
	return *p, true
}

// Pods returns the snapshot's pods, ordered by namespace/name. They are
// shared with the snapshot: read-only.
func (s *Snapshot) Pods() []*Pod { return slices.Clone(s.pods) }

// PodByIP returns the pod on the pod network holding ip, or false.
func (s *Snapshot) PodByIP(ip netip.Addr) (PodRef, bool) {
	p, ok := s.podByIP[ip.Unmap()]
	if !ok {
		return PodRef{}, false
	}
	return p.Ref(), true
}

// NodeByIP returns the node holding ip, or false.
func (s *Snapshot) NodeByIP(ip netip.Addr) (string, bool) {
	n, ok := s.nodeOf[ip.Unmap()]
	return n, ok
}

// PolicyNames returns "namespace/name" of every policy, sorted.
func (s *Snapshot) PolicyNames() []string {
	out := make([]string, len(s.policies))
	for i, p := range s.policies {
		out[i] = p.ref
	}
	return out
}

// namedPods returns the pods on the pod network that declare a container
// port called name, in snapshot order (egress named ports resolve on the
// destination pod).
func (s *Snapshot) namedPods(name string) []*Pod {
	s.namedOnce.Do(func() {
		s.named = make(map[string][]*Pod)
		for _, p := range s.pods {
			if p.HostNetwork {
				continue
			}
			var seen []string
			for _, cp := range p.Ports {
				if cp.Name != "" && !slices.Contains(seen, cp.Name) {
					seen = append(seen, cp.Name)
					s.named[cp.Name] = append(s.named[cp.Name], p)
				}
			}
		}
	})
	return s.named[name]
}

// selects reports whether np applies to pod p: same namespace, the pod
// selector matches, and p is on the pod network.
func (np *npolicy) selects(p *Pod) bool {
	return !p.HostNetwork && p.Namespace == np.namespace && np.podSelector.Matches(p.Labels)
}

// peerPods returns the pods a selector peer of np matches, computed once.
func (s *Snapshot) peerPods(np *npolicy, pr *peer) []*Pod {
	pr.once.Do(func() {
		for _, p := range s.pods {
			if p.HostNetwork {
				continue
			}
			if pr.nsSelector == nil {
				if p.Namespace != np.namespace {
					continue
				}
			} else if !pr.nsSelector.Matches(s.nsLabels[p.Namespace]) {
				continue
			}
			if pr.podSelector != nil && !pr.podSelector.Matches(p.Labels) {
				continue
			}
			pr.pods = append(pr.pods, p)
		}
	})
	return pr.pods
}
