package policy

import (
	"fmt"
	"net/netip"
	"sync"

	"github.com/veni-cni/veni/kube"
)

// npolicy is a validated, defaulted NetworkPolicy.
type npolicy struct {
	ref         string // namespace/name
	namespace   string
	podSelector *kube.LabelSelector
	isIngress   bool // policyTypes has Ingress (after defaulting)
	isEgress    bool
	ingress     []rule // ignored unless isIngress
	egress      []rule // ignored unless isEgress
}

// rule is one ingress or egress rule.
type rule struct {
	allPorts bool // no ports: every protocol and port
	ports    []portSpec
	allPeers bool // no from/to: every peer
	peers    []*peer
}

// portSpec is one NetworkPolicyPort: a numeric range of a protocol, or a
// name resolved on the destination pod.
type portSpec struct {
	proto       Protocol
	name        string // named port; first/last unused
	first, last uint16 // 0-65535 when the port is omitted
}

// peer is one NetworkPolicyPeer: an ipBlock, or selectors.
type peer struct {
	block       bool
	cidr        netip.Prefix
	except      []netip.Prefix
	podSelector *kube.LabelSelector // nil: every pod of the namespaces
	nsSelector  *kube.LabelSelector // nil: the policy's namespace only

	once sync.Once
	pods []*Pod // what the selectors match; see Snapshot.peerPods
}

// parsePolicy validates p as the API server would and applies its
// defaulting. May return an error wrapping ErrInvalidPolicy.
func parsePolicy(p *kube.NetworkPolicy) (*npolicy, error) {
	ns := p.Namespace
	if ns == "" {
		ns = "default"
	}
	np := &npolicy{ref: ns + "/" + p.Name, namespace: ns}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("policy %s: %w: %w", np.ref, ErrInvalidPolicy, fmt.Errorf(format, a...))
	}
	if p.Name == "" {
		return nil, bad("no name")
	}
	sel := p.Spec.PodSelector
	if err := sel.Validate(); err != nil {
		return nil, bad("podSelector: %w", err)
	}
	np.podSelector = &sel
	if len(p.Spec.PolicyTypes) > 2 {
		return nil, bad("policyTypes: more than 2 values")
	}
	for _, t := range p.Spec.PolicyTypes {
		switch t {
		case kube.PolicyTypeIngress:
			np.isIngress = true
		case kube.PolicyTypeEgress:
			np.isEgress = true
		default:
			return nil, bad("policyTypes: %q is neither Ingress nor Egress", t)
		}
	}
	if len(p.Spec.PolicyTypes) == 0 {
		// The API server's defaulting: Ingress always, Egress when the
		// policy has egress rules (an empty list is none).
		np.isIngress = true
		np.isEgress = len(p.Spec.Egress) > 0
	}
	for i, r := range p.Spec.Ingress {
		nr, err := parseRule(r.Ports, r.From)
		if err != nil {
			return nil, bad("ingress[%d]: %w", i, err)
		}
		np.ingress = append(np.ingress, nr)
	}
	for i, r := range p.Spec.Egress {
		nr, err := parseRule(r.Ports, r.To)
		if err != nil {
			return nil, bad("egress[%d]: %w", i, err)
		}
		np.egress = append(np.egress, nr)
	}
	return np, nil
}

func parseRule(ports []kube.NetworkPolicyPort, peers []kube.NetworkPolicyPeer) (rule, error) {
	r := rule{allPorts: len(ports) == 0, allPeers: len(peers) == 0}
	for i, kp := range ports {
		ps, err := parsePort(kp)
		if err != nil {
			return rule{}, fmt.Errorf("ports[%d]: %w", i, err)
		}
		r.ports = append(r.ports, ps)
	}
	for i, kp := range peers {
		pr, err := parsePeer(kp)
		if err != nil {
			return rule{}, fmt.Errorf("peer[%d]: %w", i, err)
		}
		r.peers = append(r.peers, pr)
	}
	return r, nil
}

func parsePort(kp kube.NetworkPolicyPort) (portSpec, error) {
	proto := ProtoTCP
	if kp.Protocol != nil {
		var err error
		if proto, err = ParseProtocol(*kp.Protocol); err != nil {
			return portSpec{}, err
		}
		if *kp.Protocol == "" {
			return portSpec{}, fmt.Errorf("protocol: empty")
		}
	}
	ps := portSpec{proto: proto, first: 0, last: 65535}
	switch {
	case kp.Port == nil:
		if kp.EndPort != nil {
			return portSpec{}, fmt.Errorf("endPort without port")
		}
	case kp.Port.IsString:
		if kp.EndPort != nil {
			return portSpec{}, fmt.Errorf("endPort with the named port %q", kp.Port.StrVal)
		}
		if !validPortName(kp.Port.StrVal) {
			return portSpec{}, fmt.Errorf("port name %q: not an IANA service name", kp.Port.StrVal)
		}
		ps.name = kp.Port.StrVal
	default:
		n := kp.Port.IntVal
		if n < 1 || n > 65535 {
			return portSpec{}, fmt.Errorf("port %d: out of 1-65535", n)
		}
		ps.first, ps.last = uint16(n), uint16(n)
		if kp.EndPort != nil {
			e := *kp.EndPort
			if e < n || e > 65535 {
				return portSpec{}, fmt.Errorf("endPort %d: not in %d-65535", e, n)
			}
			ps.last = uint16(e)
		}
	}
	return ps, nil
}

// validPortName is the API server's IsValidPortName: 1-15 characters of
// a-z, 0-9 and '-', at least one letter, no leading, trailing or double
// hyphen.
func validPortName(s string) bool {
	if len(s) < 1 || len(s) > 15 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	letter := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z':
			letter = true
		case c >= '0' && c <= '9':
		case c == '-':
			if s[i-1] == '-' {
				return false
			}
		default:
			return false
		}
	}
	return letter
}

func parsePeer(kp kube.NetworkPolicyPeer) (*peer, error) {
	if kp.IPBlock != nil {
		if kp.PodSelector != nil || kp.NamespaceSelector != nil {
			return nil, fmt.Errorf("ipBlock together with a selector")
		}
		cidr, err := parseCIDR(kp.IPBlock.CIDR)
		if err != nil {
			return nil, fmt.Errorf("ipBlock: %w", err)
		}
		pr := &peer{block: true, cidr: cidr}
		for _, e := range kp.IPBlock.Except {
			ex, err := parseCIDR(e)
			if err != nil {
				return nil, fmt.Errorf("ipBlock except: %w", err)
			}
			if ex.Bits() <= cidr.Bits() || !cidr.Contains(ex.Addr()) {
				return nil, fmt.Errorf("ipBlock except %s: not a strict subset of %s", e, kp.IPBlock.CIDR)
			}
			pr.except = append(pr.except, ex)
		}
		return pr, nil
	}
	if kp.PodSelector == nil && kp.NamespaceSelector == nil {
		return nil, fmt.Errorf("no podSelector, namespaceSelector or ipBlock")
	}
	pr := &peer{}
	if kp.PodSelector != nil {
		if err := kp.PodSelector.Validate(); err != nil {
			return nil, fmt.Errorf("podSelector: %w", err)
		}
		sel := *kp.PodSelector
		pr.podSelector = &sel
	}
	if kp.NamespaceSelector != nil {
		if err := kp.NamespaceSelector.Validate(); err != nil {
			return nil, fmt.Errorf("namespaceSelector: %w", err)
		}
		sel := *kp.NamespaceSelector
		pr.nsSelector = &sel
	}
	return pr, nil
}

// parseCIDR reads a CIDR and masks it: the API server has accepted host
// bits ("10.1.2.3/8") for years, meaning the masked network. An
// IPv4-mapped IPv6 prefix stays IPv6 and so matches no address (pod and
// peer addresses are unmapped), as Go's net.IPNet, which Kubernetes
// implementations use, does.
func parseCIDR(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("cidr %q: %w", s, err)
	}
	return p.Masked(), nil
}

// failClosedPolicy stands for a policy that cannot be read: it isolates
// what it selects (its podSelector if that is valid, else every pod of
// its namespace) in the directions it names (both if those are invalid)
// and allows nothing. Ignoring it would open what it closes.
func failClosedPolicy(p *kube.NetworkPolicy) *npolicy {
	ns := p.Namespace
	if ns == "" {
		ns = "default"
	}
	np := &npolicy{ref: ns + "/" + p.Name, namespace: ns, podSelector: &kube.LabelSelector{}}
	if sel := p.Spec.PodSelector; sel.Validate() == nil {
		np.podSelector = &sel
	}
	valid := len(p.Spec.PolicyTypes) <= 2
	for _, t := range p.Spec.PolicyTypes {
		switch t {
		case kube.PolicyTypeIngress:
			np.isIngress = true
		case kube.PolicyTypeEgress:
			np.isEgress = true
		default:
			valid = false
		}
	}
	switch {
	case !valid:
		np.isIngress, np.isEgress = true, true
	case len(p.Spec.PolicyTypes) == 0:
		np.isIngress, np.isEgress = true, len(p.Spec.Egress) > 0
	}
	return np
}
