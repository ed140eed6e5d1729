package store

import (
	"cmp"
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
	SecurityGroupIDs []string     `json:"securityGroups"` // as created
	Owned            bool         `json:"owned"`          // veni created it; only owned ENIs may be deleted
	State            ENIState     `json:"state"`
	CreatedAt        time.Time    `json:"createdAt"`
	ReadyAt          time.Time    `json:"readyAt,omitzero"`

	// Table is the node's policy-routing table for this ENI, assigned by
	// PutENI when zero and unique among the node's ENIs. It is the ENI's
	// for life: an ifindex is not (a detached and re-attached ENI gets a
	// new one, and pod rules would point at an empty table).
	Table int `json:"table"`

	// MissingSince is when the cloud first failed to list the ENI as
	// attached to this instance, and MissingSyncs how many syncs in a row
	// it has; zero while it is listed. Describe is eventually consistent:
	// veni acts on a missing ENI only once it has been missing for a
	// while, and MissingConfirmed says since when it has decided so.
	MissingSince     time.Time `json:"missingSince,omitzero"`
	MissingSyncs     int       `json:"missingSyncs,omitempty"`
	MissingConfirmed time.Time `json:"missingConfirmed,omitzero"`

	// Prefixes are the IPv4 /28s delegated to the ENI (prefix mode). Each
	// of their addresses the pool may hand out is an IP record tagged with
	// its prefix; a prefix is recorded here before its addresses and
	// forgotten with them.
	Prefixes []netip.Prefix `json:"prefixes,omitempty"`

	// IPv6Prefixes are the IPv6 /80s delegated to the ENI (prefix mode on
	// a dual-stack node). A /80 cannot be listed address by address: an
	// IP record tagged with it exists only for an address the pool handed
	// out (made in the transaction that reserved it), and the /80 is
	// recorded here before any of them.
	IPv6Prefixes []netip.Prefix `json:"ipv6Prefixes,omitempty"`

	// IPv6CIDR and Gateway6 are the vSwitch's IPv6 /64 and gateway (dual
	// stack); both zero when the vSwitch has no IPv6 or the node's stack
	// is IPv4 only. Records written before dual stack have neither.
	IPv6CIDR netip.Prefix `json:"vswitchIPv6CIDR,omitzero"`
	Gateway6 netip.Addr   `json:"gateway6,omitzero"`

	// Kind says what the ENI is for: shared (the pool's, "" in records
	// written before other kinds existed), the node's trunk (which also
	// serves shared pods), a trunk member, or an exclusive ENI. A member
	// or an exclusive ENI belongs to one pod (Pod, "namespace/name"); a
	// member rides TrunkID tagged with VLANID (its Attachment.DeviceIndex).
	Kind    ENIKind `json:"kind,omitempty"`
	Pod     string  `json:"pod,omitempty"`
	TrunkID string  `json:"trunkID,omitempty"`
	VLANID  int     `json:"vlanID,omitempty"`

	// Fixed is set on a dedicated ENI kept for its pod across the pod's
	// deletion (a PodNetworking of allocationType Fixed; see fixed.go):
	// Pod stays set when the pod goes, and Fixed.PodGoneAt says since
	// when.
	Fixed *Fixed `json:"fixed,omitempty"`
}

// ENIKind is what an ENI is for (ENI.Kind).
type ENIKind string

// ENI kinds.
const (
	ENIShared    ENIKind = ""          // the pool's: pods share it, one address each
	ENITrunk     ENIKind = "trunk"     // the node's trunk: shared, and carries members' tagged traffic
	ENIMember    ENIKind = "member"    // one pod's, on the trunk, tagged with its VLAN ID
	ENIExclusive ENIKind = "exclusive" // one pod's, moved into the pod's network namespace
)

// Dedicated reports whether the ENI belongs to one pod (a member or an
// exclusive ENI): the shared pool never hands out its addresses.
func (e ENI) Dedicated() bool { return e.Kind == ENIMember || e.Kind == ENIExclusive }

// HasPrefix reports whether p (an IPv4 /28 or an IPv6 /80) is delegated
// to the ENI.
func (e ENI) HasPrefix(p netip.Prefix) bool {
	return slices.Contains(e.Prefixes, p) || slices.Contains(e.IPv6Prefixes, p)
}

// Missing reports whether the cloud stopped listing the ENI as attached,
// even once.
func (e ENI) Missing() bool { return !e.MissingSince.IsZero() }

// Kept reports whether the ENI is a fixed ENI whose pod is gone, kept on
// the node for the pod's return.
func (e ENI) Kept() bool { return e.Fixed.Kept() }

// Gone reports whether veni decided the ENI is no longer attached: no pod
// gets an address on it.
func (e ENI) Gone() bool { return !e.MissingConfirmed.IsZero() }

func (e ENI) validate() error {
	switch {
	case e.ID == "":
		return fmt.Errorf("eni: empty id: %w", ErrInvalid)
	case !e.State.valid():
		return fmt.Errorf("eni %s: state %q: %w", e.ID, e.State, ErrInvalid)
	case e.Table < 0:
		return fmt.Errorf("eni %s: table %d: %w", e.ID, e.Table, ErrInvalid)
	}
	switch e.Kind {
	case ENIShared, ENITrunk, ENIExclusive:
	case ENIMember:
		if e.TrunkID == "" || e.VLANID < 1 || e.VLANID > 4094 {
			return fmt.Errorf("eni %s: member of trunk %q with VLAN ID %d: %w", e.ID, e.TrunkID, e.VLANID, ErrInvalid)
		}
	default:
		return fmt.Errorf("eni %s: kind %q: %w", e.ID, e.Kind, ErrInvalid)
	}
	if e.Fixed != nil && (!e.Dedicated() || e.Pod == "") {
		return fmt.Errorf("eni %s: fixed, but %s eni of pod %q: %w", e.ID, cmp.Or(string(e.Kind), "shared"), e.Pod, ErrInvalid)
	}
	for _, p := range e.Prefixes {
		if !p.IsValid() || p != p.Masked() || !p.Addr().Is4() {
			return fmt.Errorf("eni %s: prefix %s is not an aligned IPv4 prefix: %w", e.ID, p, ErrInvalid)
		}
	}
	for _, p := range e.IPv6Prefixes {
		if !p.IsValid() || p != p.Masked() || !p.Addr().Is6() || (e.IPv6CIDR.IsValid() && !e.IPv6CIDR.Contains(p.Addr())) {
			return fmt.Errorf("eni %s: ipv6 prefix %s is not an aligned IPv6 prefix of %s: %w", e.ID, p, e.IPv6CIDR, ErrInvalid)
		}
	}
	if e.IPv6CIDR.IsValid() && (!e.IPv6CIDR.Addr().Is6() || !e.IPv6CIDR.Contains(e.Gateway6)) {
		return fmt.Errorf("eni %s: ipv6 cidr %s with gateway %s: %w", e.ID, e.IPv6CIDR, e.Gateway6, ErrInvalid)
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

// IP is a secondary private IPv4 address of one of the node's ENIs, or
// (dual stack) one of its IPv6 addresses: both live in one bucket, keyed
// by address, so "an address is held by at most one owner" is one rule.
type IP struct {
	Addr      netip.Addr `json:"addr"`
	ENIID     string     `json:"eniID"`
	State     IPState    `json:"state"`
	Owner     OwnerKey   `json:"owner,omitempty"` // empty exactly when free
	AddedAt   time.Time  `json:"addedAt"`
	FreeSince time.Time  `json:"freeSince,omitzero"` // when it last became free: idle-reclaim cool-down and least-recently-used reuse

	// Prefix is the delegated /28 or /80 the address belongs to (prefix
	// mode), the zero Prefix for a secondary IP. Such an address goes back
	// to the cloud only with its whole prefix.
	Prefix netip.Prefix `json:"prefix,omitzero"`

	// StickTo is the pod ("namespace/name") a free address is kept for
	// until StickUntil: a StatefulSet's pod, or one annotated
	// k8s.aliyun.com/pod-ip-reservation, recreated on this node in time
	// gets its address back (Terway's "IP stick"). Only a free address
	// sticks; no other pod is given it meanwhile.
	StickTo    string    `json:"stickTo,omitempty"`
	StickUntil time.Time `json:"stickUntil,omitzero"`
}

// Sticking reports whether the address is kept for StickTo at now.
func (ip IP) Sticking(now time.Time) bool {
	return ip.State == IPFree && ip.StickTo != "" && now.Before(ip.StickUntil)
}

// Open reports whether any pod may be given the address at now: it is
// free and not kept for a pod.
func (ip IP) Open(now time.Time) bool { return ip.State == IPFree && !ip.Sticking(now) }

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
	case ip.State != IPFree && ip.StickTo != "":
		return fmt.Errorf("ip %s: %s but kept for %s: %w", ip.Addr, ip.State, ip.StickTo, ErrInvalid)
	case ip.Prefix.IsValid() && !ip.Prefix.Contains(ip.Addr):
		return fmt.Errorf("ip %s: outside its prefix %s: %w", ip.Addr, ip.Prefix, ErrInvalid)
	}
	return nil
}

// Allocation is one pod attachment's hold on an IP.
type Allocation struct {
	Key          OwnerKey `json:"key"` // NewOwnerKey(ContainerID, IfName)
	ContainerID  string   `json:"containerID"`
	IfName       string   `json:"ifName"`
	Network      string   `json:"network,omitempty"` // the CNI network name: GC of one network leaves another's alone
	PodNamespace string   `json:"podNamespace,omitempty"`
	PodName      string   `json:"podName,omitempty"`
	PodUID       string   `json:"podUID,omitempty"`
	// IP is the pod's address: its IPv4, or on an IPv6-only node
	// (ip_stack ipv6) its IPv6, with IP6 zero. Either way it is the
	// address the allocation is known by (Families splits them for the
	// datapath).
	IP    netip.Addr `json:"ip"`
	ENIID string     `json:"eniID"`
	// IP6 is the pod's IPv6 on the same ENI (dual stack), held with IP in
	// the same state and taken and given back in the same transactions;
	// the zero Addr for an IPv4-only or IPv6-only pod (and in records
	// written before dual stack).
	IP6        netip.Addr `json:"ip6,omitzero"`
	State      IPState    `json:"state"`      // IPReserved or IPBound
	ReservedBy int        `json:"reservedBy"` // pid of the reserving process in its own PID namespace; for humans only
	ReservedAt time.Time  `json:"reservedAt"`
	BoundAt    time.Time  `json:"boundAt,omitzero"`

	// NetNS is the pod's network namespace as the runtime gave its path,
	// and NetNSID the namespace that path named at ADD. A bound
	// allocation is alive while the path still names that namespace.
	NetNS   string  `json:"netns,omitempty"`
	NetNSID NetNSID `json:"netnsID,omitzero"`

	// HostVeth and HostIfindex name the host end of the pod's veth once
	// the pod is plumbed, so a release detaches exactly this pod's
	// datapath state and nothing a later owner of the address installed.
	HostVeth    string `json:"hostVeth,omitempty"`
	HostIfindex int    `json:"hostIfindex,omitempty"`

	// Recovered is set on allocations rebuilt from the host's links after
	// the store was lost: who the pod is may be partly unknown.
	Recovered bool `json:"recovered,omitempty"`

	// StickFor is how long the pod's addresses stay kept for it once
	// released (IP.StickTo), zero for a pod whose addresses go straight
	// back to the pool; decided at ADD from what the pod is.
	StickFor time.Duration `json:"stickFor,omitempty"`
}

// Families returns the pod's IPv4 and IPv6, either zero when the pod has
// none of that family: an IPv6-only pod's IPv6 is its IP.
func (a Allocation) Families() (v4, v6 netip.Addr) { return Families(a.IP, a.IP6) }

// Families splits an allocation's (IP, IP6) into (IPv4, IPv6): on an
// IPv6-only node IP is the IPv6 and IP6 is zero.
func Families(ip, ip6 netip.Addr) (v4, v6 netip.Addr) {
	if ip.Is6() {
		return netip.Addr{}, ip
	}
	return ip, ip6
}

// NetNSID identifies a network namespace: the nsfs device and inode its
// path resolved to, and the PID namespace of the process that resolved it
// (a /proc/<pid>/ns/net path means something only in that PID namespace).
// The zero value means unknown (allocations written before veni recorded
// it).
type NetNSID struct {
	Dev   uint64 `json:"dev,omitempty"`
	Inode uint64 `json:"inode,omitempty"`
	PIDNS uint64 `json:"pidns,omitempty"` // inode of the resolver's PID namespace
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
	case a.IP.Is6() && a.IP6.IsValid():
		return fmt.Errorf("allocation %s: ip %s is ipv6 (an IPv6-only pod) but ip6 %s is set too: %w", a.Key, a.IP, a.IP6, ErrInvalid)
	case a.IP.Is6() && a.IP.Is4In6():
		return fmt.Errorf("allocation %s: ip %s is an IPv4-mapped address: %w", a.Key, a.IP, ErrInvalid)
	case a.IP6.IsValid() && (!a.IP6.Is6() || a.IP6.Is4In6()):
		return fmt.Errorf("allocation %s: ip6 %s is not ipv6: %w", a.Key, a.IP6, ErrInvalid)
	}
	return nil
}

// Lease records who holds a node-wide claim, such as the right to call the
// cloud to grow the pool ("allocator"). Liveness is the claim's (a flock,
// see claim.go); the record is for humans and waiters' messages.
type Lease struct {
	Name      string    `json:"name"`
	Token     string    `json:"token"`     // random per acquisition: only its writer deletes the record
	HolderPID int       `json:"holderPID"` // in the holder's own PID namespace; for humans
	Holder    string    `json:"holder"`    // which program holds it, for humans
	Acquired  time.Time `json:"acquired"`
	Renewed   time.Time `json:"renewed,omitzero"` // the holder's last sign of progress
	Expires   time.Time `json:"expires"`          // the holder's cloud work is cancelled by then
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
	MinIdle  int                `json:"minIdle"` // the daemon keeps at least this many free IPs
	MaxIdle  int                `json:"maxIdle"` // and reclaims free IPs above this
	Backoffs map[string]Backoff `json:"backoffs,omitempty"`
	WarmedUp bool               `json:"warmedUp,omitempty"` // the start-up warm-up (ip_warm_up_size) is done

	// Mode is the pool's mode, "ip" or "prefix" (config.PoolMode), set
	// when the pool first asks the cloud for addresses. A node does not
	// change mode while it holds addresses (Terway: PrefixModeImmutable).
	// Empty in a store that predates prefix mode: its addresses, if any,
	// are secondary IPs.
	Mode string `json:"mode,omitempty"`
	// Stack is the node's IP stack, "ipv4", "dual" or "ipv6" (config
	// ip_stack; on an "ipv6" node an allocation's IP is its IPv6),
	// set with Mode. Like the mode it cannot change while the store holds
	// addresses: a dual pod's IPv6 would lose its pool, an IPv4 pod would
	// have no IPv6 (ErrStackMismatch in ipam). Empty in a store that
	// predates dual stack: IPv4.
	Stack string `json:"stack,omitempty"`
	// ENIMode is "shared" or "exclusive" (config ENIMode: one ENI per
	// pod), set with Mode, and like it kept for life: a node's pods are
	// plumbed one way or the other. Empty in a store that predates
	// exclusive mode: shared.
	ENIMode   string    `json:"eniMode,omitempty"`
	UpdatedAt time.Time `json:"updatedAt,omitzero"`

	// LastReclaim is when idle addresses were last returned to the cloud;
	// the next reclaim waits idle_ip_reclaim_interval after it.
	LastReclaim time.Time `json:"lastReclaim,omitzero"`
	// LastLeakSweep is when veni last looked for ENIs it created for this
	// node that never made it into the store.
	LastLeakSweep time.Time `json:"lastLeakSweep,omitzero"`
	// LastCloudSync is when the daemon last described the node's ENIs
	// through the OpenAPI (its steady state reads instance metadata).
	LastCloudSync time.Time `json:"lastCloudSync,omitzero"`
	// CreatingSince is set before veni asks the cloud for a new ENI and
	// cleared in the transaction that records it. Still set when nobody
	// holds the allocator lease, it means a create was cut short (a crash,
	// a lost answer) and an ENI may exist that the store does not know:
	// the next Reconcile looks for it.
	CreatingSince time.Time `json:"creatingSince,omitzero"`
	// DelegatingSince is set before veni asks the cloud for prefixes and
	// cleared once they are recorded. Instance metadata lists no
	// prefixes, so a delegation cut short (a crash, a lost answer) would
	// stay unseen until cloud_sync_interval: found set by the next
	// allocator lease holder, it makes Reconcile describe the ENIs.
	DelegatingSince time.Time `json:"delegatingSince,omitzero"`
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

	// CNI is set on the record a CNI plugin call leaves: how an ADD or a
	// DEL went. The daemon turns these into metrics and Kubernetes events;
	// the plugin never talks to either.
	CNI *CNICall `json:"cni,omitempty"`
}

// CNI call verbs, as CNICall.Verb.
const (
	CNIAdd = "ADD"
	CNIDel = "DEL"
)

// CNICall is a CNI plugin's one-line account of a call it served.
type CNICall struct {
	Verb         string        `json:"verb"` // CNIAdd, CNIDel
	Code         uint          `json:"code"` // the CNI error code; 0 when the call succeeded
	Took         time.Duration `json:"took"`
	Key          OwnerKey      `json:"key,omitempty"`
	PodNamespace string        `json:"podNamespace,omitempty"`
	PodName      string        `json:"podName,omitempty"`
	PodUID       string        `json:"podUID,omitempty"`
	IP           netip.Addr    `json:"ip,omitzero"`
}
