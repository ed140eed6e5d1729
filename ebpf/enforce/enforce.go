package enforce

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/veni-cni/veni/policy"
)

// Options configure Open.
type Options struct {
	// PinDir is the node's pin directory, the one the fast path uses
	// (fastpath.NodePinDir): the maps the fast path's ingress check reads
	// are pinned there. Required.
	PinDir string
	// PodHook is how AttachEndpoint hooks the programs to a pod's host
	// veth: fastpath.PodHookTC (the default when empty: clsact and
	// cls_bpf filters) or fastpath.PodHookTCX (pinned TCX links). Use the
	// fast path's setting: either way the policy programs run first.
	PodHook string
	// Flows is the size of the node's connection table when it is made
	// (the first time an endpoint gets a table); 0 means DefaultFlows. A
	// table that exists keeps its size.
	Flows int
	// Flows6 is the size of the node's IPv6 connection table, made with
	// the IPv4 one; 0 means a quarter of Flows (at least 1024).
	Flows6 int
}

// DefaultFlows is the connection table's size unless Options.Flows says
// otherwise. Each flow of an endpoint that has a table takes an entry
// (about 80 bytes of kernel memory, allocated up front); when it is full
// the least recently used flows are forgotten.
const DefaultFlows = 65536

// EndpointKey names an endpoint: a pod by its host veth. The kernel side
// keys everything by Ifindex; IP is recorded to list endpoints and, when
// removing, to leave alone what a new pod on a reused ifindex installed.
// Both addresses are recorded for Service deferral, which finds the
// source endpoint of a packet by its address.
type EndpointKey struct {
	Ifindex int        // the pod's host-side veth, in the node's namespace
	IP      netip.Addr // the pod's IPv4 address
	IP6     netip.Addr // its IPv6 address on a dual-stack node (zero: none)
}

func (k EndpointKey) String() string {
	switch {
	case k.IP.IsValid() && k.IP6.IsValid():
		return fmt.Sprintf("%s %s (ifindex %d)", k.IP, k.IP6, k.Ifindex)
	case k.IP.IsValid():
		return fmt.Sprintf("%s (ifindex %d)", k.IP, k.Ifindex)
	}
	return fmt.Sprintf("ifindex %d", k.Ifindex)
}

// Endpoint is what the kernel holds for one endpoint.
type Endpoint struct {
	EndpointKey
	// Hooked reports that the programs are attached to its host veth
	// (AttachEndpoint recorded it).
	Hooked bool `json:"hooked"`
	// Selected reports that it has a table: a policy selects it in some
	// direction, or it fails closed. Without one every packet passes.
	Selected        bool `json:"selected"`
	IngressIsolated bool `json:"ingressIsolated,omitempty"`
	EgressIsolated  bool `json:"egressIsolated,omitempty"`
	FailClosed      bool `json:"failClosed,omitempty"`
	// Generation is the table's generation: flows allowed under another
	// one are decided again on their next packet.
	Generation uint32 `json:"generation,omitempty"`
	// Digest identifies the table's content: SetEndpoint with a ruleset
	// of the same digest changes nothing.
	Digest uint64 `json:"digest,omitempty"`
	// Entries counts the table's entries in the node's trie (prefixes,
	// port blocks, and its HEAD).
	Entries int `json:"entries,omitempty"`
}

// Stats are an endpoint's counters since its first table or hook: flows
// allowed (a flow counts once, when it is first allowed or allowed again
// after a policy change) and packets dropped, per direction.
type Stats struct {
	AllowedIngress uint64 `json:"allowedIngress"`
	AllowedEgress  uint64 `json:"allowedEgress"`
	DeniedIngress  uint64 `json:"deniedIngress"`
	DeniedEgress   uint64 `json:"deniedEgress"`
}

// Direction is a packet's direction from the endpoint's point of view.
type Direction uint8

// Directions, as in the C code (enum pol_dir).
const (
	Ingress Direction = 0 // to the endpoint
	Egress  Direction = 1 // from the endpoint
)

func (d Direction) String() string {
	switch d {
	case Ingress:
		return "ingress"
	case Egress:
		return "egress"
	}
	return fmt.Sprintf("direction(%d)", uint8(d))
}

// MarshalText writes String().
func (d Direction) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Reason says why a packet was dropped (enum pol_reason).
type Reason uint8

// Reasons, as in the C code.
const (
	ReasonPolicy    Reason = 1 // a new flow no rule allows
	ReasonChanged   Reason = 2 // an established flow a policy change no longer allows
	ReasonRelated   Reason = 3 // an ICMP error about a flow the endpoint does not have
	ReasonFragment  Reason = 4 // a later fragment whose first fragment was not allowed
	ReasonIPv6      Reason = 5 // IPv6 in an isolated direction, by a build without the IPv6 check (none today: both objects compile it in)
	ReasonMalformed Reason = 6 // truncated IPv4 headers in an isolated direction
)

var reasonNames = [...]string{
	ReasonPolicy:    "policy",
	ReasonChanged:   "policy-changed",
	ReasonRelated:   "related-unknown",
	ReasonFragment:  "fragment",
	ReasonIPv6:      "ipv6",
	ReasonMalformed: "malformed",
}

func (r Reason) String() string {
	if int(r) < len(reasonNames) && reasonNames[r] != "" {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// MarshalText writes String().
func (r Reason) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// Drop is one dropped packet, as the ring buffer reports it. For an ICMP
// error, Src, Dst and Protocol are those of the packet it quotes.
type Drop struct {
	Time       time.Time       `json:"time"`
	Ifindex    int             `json:"ifindex"` // the endpoint
	Direction  Direction       `json:"direction"`
	Reason     Reason          `json:"reason"`
	Protocol   policy.Protocol `json:"protocol"`
	Src        netip.AddrPort  `json:"src"`
	Dst        netip.AddrPort  `json:"dst"`
	Generation uint32          `json:"generation"`
}

func (d Drop) String() string {
	return fmt.Sprintf("%s %s %s -> %s ifindex %d %s", d.Direction, d.Protocol, d.Src, d.Dst, d.Ifindex, d.Reason)
}

// Counters are the node's totals, summed over CPUs, since the maps were
// made.
type Counters struct {
	Dropped     map[Reason]uint64 `json:"dropped"`
	AllowedNew  uint64            `json:"allowedNew"`  // new flows allowed (and tracked)
	Renewed     uint64            `json:"renewed"`     // flows of an older generation allowed again
	AllowedHost uint64            `json:"allowedHost"` // new flows from the node itself
	CTFull      uint64            `json:"ctFull"`      // flows that could not be tracked
	NoCT        uint64            `json:"noCT"`        // flows allowed before the connection table existed
	EventsLost  uint64            `json:"eventsLost"`  // drop events the ring buffer had no room for
	Deferred    uint64            `json:"deferred"`    // new flows to a Service whose egress was decided after DNAT
}
