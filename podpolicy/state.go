package podpolicy

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/veni-cni/veni/podnetwork"
	"github.com/veni-cni/veni/policy"
	"github.com/veni-cni/veni/store"
)

// Stored is the policy state one read transaction of the store saw.
type Stored struct {
	State    store.PolicyState
	HasState bool // a daemon has run the policy loop on this store
	Facts    store.NodeInfo
	Mirror   policy.Mirror
	// Local are the pods compiled on this node: mirrored pods (the
	// informer watches this node's pods), manifest pods of this node or
	// of no node, and pods holding an address here. Sorted.
	Local []policy.PodRef
	// Allocations are this node's, every state.
	Allocations []store.Allocation
	// Records are the compiled records' index entries by
	// "namespace/name" (rulesets are read one by one, when needed).
	Records map[string]store.PolicyRecordInfo
	// policies counts the policies stored per namespace.
	policies map[string]int
	sources  []store.PolicySource
	kube     kubeMirror
}

// kubeMirror is the Kubernetes mirror as stored.
type kubeMirror struct {
	pods []store.Pod
	nss  []store.Namespace
	pols []store.Policy
}

// ReadStored reads everything the policy side keeps, in tx.
func ReadStored(tx *store.ReadTx) (*Stored, error) { return readStored(tx, nil) }

// readStored is ReadStored, taking the sources whose bytes did not change
// from c (nil: decode them all).
func readStored(tx *store.ReadTx, c *store.SourceCache) (*Stored, error) {
	s := &Stored{Records: make(map[string]store.PolicyRecordInfo), policies: make(map[string]int)}
	var err error
	s.State, err = tx.PolicyState()
	switch {
	case err == nil:
		s.HasState = true
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	if s.Facts, err = tx.Node(); err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	pods, err := tx.MirrorPods()
	if err != nil {
		return nil, err
	}
	nss, err := tx.MirrorNamespaces()
	if err != nil {
		return nil, err
	}
	pols, err := tx.MirrorPolicies()
	if err != nil {
		return nil, err
	}
	if s.Allocations, err = tx.Allocations(); err != nil {
		return nil, err
	}
	var srcs []store.PolicySource
	if c != nil {
		srcs, err = tx.PolicySourcesCached(c)
	} else {
		srcs, err = tx.PolicySources()
	}
	if err != nil {
		return nil, err
	}
	recs, err := tx.PolicyRecordInfos()
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		s.Records[store.PodKey(r.Namespace, r.Name)] = r
	}
	s.kube = kubeMirror{pods, nss, pols}
	s.sources = srcs
	s.merge(pods, nss, pols, srcs)
	return s, nil
}

// nodeName is the node as the policy loop named it ("" before it ran).
func (s *Stored) nodeName() string { return s.State.Node }

func (s *Stored) nodeIPs() []netip.Addr {
	if len(s.State.NodeIPs) > 0 {
		return s.State.NodeIPs
	}
	if s.Facts.PrimaryIP.IsValid() {
		return []netip.Addr{s.Facts.PrimaryIP}
	}
	return nil
}

// merge builds the mirror: the Kubernetes mirror first, then what the
// sources add (an object both have is the API server's).
func (s *Stored) merge(pods []store.Pod, nss []store.Namespace, pols []store.Policy, srcs []store.PolicySource) {
	name := s.nodeName()
	if name == "" {
		name = s.Facts.InstanceID
	}
	m := policy.Mirror{Node: policy.Node{Name: name, IPs: s.nodeIPs()}, Pods: pods, Namespaces: nss, Policies: pols, Allocations: s.Allocations}
	known := make(map[string]bool, len(pods))
	local := make(map[policy.PodRef]bool, len(pods))
	for _, p := range pods {
		known[store.PodKey(p.Namespace, p.Name)] = true
		local[policy.PodRef{Namespace: p.Namespace, Name: p.Name}] = true
	}
	holds := make(map[string]bool, len(s.Allocations))
	for _, a := range s.Allocations {
		if a.PodName != "" {
			holds[store.PodKey(a.PodNamespace, a.PodName)] = true
		}
	}
	nsKnown := make(map[string]bool, len(nss))
	for _, n := range nss {
		nsKnown[n.Name] = true
	}
	polKnown := make(map[string]bool, len(pols))
	for _, p := range pols {
		polKnown[store.PodKey(p.Namespace, p.Name)] = true
	}
	for _, src := range srcs {
		for _, sp := range src.Pods {
			key := store.PodKey(sp.Namespace, sp.Name)
			if known[key] {
				continue
			}
			known[key] = true
			if sp.Node == "" || sp.Node == m.Node.Name || holds[key] {
				p := sp.Pod
				if len(sp.IPs) > 0 {
					p.Annotations = map[string]string{policy.AnnotationPodIPs: joinAddrs(sp.IPs)}
				}
				m.Pods = append(m.Pods, p)
				local[policy.PodRef{Namespace: p.Namespace, Name: p.Name}] = true
				continue
			}
			m.Remote = append(m.Remote, remotePod(sp))
		}
		for _, n := range src.Namespaces {
			if !nsKnown[n.Name] {
				nsKnown[n.Name] = true
				m.Namespaces = append(m.Namespaces, n)
			}
		}
		for _, p := range src.Policies {
			if key := store.PodKey(p.Namespace, p.Name); !polKnown[key] {
				polKnown[key] = true
				m.Policies = append(m.Policies, p)
			}
		}
	}
	for _, p := range m.Policies {
		s.policies[p.Namespace]++
	}
	for key := range holds {
		ns, n, _ := strings.Cut(key, "/")
		if known[key] {
			local[policy.PodRef{Namespace: ns, Name: n}] = true
		}
	}
	for ref := range local {
		s.Local = append(s.Local, ref)
	}
	slices.SortFunc(s.Local, func(a, b policy.PodRef) int { return strings.Compare(a.String(), b.String()) })
	s.Mirror = m
}

func remotePod(sp store.SourcePod) policy.Pod {
	p := policy.Pod{Namespace: sp.Namespace, Name: sp.Name, Labels: sp.Labels, HostNetwork: sp.HostNetwork, Node: sp.Node, IPs: sp.IPs}
	for _, cp := range sp.Ports {
		proto, err := policy.ParseProtocol(cp.Protocol)
		if err != nil || cp.Port < 1 || cp.Port > 65535 {
			continue // SourceFromInput wrote only valid ports
		}
		p.Ports = append(p.Ports, policy.ContainerPort{Name: cp.Name, Port: uint16(cp.Port), Protocol: proto})
	}
	return p
}

func joinAddrs(ips []netip.Addr) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return strings.Join(s, ",")
}

// addPeers adds pods of other nodes the stored state does not hold (the
// mirror keeps this node's pods only), sorted so the input digest is
// stable.
func (s *Stored) addPeers(peers []policy.Pod) {
	known := make(map[policy.PodRef]bool, len(s.Mirror.Pods)+len(s.Mirror.Remote))
	for _, p := range s.Mirror.Pods {
		known[policy.PodRef{Namespace: p.Namespace, Name: p.Name}] = true
	}
	for _, p := range s.Mirror.Remote {
		known[p.Ref()] = true
	}
	var add []policy.Pod
	for _, p := range peers {
		if p.Node == s.Mirror.Node.Name || known[p.Ref()] {
			continue
		}
		known[p.Ref()] = true
		add = append(add, p)
	}
	slices.SortFunc(add, func(a, b policy.Pod) int { return strings.Compare(a.Ref().String(), b.Ref().String()) })
	s.Mirror.Remote = append(slices.Clone(s.Mirror.Remote), add...)
}

// compileInputs is everything a compile of st depends on, in two parts:
// the world (the merged mirror and the local pods, as a digest) and the
// addresses this node's allocations give pods. Binding an address (tx2 of
// an ADD), events and pool writes change neither; reserving or releasing
// one changes only addrs, which a pass can often take in without
// compiling (Syncer.readdress).
type compileInputs struct {
	world string // "" if it cannot be computed
	addrs map[policy.PodRef][]netip.Addr
}

func (s *Stored) compileInputs() compileInputs {
	in := compileInputs{addrs: make(map[policy.PodRef][]netip.Addr)}
	for _, a := range s.Allocations {
		if a.PodName != "" && (a.State == store.IPReserved || a.State == store.IPBound) {
			ref := policy.PodRef{Namespace: a.PodNamespace, Name: a.PodName}
			in.addrs[ref] = append(in.addrs[ref], a.IP)
		}
	}
	for _, ips := range in.addrs {
		slices.SortFunc(ips, netip.Addr.Compare)
	}
	m := s.Mirror
	m.Allocations = nil
	m.Pods = slices.Clone(m.Pods)
	for i := range m.Pods {
		m.Pods[i].Mirrored = time.Time{} // rewritten on every mirror flush
	}
	if b, err := marshal([]any{m, s.Local}); err == nil {
		in.world = store.PolicyDigest(b)
	}
	return in
}

// moved returns the pods whose addresses differ between in and old.
func (in compileInputs) moved(old map[policy.PodRef][]netip.Addr) []policy.PodRef {
	var out []policy.PodRef
	for ref, ips := range in.addrs {
		if !slices.Equal(ips, old[ref]) {
			out = append(out, ref)
		}
	}
	for ref := range old {
		if _, ok := in.addrs[ref]; !ok {
			out = append(out, ref)
		}
	}
	return out
}

// Snapshot builds the policy snapshot of what was stored.
func (s *Stored) Snapshot() (*policy.Snapshot, error) {
	snap, err := policy.FromMirror(s.Mirror)
	if err != nil {
		return nil, fmt.Errorf("stored policy state: %w", err)
	}
	return snap, nil
}

// PoliciesIn reports how many policies of namespace ns are stored.
func (s *Stored) PoliciesIn(ns string) int { return s.policies[ns] }

// SourceFromInput turns what a manifest folder holds into the store's
// record of source name. Its digest covers the objects, not the time.
func SourceFromInput(name, location string, in policy.Input) (store.PolicySource, error) {
	src := store.PolicySource{Name: name, Location: location}
	for _, p := range in.Pods {
		sp := store.SourcePod{Pod: store.Pod{Namespace: p.Namespace, Name: p.Name, Labels: p.Labels, HostNetwork: p.HostNetwork,
			Annotations: p.Annotations, Stateful: p.Stateful}, Node: p.Node, IPs: p.IPs}
		if sp.Namespace == "" {
			sp.Namespace = "default"
		}
		for _, cp := range p.Ports {
			sp.Ports = append(sp.Ports, store.PodPort{Name: cp.Name, Port: int32(cp.Port), Protocol: cp.Protocol.String()})
		}
		src.Pods = append(src.Pods, sp)
	}
	for _, n := range in.Namespaces {
		src.Namespaces = append(src.Namespaces, store.Namespace{Name: n.Name, Labels: n.Labels})
	}
	for i := range in.Policies {
		p := &in.Policies[i]
		raw, err := marshal(p)
		if err != nil {
			return src, fmt.Errorf("policy %s/%s: %w", p.Namespace, p.Name, err)
		}
		ns := p.Namespace
		if ns == "" {
			ns = "default"
		}
		src.Policies = append(src.Policies, store.Policy{Namespace: ns, Name: p.Name, UID: p.UID, Raw: raw})
	}
	for i := range in.PodNetworkings {
		pn := &in.PodNetworkings[i]
		if err := podnetwork.Validate(pn); err != nil {
			return src, err
		}
		raw, err := marshal(pn)
		if err != nil {
			return src, fmt.Errorf("PodNetworking %s: %w", pn.Name, err)
		}
		src.PodNetworkings = append(src.PodNetworkings, store.PodNetworking{Name: pn.Name, UID: pn.UID, Raw: raw})
	}
	slices.SortFunc(src.PodNetworkings, func(a, b store.PodNetworking) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(src.Pods, func(a, b store.SourcePod) int {
		return strings.Compare(store.PodKey(a.Namespace, a.Name), store.PodKey(b.Namespace, b.Name))
	})
	slices.SortFunc(src.Namespaces, func(a, b store.Namespace) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(src.Policies, func(a, b store.Policy) int {
		return strings.Compare(store.PodKey(a.Namespace, a.Name), store.PodKey(b.Namespace, b.Name))
	})
	body, err := marshal([]any{src.Pods, src.Namespaces, src.Policies, src.PodNetworkings})
	if err != nil {
		return src, err
	}
	src.Digest = store.PolicyDigest(body)
	return src, nil
}
