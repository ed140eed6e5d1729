package policy

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Ruleset is one endpoint's compiled policy: what the kernel side loads
// for a local pod. It is a pure function of the snapshot and the pod, and
// deterministic: equal inputs give deeply equal rulesets (entries sorted),
// so a content hash of its JSON can deduplicate maps between replicas.
type Ruleset struct {
	Pod  PodRef       `json:"pod"`
	IPs  []netip.Addr `json:"ips,omitempty"`
	Node string       `json:"node,omitempty"`
	// HostNetwork pods are not subject to NetworkPolicy (see doc.go):
	// both directions are then unisolated and empty.
	HostNetwork bool `json:"hostNetwork,omitempty"`
	// Ingress is what may reach the pod (peers are sources), Egress what
	// the pod may reach (peers are destinations).
	Ingress Direction `json:"ingress"`
	Egress  Direction `json:"egress"`
}

// Direction is the compiled policy of one direction of one endpoint.
//
// When Isolated is false every peer is allowed and the lists are empty:
// the kernel side needs one flag and no lookup. When Isolated is true a
// packet is allowed exactly when its peer address's longest matching
// prefix in CIDRs has a PortRule covering its protocol and port.
// Equivalently (for a datapath keyed by identity), when the peer's
// identity has such a rule in Identities, or the longest match in Blocks
// has one.
type Direction struct {
	Isolated bool `json:"isolated"`
	// Policies are the policies that select the pod and have this
	// direction in their policyTypes, "namespace/name", sorted.
	Policies []string `json:"policies,omitempty"`
	// CIDRs is the complete allow-set as a longest-prefix-match table:
	// ipBlocks with their excepts flattened (each prefix carries the
	// union of every rule covering it, so an except of one rule never
	// hides another rule's allow) and every selected pod's address as a
	// /32 or /128. An entry with no rules exists only to shadow a shorter
	// prefix that allows something (an except). Sorted by family, then
	// address, then prefix length.
	CIDRs []CIDREntry `json:"cidrs,omitempty"`
	// Blocks is the part of CIDRs that does not come from selectors:
	// ipBlocks, rules with no peers (0.0.0.0/0 and ::/0), the node's
	// addresses, and pods an ipBlock egress rule reaches through a named
	// port. Flattened the same way.
	Blocks []CIDREntry `json:"blocks,omitempty"`
	// Identities is the part of CIDRs that comes from selectors, keyed by
	// the peer pod's identity (see Identity) instead of its addresses,
	// sorted by key. HostIdentity stands for this node.
	Identities []IdentityRule `json:"identities,omitempty"`
}

// CIDREntry is one prefix of a longest-prefix-match table and what it
// allows.
type CIDREntry struct {
	Prefix netip.Prefix `json:"prefix"`
	Rules  []PortRule   `json:"rules"`
}

// IdentityRule is what a peer identity is allowed.
type IdentityRule struct {
	Identity string     `json:"identity"`
	Rules    []PortRule `json:"rules"`
}

// PortRule allows a protocol's ports First through Last. ProtoAny means
// every protocol and port (a rule that lists no ports). Within one entry
// the rules of a protocol never overlap: overlapping ranges of several
// policy rules are split so that each range lists every rule allowing it.
type PortRule struct {
	Protocol Protocol  `json:"protocol"`
	First    uint16    `json:"first"`
	Last     uint16    `json:"last"`
	By       []RuleRef `json:"by"`
}

// Allows reports whether r covers proto and port.
func (r PortRule) Allows(proto Protocol, port uint16) bool {
	if r.Protocol == ProtoAny {
		return true
	}
	return r.Protocol == proto && r.First <= port && port <= r.Last
}

// String writes "TCP/80", "UDP/1000-2000", "SCTP" (every port) or "any".
func (r PortRule) String() string {
	switch {
	case r.Protocol == ProtoAny:
		return "any"
	case r.First == 0 && r.Last == 65535:
		return r.Protocol.String()
	case r.First == r.Last:
		return fmt.Sprintf("%s/%d", r.Protocol, r.First)
	}
	return fmt.Sprintf("%s/%d-%d", r.Protocol, r.First, r.Last)
}

// RuleRef names what allows an entry: a policy's rule and peer, or the
// node exemption.
type RuleRef struct {
	// Host marks the allow of traffic from the pod's own node (kubelet
	// probes); the other fields are then empty.
	Host   bool   `json:"host,omitempty"`
	Policy string `json:"policy,omitempty"` // namespace/name
	// Rule indexes the policy's ingress or egress list (the direction is
	// the one the entry is in).
	Rule int `json:"rule"`
	// Peer indexes the rule's from or to list; -1 when the rule lists no
	// peers (it allows every peer).
	Peer int `json:"peer"`
}

// MarshalJSON writes {"host":true} for the node exemption, and policy,
// rule and peer otherwise.
func (r RuleRef) MarshalJSON() ([]byte, error) {
	if r.Host {
		return []byte(`{"host":true}`), nil
	}
	return fmt.Appendf(nil, `{"policy":%q,"rule":%d,"peer":%d}`, r.Policy, r.Rule, r.Peer), nil
}

// String writes "ns/name rule 0 peer 1", "ns/name rule 0 (any peer)" or
// "node".
func (r RuleRef) String() string {
	if r.Host {
		return "node"
	}
	if r.Peer < 0 {
		return fmt.Sprintf("%s rule %d (any peer)", r.Policy, r.Rule)
	}
	return fmt.Sprintf("%s rule %d peer %d", r.Policy, r.Rule, r.Peer)
}

func compareRuleRef(a, b RuleRef) int {
	if a.Host != b.Host {
		if a.Host {
			return -1
		}
		return 1
	}
	return cmp.Or(strings.Compare(a.Policy, b.Policy), cmp.Compare(a.Rule, b.Rule), cmp.Compare(a.Peer, b.Peer))
}

// HostIdentity is the identity of the endpoint's own node in
// Direction.Identities (kubelet probes; a datapath can match it by the
// packet's origin rather than by address).
const HostIdentity = "reserved:host"

// Lookup returns the longest prefix of d's CIDRs containing ip and the
// rules of it allowing proto/port (nil: denied). ok is false when no
// prefix contains ip. Lookup does not consider Isolated.
func (d *Direction) Lookup(ip netip.Addr, proto Protocol, port uint16) (prefix netip.Prefix, by []RuleRef, ok bool) {
	return lookup(d.CIDRs, ip, proto, port)
}

func lookup(entries []CIDREntry, ip netip.Addr, proto Protocol, port uint16) (netip.Prefix, []RuleRef, bool) {
	ip = ip.Unmap()
	best := -1
	for i, e := range entries {
		if e.Prefix.Contains(ip) && (best < 0 || e.Prefix.Bits() > entries[best].Prefix.Bits()) {
			best = i
		}
	}
	if best < 0 {
		return netip.Prefix{}, nil, false
	}
	return entries[best].Prefix, allowing(entries[best].Rules, proto, port), true
}

// allowing returns the refs of every rule covering proto/port, sorted.
func allowing(rules []PortRule, proto Protocol, port uint16) []RuleRef {
	var by []RuleRef
	for _, r := range rules {
		if r.Allows(proto, port) {
			by = append(by, r.By...)
		}
	}
	return sortRefs(by)
}

func sortRefs(by []RuleRef) []RuleRef {
	if len(by) < 2 {
		return by
	}
	by = slices.Clone(by)
	slices.SortFunc(by, compareRuleRef)
	return slices.Compact(by)
}
