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
	// foreign are the source pods of other nodes, which merge makes
	// local when they hold an address here (the one way it depends on
	// the allocations), and held those of them that do.
	foreign []string
	held    map[string]bool
	// base is the digest of the merged mirror (its allocations and the
	// peers addPeers adds left out) and Local; "" until compileInputs
	// computes it. peersFrom is where addPeers' pods start in
	// Mirror.Remote.
	base      string
	peersFrom int
}

// storedCache is what the daemon's passes keep of their reads, so that
// the read after one ADD's store write decodes and merges only what that
// write changed (the pod's allocation): store.ReadCache for the records,
// and the last merge with what it was merged from.
type storedCache struct {
	rc   store.ReadCache
	srcs store.SourceCache
	// records is the last read's index by pod key, rebuilt only when the
	// index changed.
	records map[string]store.PolicyRecordInfo
	// last is the last merge with what it merged, reused while those
	// inputs (the mirror, the sources, the node, which foreign pods hold
	// an address here) are the same.
	last *mergeMemo
}

// kubeMirror is the Kubernetes mirror as stored.
type kubeMirror struct {
	pods []store.Pod
	nss  []store.Namespace
	pols []store.Policy
}

// ReadStored reads everything the policy side keeps, in tx.
func ReadStored(tx *store.ReadTx) (*Stored, error) { return readStored(tx, nil) }

// mergeMemo is one merge's inputs and result (Stored.merge), read-only.
type mergeMemo struct {
	node, instance string
	nodeIPs        []netip.Addr
	sources        []store.PolicySource
	mirror         policy.Mirror // without its allocations
	local          []policy.PodRef
	policies       map[string]int
	foreign        []string
	held           map[string]bool
	base           string
}

// readStoredCached is ReadStored through c: records whose bytes did not
// change are not decoded again, and the last merge is reused when none of
// its inputs changed (only allocations did, and none of the source pods
// of other nodes took or left an address here). What it returns shares
// memory with c: read-only.
func readStoredCached(tx *store.ReadTx, c *storedCache) (*Stored, error) {
	s := &Stored{}
	if err := s.readHead(tx); err != nil {
		return nil, err
	}
	pods, podsCh, err := tx.MirrorPodsCached(&c.rc)
	if err != nil {
		return nil, err
	}
	nss, nssCh, err := tx.MirrorNamespacesCached(&c.rc)
	if err != nil {
		return nil, err
	}
	pols, polsCh, err := tx.MirrorPoliciesCached(&c.rc)
	if err != nil {
		return nil, err
	}
	var allocCh store.Changes
	if s.Allocations, allocCh, err = tx.AllocationsCached(&c.rc); err != nil {
		return nil, err
	}
	srcs, err := tx.PolicySourcesCached(&c.srcs)
	if err != nil {
		return nil, err
	}
	recs, recsCh, err := tx.PolicyRecordInfosCached(&c.rc)
	if err != nil {
		return nil, err
	}
	if recsCh.Any() || c.records == nil {
		c.records = make(map[string]store.PolicyRecordInfo, len(recs))
		for _, r := range recs {
			c.records[store.PodKey(r.Namespace, r.Name)] = r
		}
	}
	s.Records = c.records
	s.kube = kubeMirror{pods, nss, pols}
	s.sources = srcs
	last := c.last
	if last != nil && !podsCh.Any() && !nssCh.Any() && !polsCh.Any() && sameSources(last.sources, srcs) &&
		last.node == s.nodeName() && last.instance == s.Facts.InstanceID && slices.Equal(last.nodeIPs, s.nodeIPs()) &&
		(!allocCh.Any() || !heldChanged(last, s.Allocations)) {
		// Only allocations changed, and not which foreign pods are
		// local: the merge is the same but for them.
		s.Mirror, s.Local, s.policies = last.mirror, last.local, last.policies
		s.Mirror.Allocations = s.Allocations
		s.foreign, s.held, s.base, s.peersFrom = last.foreign, last.held, last.base, len(last.mirror.Remote)
		return s, nil
	}
	s.policies = make(map[string]int)
	s.merge(pods, nss, pols, srcs)
	s.base = s.baseDigest()
	m := s.Mirror
	m.Allocations = nil
	c.last = &mergeMemo{node: s.nodeName(), instance: s.Facts.InstanceID, nodeIPs: s.nodeIPs(), sources: srcs,
		mirror: m, local: s.Local, policies: s.policies, foreign: s.foreign, held: s.held, base: s.base}
	return s, nil
}

// readHead reads the policy loop's state and the node's facts into s,
// either of which may not be stored yet.
func (s *Stored) readHead(tx *store.ReadTx) error {
	var err error
	s.State, err = tx.PolicyState()
	switch {
	case err == nil:
		s.HasState = true
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	if s.Facts, err = tx.Node(); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return nil
}

// sameSources reports whether a and b are the same sources, by digest.
func sameSources(a, b []store.PolicySource) bool {
	return slices.EqualFunc(a, b, func(x, y store.PolicySource) bool { return x.Name == y.Name && x.Digest == y.Digest })
}

// heldChanged reports whether allocs make a different set of the foreign
// pods hold an address here than st's merge saw.
func heldChanged(st *mergeMemo, allocs []store.Allocation) bool {
	if len(st.foreign) == 0 {
		return false
	}
	foreign := make(map[string]bool, len(st.foreign))
	for _, k := range st.foreign {
		foreign[k] = true
	}
	n := 0
	for _, a := range allocs {
		if a.PodName == "" {
			continue
		}
		if key := store.PodKey(a.PodNamespace, a.PodName); foreign[key] {
			if !st.held[key] {
				return true
			}
			foreign[key] = false // counted once
			n++
		}
	}
	return n != len(st.held)
}

// readStored is ReadStored, taking the sources whose bytes did not change
// from c (nil: decode them all).
func readStored(tx *store.ReadTx, c *store.SourceCache) (*Stored, error) {
	s := &Stored{Records: make(map[string]store.PolicyRecordInfo), policies: make(map[string]int)}
	if err := s.readHead(tx); err != nil {
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
	// Clipped: what merge appends must not land in the callers' arrays
	// (a cached read's, shared with the next merge).
	m := policy.Mirror{Node: policy.Node{Name: name, IPs: s.nodeIPs()}, Pods: slices.Clip(pods), Namespaces: slices.Clip(nss),
		Policies: slices.Clip(pols), Allocations: s.Allocations}
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
			if sp.Node != "" && sp.Node != m.Node.Name {
				s.foreign = append(s.foreign, key)
				if holds[key] {
					if s.held == nil {
						s.held = make(map[string]bool)
					}
					s.held[key] = true
				}
			}
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
	type keyed struct {
		key string
		ref policy.PodRef
	}
	sorted := make([]keyed, 0, len(local))
	for ref := range local {
		sorted = append(sorted, keyed{ref.String(), ref})
	}
	slices.SortFunc(sorted, func(a, b keyed) int { return strings.Compare(a.key, b.key) })
	s.Local = make([]policy.PodRef, len(sorted))
	for i, k := range sorted {
		s.Local[i] = k.ref
	}
	s.Mirror = m
	s.peersFrom = len(m.Remote)
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
	s.peersFrom = len(s.Mirror.Remote)
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
			if a.IP6.IsValid() {
				in.addrs[ref] = append(in.addrs[ref], a.IP6) // dual stack: held with IP
			}
		}
	}
	for _, ips := range in.addrs {
		slices.SortFunc(ips, netip.Addr.Compare)
	}
	if s.base == "" {
		if s.base = s.baseDigest(); s.base == "" {
			return in
		}
	}
	if b, err := marshal([]any{s.base, s.Mirror.Remote[s.peersFrom:]}); err == nil {
		in.world = store.PolicyDigest(b)
	}
	return in
}

// baseDigest is the digest of what merge made: the mirror without its
// allocations and the peers addPeers adds, and Local; "" if it cannot be
// computed.
func (s *Stored) baseDigest() string {
	m := s.Mirror
	m.Allocations = nil
	m.Remote = m.Remote[:s.peersFrom]
	m.Pods = slices.Clone(m.Pods)
	for i := range m.Pods {
		m.Pods[i].Mirrored = time.Time{} // rewritten on every mirror flush
	}
	b, err := marshal([]any{m, s.Local})
	if err != nil {
		return ""
	}
	return store.PolicyDigest(b)
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
