package policy

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
)

// Endpoint names one end of a flow: a pod (Pod set) or an address.
type Endpoint struct {
	Pod *PodRef    `json:"pod,omitempty"`
	IP  netip.Addr `json:"ip,omitzero"`
}

// PodEndpoint names a pod.
func PodEndpoint(namespace, name string) Endpoint {
	return Endpoint{Pod: &PodRef{Namespace: namespace, Name: name}}
}

// IPEndpoint names an address.
func IPEndpoint(ip netip.Addr) Endpoint { return Endpoint{IP: ip.Unmap()} }

// ParseEndpoint reads what an operator types: an address, "namespace/pod",
// or "pod" (in namespace "default").
func ParseEndpoint(s string) (Endpoint, error) {
	if ip, err := netip.ParseAddr(s); err == nil {
		return IPEndpoint(ip), nil
	}
	if _, err := netip.ParsePrefix(s); err == nil {
		return Endpoint{}, fmt.Errorf("endpoint %q: a prefix, not an address", s)
	}
	if s == "" || strings.Count(s, "/") > 1 {
		return Endpoint{}, fmt.Errorf("endpoint %q: neither an address nor namespace/pod", s)
	}
	ns, name, found := strings.Cut(s, "/")
	if !found {
		ns, name = "default", s
	}
	if ns == "" || name == "" {
		return Endpoint{}, fmt.Errorf("endpoint %q: neither an address nor namespace/pod", s)
	}
	return PodEndpoint(ns, name), nil
}

// String writes the pod's name or the address.
func (e Endpoint) String() string {
	if e.Pod != nil {
		return e.Pod.String()
	}
	return e.IP.String()
}

// Kinds of Party.
const (
	KindPod         = "pod"              // a pod on the pod network
	KindHostNetwork = "host-network pod" // its traffic is its node's
	KindNode        = "node"
	KindExternal    = "external" // no pod or node of the snapshot
)

// Party is an endpoint of a traced flow as the snapshot knows it.
type Party struct {
	IP   netip.Addr `json:"ip"`
	Kind string     `json:"kind"`
	Pod  *PodRef    `json:"pod,omitempty"`
	Node string     `json:"node,omitempty"`
}

// Side is one end's policy verdict: the client's egress or the server's
// ingress.
type Side struct {
	// Applies is false when the party is not a pod on the pod network
	// (an external address, a node, a host-network pod): no policy of
	// its own applies, and the side allows.
	Applies  bool     `json:"applies"`
	Isolated bool     `json:"isolated"`
	Policies []string `json:"policies,omitempty"` // those isolating this side
	Allowed  bool     `json:"allowed"`
	// Prefix is the longest prefix of the compiled table that matched the
	// peer's address (absent when none did, or the side is not isolated).
	Prefix *netip.Prefix `json:"prefix,omitempty"`
	// By lists every rule allowing the flow (empty when denied).
	By     []RuleRef `json:"by,omitempty"`
	Reason string    `json:"reason"`
}

// Trace is a flow's verdict with what decided it on each side.
type Trace struct {
	From     Party    `json:"from"`
	To       Party    `json:"to"`
	Protocol Protocol `json:"protocol"`
	Port     uint16   `json:"port"`
	// Allowed is Egress.Allowed && Ingress.Allowed: Kubernetes allows a
	// connection only if the client's egress and the server's ingress
	// both do.
	Allowed bool `json:"allowed"`
	Egress  Side `json:"egress"`  // the From party's policy
	Ingress Side `json:"ingress"` // the To party's policy
}

// Tracer traces flows against one snapshot, compiling each pod once. It
// is safe for concurrent use.
type Tracer struct {
	s  *Snapshot
	mu sync.Mutex
	rs map[*Pod]*Ruleset
}

// Tracer returns a tracer over s.
func (s *Snapshot) Tracer() *Tracer { return &Tracer{s: s, rs: make(map[*Pod]*Ruleset)} }

// Trace traces one flow; see Tracer.Trace.
func (s *Snapshot) Trace(from, to Endpoint, proto Protocol, port uint16) (*Trace, error) {
	return s.Tracer().Trace(from, to, proto, port)
}

// Verdict reports whether a connection from one endpoint to another on
// proto/port is allowed: the client's egress and the server's ingress
// must both allow it.
func (s *Snapshot) Verdict(from, to Endpoint, proto Protocol, port uint16) (bool, error) {
	t, err := s.Trace(from, to, proto, port)
	if err != nil {
		return false, err
	}
	return t.Allowed, nil
}

func (t *Tracer) ruleset(p *Pod) *Ruleset {
	t.mu.Lock()
	defer t.mu.Unlock()
	rs, ok := t.rs[p]
	if !ok {
		rs = t.s.compile(p)
		t.rs[p] = rs
	}
	return rs
}

// Trace decides a flow from the compiled rulesets of its ends, the same
// tables the kernel side holds, and says which entry and rules decided
// each side. A pod endpoint uses its address of a family the other end
// has (IPv4 first). Ports are ignored for protocols without ports. May
// return an error wrapping ErrUnknownPod or ErrNoAddress.
func (t *Tracer) Trace(from, to Endpoint, proto Protocol, port uint16) (*Trace, error) {
	src, srcPod, err := t.party(from)
	if err != nil {
		return nil, fmt.Errorf("trace from %s: %w", from, err)
	}
	dst, dstPod, err := t.party(to)
	if err != nil {
		return nil, fmt.Errorf("trace to %s: %w", to, err)
	}
	if err := t.pickFamily(&src, srcPod, &dst, dstPod); err != nil {
		return nil, fmt.Errorf("trace %s to %s: %w", from, to, err)
	}
	if !proto.HasPorts() {
		port = 0
	}
	tr := &Trace{From: src, To: dst, Protocol: proto, Port: port}
	tr.Egress = t.side(src, srcPod, dst.IP, proto, port, false)
	tr.Ingress = t.side(dst, dstPod, src.IP, proto, port, true)
	tr.Allowed = tr.Egress.Allowed && tr.Ingress.Allowed
	return tr, nil
}

// party resolves an endpoint; pod is the pod whose policy applies, if any.
func (t *Tracer) party(e Endpoint) (Party, *Pod, error) {
	if e.Pod != nil {
		p, ok := t.s.podByRef[*e.Pod]
		if !ok {
			return Party{}, nil, ErrUnknownPod
		}
		ref := p.Ref()
		if p.HostNetwork {
			return Party{Kind: KindHostNetwork, Pod: &ref, Node: p.Node}, p, nil
		}
		return Party{Kind: KindPod, Pod: &ref, Node: p.Node}, p, nil
	}
	ip := e.IP.Unmap()
	if !ip.IsValid() {
		return Party{}, nil, fmt.Errorf("no pod and no address")
	}
	if p, ok := t.s.podByIP[ip]; ok {
		ref := p.Ref()
		return Party{IP: ip, Kind: KindPod, Pod: &ref, Node: p.Node}, p, nil
	}
	if n, ok := t.s.nodeOf[ip]; ok {
		return Party{IP: ip, Kind: KindNode, Node: n}, nil, nil
	}
	return Party{IP: ip, Kind: KindExternal}, nil, nil
}

// addrs returns the addresses a party may use: its own, a pod's, or for a
// host-network pod without any its node's.
func (t *Tracer) addrs(p Party, pod *Pod) []netip.Addr {
	if p.IP.IsValid() {
		return []netip.Addr{p.IP}
	}
	if len(pod.IPs) == 0 && pod.HostNetwork {
		if n := t.s.nodes[pod.Node]; n != nil {
			return n.IPs
		}
	}
	return pod.IPs
}

// pickFamily sets both parties' addresses to one family both have, IPv4
// first.
func (t *Tracer) pickFamily(src *Party, srcPod *Pod, dst *Party, dstPod *Pod) error {
	sa, da := t.addrs(*src, srcPod), t.addrs(*dst, dstPod)
	for _, v4 := range []bool{true, false} {
		s, d := firstOfFamily(sa, v4), firstOfFamily(da, v4)
		if s.IsValid() && d.IsValid() {
			src.IP, dst.IP = s, d
			return nil
		}
	}
	return ErrNoAddress
}

func firstOfFamily(addrs []netip.Addr, v4 bool) netip.Addr {
	for _, a := range addrs {
		if a.Is4() == v4 {
			return a
		}
	}
	return netip.Addr{}
}

// side evaluates one end: party p (with pod, if any) facing peer.
func (t *Tracer) side(p Party, pod *Pod, peer netip.Addr, proto Protocol, port uint16, ingress bool) Side {
	dir, verb := "egress", "to"
	if ingress {
		dir, verb = "ingress", "from"
	}
	if pod == nil || pod.HostNetwork {
		return Side{Allowed: true, Reason: fmt.Sprintf("%s: no NetworkPolicy applies", p.Kind)}
	}
	rs := t.ruleset(pod)
	d := &rs.Egress
	if ingress {
		d = &rs.Ingress
	}
	sd := Side{Applies: true, Isolated: d.Isolated, Policies: d.Policies}
	if !d.Isolated {
		sd.Allowed = true
		sd.Reason = fmt.Sprintf("not isolated for %s: no policy selects the pod", dir)
		return sd
	}
	prefix, by, ok := d.Lookup(peer, proto, port)
	if ok {
		sd.Prefix = &prefix
	}
	sd.By = by
	sd.Allowed = len(by) > 0
	flow := fmt.Sprintf("%s %s %s", flowPort(proto, port), verb, peer)
	switch {
	case sd.Allowed && len(by) == 1 && by[0].Host:
		sd.Reason = fmt.Sprintf("allowed: %s is the pod's own node (kubelet probes are never blocked)", peer)
	case sd.Allowed:
		sd.Reason = fmt.Sprintf("allowed: %s by %s", flow, by[0])
	case ok:
		sd.Reason = fmt.Sprintf("denied: isolated for %s by %s; the entry %s allows no %s", dir, strings.Join(d.Policies, ", "), prefix, flowPort(proto, port))
	default:
		sd.Reason = fmt.Sprintf("denied: isolated for %s by %s; no rule allows %s", dir, strings.Join(d.Policies, ", "), flow)
	}
	return sd
}

func flowPort(proto Protocol, port uint16) string {
	if !proto.HasPorts() {
		return proto.String()
	}
	return fmt.Sprintf("%s/%d", proto, port)
}
