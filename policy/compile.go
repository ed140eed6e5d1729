package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Compile returns the ruleset of the pod ref. May return an error wrapping
// ErrUnknownPod.
func (s *Snapshot) Compile(ref PodRef) (*Ruleset, error) {
	p, ok := s.podByRef[ref]
	if !ok {
		return nil, fmt.Errorf("compile %s: %w", ref, ErrUnknownPod)
	}
	return s.compile(p), nil
}

// CompilePod returns the ruleset of a pod that need not be in the
// snapshot (a CNI ADD may know its pod before the snapshot does). Its
// peers are the snapshot's pods; p itself is no peer unless it is in the
// snapshot too.
func (s *Snapshot) CompilePod(p Pod) *Ruleset {
	if p.Namespace == "" {
		p.Namespace = "default"
	}
	for i, ip := range p.IPs {
		p.IPs[i] = ip.Unmap()
	}
	return s.compile(&p)
}

func (s *Snapshot) compile(p *Pod) *Ruleset {
	return s.compileShared(p, nil, s.newCompiler(), nil)
}

func (s *Snapshot) newCompiler() *compiler {
	return &compiler{s: s, refIdx: make(map[RuleRef]int32), memo: make(map[string][]PortRule), items: make(map[string][]portItem)}
}

// FailClosed returns the ruleset of a pod whose selection cannot be
// known (a CNI ADD with neither a record nor a snapshot to compile from):
// isolated both ways, nothing allowed but its node's traffic in (kubelet
// probes), so it starts closed rather than open, as Kubernetes permits
// ("a newly created pod may have no network connectivity at all"); the
// daemon replaces it once it knows.
func FailClosed(p Pod, nodeIPs []netip.Addr) *Ruleset {
	rs := &Ruleset{Pod: p.Ref(), IPs: slices.Clone(p.IPs), Node: p.Node}
	host := []RuleRef{{Host: true}}
	rs.Ingress = Direction{Isolated: true, Identities: []IdentityRule{{Identity: HostIdentity, Rules: []PortRule{{Protocol: ProtoAny, Last: 65535, By: host}}}}}
	rs.Egress = Direction{Isolated: true}
	for _, ip := range nodeIPs {
		ip = ip.Unmap()
		rs.Ingress.CIDRs = append(rs.Ingress.CIDRs, CIDREntry{Prefix: hostPrefix(ip), Rules: []PortRule{{Protocol: ProtoAny, Last: 65535, By: host}}})
	}
	slices.SortFunc(rs.Ingress.CIDRs, func(a, b CIDREntry) int { return comparePrefix(a.Prefix, b.Prefix) })
	rs.Ingress.Blocks = rs.Ingress.CIDRs
	return rs
}

// CompileAll compiles the pods refs, in order. A direction depends only on
// the policies selecting the pod (and, for ingress, on the pod's named
// ports and node), so pods alike, such as the replicas of a Deployment on
// one node, are compiled once and share their Direction's slices: treat
// rulesets as read-only. May return an error wrapping ErrUnknownPod.
func (s *Snapshot) CompileAll(refs []PodRef) ([]*Ruleset, error) {
	all, err := s.CompileAllKeyed(refs)
	if err != nil {
		return nil, err
	}
	out := make([]*Ruleset, len(all))
	for i, c := range all {
		out[i] = c.Ruleset
	}
	return out, nil
}

// Compiled is a ruleset as CompileAllKeyed returns it, with the keys of
// its directions: within one snapshot, rulesets whose ingress (egress)
// keys are equal have equal ingress (egress) directions, so a caller may
// encode each direction once.
type Compiled struct {
	Ruleset               *Ruleset
	IngressKey, EgressKey string
}

// CompileAllKeyed is CompileAll with each ruleset's direction keys.
func (s *Snapshot) CompileAllKeyed(refs []PodRef) ([]Compiled, error) {
	return s.compileAllKeyed(refs, s.newCompiler())
}

// CompileAllDeps is CompileAllKeyed that also returns the pods whose
// addresses the compiled directions may hold: the pods a selector peer
// or a named port of a compiled rule brought in. Whether a pod is one of
// them depends on labels, namespaces, ports and policies, never on
// addresses; so when, between two snapshots that differ only in pods'
// addresses, none of the pods whose addresses changed is in deps, every
// direction compiles the same, and only those pods' own rulesets change
// (their IPs). A daemon may then recompile nothing.
func (s *Snapshot) CompileAllDeps(refs []PodRef) ([]Compiled, map[PodRef]bool, error) {
	c := s.newCompiler()
	c.deps = make(map[PodRef]bool)
	out, err := s.compileAllKeyed(refs, c)
	return out, c.deps, err
}

func (s *Snapshot) compileAllKeyed(refs []PodRef, c *compiler) ([]Compiled, error) {
	out := make([]Compiled, 0, len(refs))
	done := make(map[string]Direction)
	for _, ref := range refs {
		p, ok := s.podByRef[ref]
		if !ok {
			return nil, fmt.Errorf("compile %s: %w", ref, ErrUnknownPod)
		}
		var keys [2]string
		rs := s.compileShared(p, done, c, &keys)
		out = append(out, Compiled{Ruleset: rs, IngressKey: keys[0], EgressKey: keys[1]})
	}
	return out, nil
}

// compileShared compiles p with c, taking directions from done and adding
// those it compiles (done may be nil). With done, keys gets the keys of
// the ingress and egress directions.
func (s *Snapshot) compileShared(p *Pod, done map[string]Direction, c *compiler, keys *[2]string) *Ruleset {
	rs := &Ruleset{Pod: p.Ref(), IPs: slices.Clone(p.IPs), Node: p.Node, HostNetwork: p.HostNetwork}
	if p.HostNetwork {
		if keys != nil {
			keys[0], keys[1] = "host", "host" // both directions empty
		}
		return rs
	}
	for i, ingress := range []bool{true, false} {
		pols := s.selecting(p, ingress)
		key := ""
		if done != nil {
			key = directionKey(p, pols, ingress)
			if keys != nil {
				keys[i] = key
			}
			if d, ok := done[key]; ok {
				rs.setDirection(ingress, d)
				continue
			}
		}
		d := c.direction(p, pols, ingress)
		if done != nil {
			done[key] = d
		}
		rs.setDirection(ingress, d)
	}
	return rs
}

func (rs *Ruleset) setDirection(ingress bool, d Direction) {
	if ingress {
		rs.Ingress = d
	} else {
		rs.Egress = d
	}
}

// selecting returns the policies that select p for a direction.
func (s *Snapshot) selecting(p *Pod, ingress bool) []*npolicy {
	var out []*npolicy
	for _, np := range s.byNS[p.Namespace] {
		if (ingress && np.isIngress || !ingress && np.isEgress) && np.selects(p) {
			out = append(out, np)
		}
	}
	return out
}

// directionKey names what a direction of p depends on: the selecting
// policies; for ingress also p's named ports (named ports resolve on the
// endpoint) and its node (the node's addresses are allowed in).
func directionKey(p *Pod, pols []*npolicy, ingress bool) string {
	var b strings.Builder
	if ingress {
		b.WriteString("in|")
		b.WriteString(p.Node)
		b.WriteByte('|')
		b.WriteString(IdentityOf(&Pod{Ports: p.Ports}))
	} else {
		b.WriteString("eg")
	}
	for _, np := range pols {
		b.WriteByte('|')
		b.WriteString(np.ref)
	}
	return b.String()
}

// compiler holds the interned rule references of one compilation.
type compiler struct {
	s       *Snapshot
	refs    []RuleRef
	refIdx  map[RuleRef]int32
	memo    map[string][]PortRule // mergePorts' results by their sorted items
	key     []byte                // mergePorts' scratch key
	sortBuf []portItem            // mergePorts' scratch items
	items   map[string][]portItem // attributeOnce's results
	pbuf    []prange              // addPods' scratch ports
	arena   []int32               // flatten's atom lists, a stack
	atoms   []atom                // direction's scratch atoms
	ids     []idItem              // direction's scratch identity items
	// deps, when not nil, gets every pod whose addresses a rule may
	// have added (CompileAllDeps).
	deps map[PodRef]bool
}

// attributeOnce is attribute, returning one shared slice for equal
// arguments: pods alike get the same items (read-only).
func (c *compiler) attributeOnce(rs []prange, by int32) []portItem {
	c.key = c.key[:0]
	c.key = append(c.key, byte(by>>24), byte(by>>16), byte(by>>8), byte(by))
	for _, r := range rs {
		c.key = append(c.key, byte(r.proto), byte(r.first>>8), byte(r.first), byte(r.last>>8), byte(r.last))
	}
	if items, ok := c.items[string(c.key)]; ok {
		return items
	}
	items := attribute(rs, by)
	c.items[string(c.key)] = items
	return items
}

func (c *compiler) ref(r RuleRef) int32 {
	if i, ok := c.refIdx[r]; ok {
		return i
	}
	i := int32(len(c.refs))
	c.refs = append(c.refs, r)
	c.refIdx[r] = i
	return i
}

// prange is a protocol's port range before it is attributed to a rule.
type prange struct {
	proto       Protocol
	first, last uint16
}

// portItem is a prange allowed by one rule reference.
type portItem struct {
	prange
	by int32
}

// atom is what one peer of one rule allows: a prefix minus excepts and
// the ports allowed there.
type atom struct {
	cidr   netip.Prefix
	except []netip.Prefix
	ports  []portItem
	block  bool // not from a selector: goes to Blocks too
}

// idItem is what one selector peer allows one identity (hostID: the
// node).
type idItem struct {
	id    int32
	ports []portItem
}

const hostID = -1

func attribute(rs []prange, by int32) []portItem {
	out := make([]portItem, len(rs))
	for i, r := range rs {
		out[i] = portItem{r, by}
	}
	return out
}

var anyPort = prange{ProtoAny, 0, 65535}

func (c *compiler) direction(p *Pod, pols []*npolicy, ingress bool) Direction {
	var d Direction
	// The buffers of the previous direction are reused: its tables no
	// longer refer to atoms or items, only to port sets.
	atoms, ids := c.atoms[:0], c.ids[:0]
	defer func() { c.atoms, c.ids = atoms[:0], ids[:0] }()
	for _, np := range pols {
		d.Policies = append(d.Policies, np.ref)
		rules := np.egress
		if ingress {
			rules = np.ingress
		}
		for i := range rules {
			c.rule(p, np, i, &rules[i], ingress, &atoms, &ids)
		}
	}
	if len(d.Policies) == 0 {
		return d
	}
	d.Isolated = true
	if ingress {
		// Kubernetes: a pod cannot block traffic from its own node
		// (kubelet probes). The datapath may match the node by origin;
		// these entries match it by address.
		host := c.ref(RuleRef{Host: true})
		if n := c.s.nodes[p.Node]; n != nil {
			for _, ip := range n.IPs {
				atoms = append(atoms, atom{cidr: hostPrefix(ip), ports: attribute([]prange{anyPort}, host), block: true})
			}
		}
		ids = append(ids, idItem{id: hostID, ports: attribute([]prange{anyPort}, host)})
	}
	d.CIDRs = c.flatten(atoms, false)
	d.Blocks = c.flatten(atoms, true)
	d.Identities = c.identities(ids)
	return d
}

func hostPrefix(ip netip.Addr) netip.Prefix { return netip.PrefixFrom(ip, ip.BitLen()) }

// rule adds what rule i of np allows pod p (the endpoint) to atoms and ids.
func (c *compiler) rule(p *Pod, np *npolicy, i int, r *rule, ingress bool, atoms *[]atom, ids *[]idItem) {
	// base: ports that apply to every peer. Ingress named ports resolve on
	// the endpoint itself (it is the destination); egress named ports
	// resolve on each destination pod, so they stay in named.
	var base []prange
	var named []portSpec
	if r.allPorts {
		base = []prange{anyPort}
	}
	for _, ps := range r.ports {
		switch {
		case ps.name == "":
			base = append(base, prange{ps.proto, ps.first, ps.last})
		case ingress:
			base = append(base, resolveNamed([]portSpec{ps}, p)...)
		default:
			named = append(named, ps)
		}
	}
	// addPods allows each pod its base ports plus the named ports
	// resolved on it, at each of its addresses that in accepts (nil: all).
	// Pods of one identity resolve named ports alike, and without named
	// ports every pod gets the same items.
	addPods := func(pods []*Pod, base []prange, by int32, block bool, in func(netip.Addr) bool) {
		*atoms = slices.Grow(*atoms, len(pods))
		var same []portItem
		if len(named) == 0 {
			if len(base) == 0 {
				return
			}
			same = attribute(base, by)
		}
		if c.deps != nil {
			// Before the address filter and the ports check: which of
			// these pods the rule holds depends on their addresses (an
			// ipBlock) but the list does not.
			for _, q := range pods {
				c.deps[q.Ref()] = true
			}
		}
		for _, q := range pods {
			id := c.s.identityID(q)
			items := same
			if items == nil {
				c.pbuf = appendNamed(append(c.pbuf[:0], base...), named, q)
				if len(c.pbuf) == 0 {
					continue
				}
				items = c.attributeOnce(c.pbuf, by)
			}
			for _, ip := range q.IPs {
				if in == nil || in(ip) {
					*atoms = append(*atoms, atom{cidr: hostPrefix(ip), ports: items, block: block})
				}
			}
			if !block {
				*ids = append(*ids, idItem{id: id, ports: items})
			}
		}
	}
	if r.allPeers {
		by := c.ref(RuleRef{Policy: np.ref, Rule: i, Peer: -1})
		if len(base) > 0 {
			items := attribute(base, by)
			*atoms = append(*atoms,
				atom{cidr: netip.PrefixFrom(netip.IPv4Unspecified(), 0), ports: items, block: true},
				atom{cidr: netip.PrefixFrom(netip.IPv6Unspecified(), 0), ports: items, block: true})
		}
		if len(named) > 0 {
			// Every pod reachable by name: an identity matter, as for
			// selectors (the named port makes part of the identity).
			addPods(c.s.podsNaming(named), nil, by, false, nil)
		}
		return
	}
	for j, pr := range r.peers {
		by := c.ref(RuleRef{Policy: np.ref, Rule: i, Peer: j})
		if !pr.block {
			addPods(c.s.peerPods(np, pr), base, by, false, nil)
			continue
		}
		if len(base) > 0 {
			*atoms = append(*atoms, atom{cidr: pr.cidr, except: pr.except, ports: attribute(base, by), block: true})
		}
		if len(named) > 0 {
			// An ipBlock matches pod addresses too, and a named port
			// resolves on the destination pod: pods inside the block
			// get their own /32 with the resolved port.
			addPods(c.s.podsNaming(named), nil, by, true, pr.contains)
		}
	}
}

func (pr *peer) contains(ip netip.Addr) bool {
	if !pr.cidr.Contains(ip) {
		return false
	}
	for _, e := range pr.except {
		if e.Contains(ip) {
			return false
		}
	}
	return true
}

// resolveNamed resolves named ports on pod q: a container port with the
// same name and the same protocol.
func resolveNamed(named []portSpec, q *Pod) []prange { return appendNamed(nil, named, q) }

func appendNamed(out []prange, named []portSpec, q *Pod) []prange {
	for _, ps := range named {
		for _, cp := range q.Ports {
			if cp.Name == ps.name && cp.Protocol == ps.proto {
				out = append(out, prange{ps.proto, cp.Port, cp.Port})
			}
		}
	}
	return out
}

// podsNaming returns the pods on the pod network that declare any of the
// named ports, in snapshot order.
func (s *Snapshot) podsNaming(named []portSpec) []*Pod {
	if len(named) == 1 {
		return s.namedPods(named[0].name)
	}
	seen := make(map[*Pod]bool)
	var out []*Pod
	for _, ps := range named {
		for _, q := range s.namedPods(ps.name) {
			if !seen[q] {
				seen[q] = true
				out = append(out, q)
			}
		}
	}
	slices.SortFunc(out, func(a, b *Pod) int { return strings.Compare(a.Ref().String(), b.Ref().String()) })
	return out
}

// identityOf returns the identity key of a pod.
func (s *Snapshot) identityOf(p *Pod) string {
	if id := s.identityID(p); id >= 0 {
		return s.identKeys[id]
	}
	return IdentityOf(p)
}

// identityID numbers the snapshot's identities in the order of their
// keys, so sorting numbers sorts keys; -1 for a pod not in the snapshot.
func (s *Snapshot) identityID(p *Pod) int32 {
	s.identOnce.Do(func() {
		keys := make([]string, len(s.pods))
		for i, q := range s.pods {
			keys[i] = IdentityOf(q)
		}
		s.identKeys = slices.Compact(slices.Sorted(slices.Values(keys)))
		s.identID = make(map[*Pod]int32, len(s.pods))
		for i, q := range s.pods {
			n, _ := slices.BinarySearch(s.identKeys, keys[i])
			s.identID[q] = int32(n)
		}
	})
	if id, ok := s.identID[p]; ok {
		return id
	}
	return -1
}

// IdentityOf returns a pod's identity: what every selector and named port
// sees of it, so pods with equal identities are allowed alike by every
// selector rule. The key is the namespace, the sorted labels and the
// sorted named container ports:
//
//	"ns|app=web,tier=be|http=8080/TCP,metrics=9090/TCP"
//
// Label keys and values cannot hold '|', ',' or '=' (beyond the key's
// own), so the key is unambiguous. Numbering identities for the kernel
// is the caller's: a node-local allocator that keeps numbers stable
// across snapshots.
func IdentityOf(p *Pod) string {
	var b strings.Builder
	b.WriteString(p.Namespace)
	b.WriteByte('|')
	keys := make([]string, 0, len(p.Labels))
	for k := range p.Labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(p.Labels[k])
	}
	b.WriteByte('|')
	var ports []string
	for _, cp := range p.Ports {
		if cp.Name != "" {
			ports = append(ports, cp.Name+"="+strconv.Itoa(int(cp.Port))+"/"+cp.Protocol.String())
		}
	}
	slices.Sort(ports)
	b.WriteString(strings.Join(slices.Compact(ports), ","))
	return b.String()
}
