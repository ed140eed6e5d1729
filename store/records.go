package store

import (
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// OwnerKey identifies who holds an IP: the CNI's ContainerID and IfName,
// joined by "/". The CNI spec guarantees the pair is unique on a node, and
// ADD, DEL and GC all carry it.
type OwnerKey string

// NewOwnerKey returns the key of the attachment (containerID, ifName).
func NewOwnerKey(containerID, ifName string) OwnerKey {
	return OwnerKey(containerID + "/" + ifName)
}

// ENIState is where an ENI is in veni's life cycle on this node.
type ENIState string

// ENI states. Only ready ENIs hand out IPs.
const (
	// ENIAttaching: created or attaching in the cloud, not yet usable by
	// the node (no link seen yet).
	ENIAttaching ENIState = "attaching"
	// ENIReady: attached, its link is up on the node, its IPs may be used.
	ENIReady ENIState = "ready"
	// ENIDraining: chosen for removal; no new IP is handed out from it.
	ENIDraining ENIState = "draining"
)

func (s ENIState) valid() bool {
	return s == ENIAttaching || s == ENIReady || s == ENIDraining
}

// ENI is a secondary ENI of this node that veni manages. The instance's
// primary ENI is never recorded: pods never use it.
type ENI struct {
	ID               string       `json:"id"`
	MAC              string       `json:"mac"` // lowercase "aa:bb:cc:dd:ee:ff", as net.HardwareAddr.String prints it
	InstanceID       string       `json:"instanceID"`
	ZoneID           string       `json:"zoneID,omitempty"`
	VSwitchID        string       `json:"vswitchID"`
	VSwitchCIDR      netip.Prefix `json:"vswitchCIDR"`
	Gateway          netip.Addr   `json:"gateway"`
	PrimaryIP        netip.Addr   `json:"primaryIP"`      // the ENI's own address; never given to a pod
	DeviceIndex      int          `json:"deviceIndex"`    // attach order on the instance; 0 when unknown
	SecurityGroupIDs []string     `json:"securityGroups"` // as created
	Owned            bool         `json:"owned"`          // veni created it; only owned ENIs may be deleted
	State            ENIState     `json:"state"`
	CreatedAt        time.Time    `json:"createdAt"`
	ReadyAt          time.Time    `json:"readyAt,omitzero"`
}

func (e ENI) validate() error {
	switch {
	case e.ID == "":
		return fmt.Errorf("eni: empty id: %w", ErrInvalid)
	case !e.State.valid():
		return fmt.Errorf("eni %s: state %q: %w", e.ID, e.State, ErrInvalid)
	}
	return nil
}

// IPState is the state of a secondary IP, and of an allocation.
type IPState string

// IP and allocation states. An IP is free, or held by exactly one owner:
// reserved between the two transactions of a CNI ADD, bound once the pod is
// plumbed. An allocation is only ever reserved or bound.
const (
	IPFree     IPState = "free"
	IPReserved IPState = "reserved"
	IPBound    IPState = "bound"
)

func (s IPState) valid() bool {
	return s == IPFree || s == IPReserved || s == IPBound
}

// IP is a secondary private IPv4 address of one of the node's ENIs.
type IP struct {
	Addr      netip.Addr `json:"addr"`
	ENIID     string     `json:"eniID"`
	State     IPState    `json:"state"`
	Owner     OwnerKey   `json:"owner,omitempty"` // empty exactly when free
	AddedAt   time.Time  `json:"addedAt"`
	FreeSince time.Time  `json:"freeSince,omitzero"` // when it last became free: idle-reclaim cool-down and least-recently-used reuse
}

func (ip IP) validate() error {
	switch {
	case !ip.Addr.IsValid():
		return fmt.Errorf("ip: invalid address: %w", ErrInvalid)
	case ip.ENIID == "":
		return fmt.Errorf("ip %s: empty eni id: %w", ip.Addr, ErrInvalid)
	case !ip.State.valid():
		return fmt.Errorf("ip %s: state %q: %w", ip.Addr, ip.State, ErrInvalid)
	case ip.State == IPFree && ip.Owner != "":
		return fmt.Errorf("ip %s: free but owned by %s: %w", ip.Addr, ip.Owner, ErrInvalid)
	case ip.State != IPFree && ip.Owner == "":
		return fmt.Errorf("ip %s: %s without owner: %w", ip.Addr, ip.State, ErrInvalid)
	}
	return nil
}

// Allocation is one pod attachment's hold on an IP.
type Allocation struct {
	Key          OwnerKey   `json:"key"` // NewOwnerKey(ContainerID, IfName)
	ContainerID  string     `json:"containerID"`
	IfName       string     `json:"ifName"`
	PodNamespace string     `json:"podNamespace,omitempty"`
	PodName      string     `json:"podName,omitempty"`
	PodUID       string     `json:"podUID,omitempty"`
	NetNS        string     `json:"netns,omitempty"` // path as the runtime gave it
	IP           netip.Addr `json:"ip"`
	ENIID        string     `json:"eniID"`
	State        IPState    `json:"state"`      // IPReserved or IPBound
	ReservedBy   int        `json:"reservedBy"` // pid of the process that reserved it
	ReservedAt   time.Time  `json:"reservedAt"`
	BoundAt      time.Time  `json:"boundAt,omitzero"`
}

func (a Allocation) validate() error {
	switch {
	case a.ContainerID == "" || a.IfName == "":
		return fmt.Errorf("allocation %q: empty container id or ifname: %w", a.Key, ErrInvalid)
	case strings.Contains(a.IfName, "/"):
		return fmt.Errorf("allocation %q: ifname contains '/': %w", a.Key, ErrInvalid)
	case a.Key != NewOwnerKey(a.ContainerID, a.IfName):
		return fmt.Errorf("allocation %q: key does not match %s/%s: %w", a.Key, a.ContainerID, a.IfName, ErrInvalid)
	case a.State != IPReserved && a.State != IPBound:
		return fmt.Errorf("allocation %s: state %q: %w", a.Key, a.State, ErrInvalid)
	case !a.IP.IsValid() || a.ENIID == "":
		return fmt.Errorf("allocation %s: no ip or eni: %w", a.Key, ErrInvalid)
	}
	return nil
}

// Lease gives one process at a time the right to do something for the whole
// node, such as calling the cloud to grow the pool ("allocator").
type Lease struct {
	Name      string    `json:"name"`
	HolderPID int       `json:"holderPID"`
	Holder    string    `json:"holder"` // which program holds it, for humans
	Acquired  time.Time `json:"acquired"`
	Expires   time.Time `json:"expires"`
}

// Backoff records that the pool must not ask the cloud for something until
// a deadline, and why. It is how "vSwitch out of addresses" and "quota
// reached" become visible instead of retried in a hot loop.
type Backoff struct {
	Since  time.Time `json:"since"`
	Until  time.Time `json:"until"`
	Reason string    `json:"reason"` // the cloud's answer, for status and events
}

// Backoff scopes used as keys of PoolState.Backoffs.
const (
	ScopeENIQuota = "eni-quota" // no more ENIs may be created on this instance
)

// VSwitchScope is the PoolState.Backoffs key for a vSwitch.
func VSwitchScope(id string) string { return "vswitch/" + id }

// ENIScope is the PoolState.Backoffs key for adding IPs to one ENI.
func ENIScope(id string) string { return "eni/" + id }

// PoolState is the node's pool targets and active back-offs. There is one
// per node; a store that never had one returns the zero value.
type PoolState struct {
	MinIdle   int                `json:"minIdle"` // the daemon keeps at least this many free IPs
	MaxIdle   int                `json:"maxIdle"` // and reclaims free IPs above this
	Backoffs  map[string]Backoff `json:"backoffs,omitempty"`
	WarmedUp  bool               `json:"warmedUp,omitempty"` // the start-up warm-up (ip_warm_up_size) is done
	UpdatedAt time.Time          `json:"updatedAt,omitzero"`
}

// ActiveBackoff returns the back-off of scope if it is still running at now.
func (p PoolState) ActiveBackoff(scope string, now time.Time) (Backoff, bool) {
	b, ok := p.Backoffs[scope]
	if !ok || !now.Before(b.Until) {
		return Backoff{}, false
	}
	return b, true
}

// ScopedBackoff is a back-off with its PoolState.Backoffs key.
type ScopedBackoff struct {
	Scope string
	Backoff
}

// ActiveBackoffs returns the back-offs still running at now, sorted by
// scope.
func (p PoolState) ActiveBackoffs(now time.Time) []ScopedBackoff {
	var out []ScopedBackoff
	for _, scope := range slices.Sorted(maps.Keys(p.Backoffs)) {
		if b, ok := p.ActiveBackoff(scope, now); ok {
			out = append(out, ScopedBackoff{Scope: scope, Backoff: b})
		}
	}
	return out
}

// SetBackoff records a back-off of scope, replacing an older one.
func (p *PoolState) SetBackoff(scope string, b Backoff) {
	if p.Backoffs == nil {
		p.Backoffs = make(map[string]Backoff)
	}
	p.Backoffs[scope] = b
}

// PruneBackoffs drops back-offs that ended before now.
func (p *PoolState) PruneBackoffs(now time.Time) {
	for k, b := range p.Backoffs {
		if !now.Before(b.Until) {
			delete(p.Backoffs, k)
		}
	}
}

// Event is one entry of the node's event log: what veni did or failed to
// do, for "veni status" and for Kubernetes events. The log keeps the newest
// Options.EventCap entries.
type Event struct {
	Seq     uint64     `json:"seq"` // assigned by AppendEvent, increasing
	Time    time.Time  `json:"time"`
	Level   slog.Level `json:"level"`
	Reason  string     `json:"reason"`           // CamelCase, like Kubernetes event reasons: "VSwitchExhausted"
	Message string     `json:"message"`          // one human sentence
	Object  string     `json:"object,omitempty"` // "eni/eni-x", "vswitch/vsw-x", "pod/ns/name"
}
