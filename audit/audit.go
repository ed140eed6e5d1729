package audit

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/veni-cni/veni/eni"
	"github.com/veni-cni/veni/ipam"
	"github.com/veni-cni/veni/netplumb"
	"github.com/veni-cni/veni/podnet"
	"github.com/veni-cni/veni/store"
)

// Problem kinds.
const (
	KindStore      = "store"       // the store's own invariants (store.Check)
	KindOwnerGone  = "owner-gone"  // an allocation whose pod or ADD is gone (GC will release it)
	KindPlumbing   = "plumbing"    // a bound pod's links, routes or rules are missing
	KindENILink    = "eni-link"    // a ready ENI has no link on the node
	KindCloudIP    = "cloud-ip"    // a held IP is not assigned to its ENI in the cloud
	KindCloudENI   = "cloud-eni"   // an ENI in the store is missing or not attached in the cloud
	KindLeakedENI  = "leaked-eni"  // an ENI veni created for this node is unknown to the store
	KindCloudError = "cloud-error" // the cloud could not be asked
)

// Problem is one broken invariant.
type Problem struct {
	Kind   string `json:"kind"`
	Object string `json:"object"` // "ip/172.30.1.5", "eni/eni-x", "allocation/<key>"
	Detail string `json:"detail"`
}

func (p Problem) String() string { return fmt.Sprintf("%-11s %-40s %s", p.Kind, p.Object, p.Detail) }

// Options choose what to check besides the store.
type Options struct {
	Links bool       // check links, routes and rules in the caller's namespace
	Cloud eni.Client // nil skips the cloud checks
	Node  store.NodeInfo
	// OwnerAlive decides whether an allocation's owner lives and says
	// why; nil means podnet.Verdict with the store's claims.
	OwnerAlive func(store.Allocation) (bool, string)
	// LeakGrace is how old an ENI veni created for this node, unknown to
	// the store, must be to count as leaked: a younger one may be between
	// its creation and its record. Zero means 2 minutes (lease_ttl's
	// default).
	LeakGrace time.Duration
}

// Report is what Run found, with the counts an operator wants to see.
type Report struct {
	ENIs        int       `json:"enis"`
	IPs         int       `json:"ips"`
	Allocations int       `json:"allocations"`
	Problems    []Problem `json:"problems"`
	// Fixed are the fixed ENIs the node holds or moves (store/fixed.go),
	// for the operator: not problems.
	Fixed []FixedENI `json:"fixed,omitempty"`
}

// FixedENI is one fixed ENI as verify shows it.
type FixedENI struct {
	ID  string `json:"id"`
	Pod string `json:"pod"`
	IP  string `json:"ip"`
	// State is "attached" (its pod holds it), "kept" (its pod went, it
	// waits on the node for fixed_eni_hold), "detaching", "attaching"
	// or "parked" (detached by this node; deleted at Until).
	State string    `json:"state"`
	Since time.Time `json:"since,omitzero"`
	Until time.Time `json:"until,omitzero"`
}

func (f FixedENI) String() string {
	s := fmt.Sprintf("fixed %s (%s) of %s: %s", f.ID, f.IP, f.Pod, f.State)
	if !f.Since.IsZero() {
		s += " since " + f.Since.Format(time.RFC3339)
	}
	if !f.Until.IsZero() {
		s += ", released at " + f.Until.Format(time.RFC3339)
	}
	return s
}

// fixedOf lists the node's fixed ENIs for the report.
func fixedOf(enis []store.ENI, recs []store.FixedENI) []FixedENI {
	var out []FixedENI
	for _, e := range enis {
		if e.Fixed == nil {
			continue
		}
		f := FixedENI{ID: e.ID, Pod: e.Pod, IP: e.PrimaryIP.String(), State: "attached"}
		switch {
		case e.Fixed.Detaching:
			f.State, f.Since = "detaching", e.Fixed.PodGoneAt
		case e.Kept():
			f.State, f.Since = "kept", e.Fixed.PodGoneAt
		}
		out = append(out, f)
	}
	for _, r := range recs {
		out = append(out, FixedENI{ID: r.ID, Pod: r.Pod, IP: r.IP.String(), State: string(r.State), Since: r.Since, Until: r.ReleaseAt})
	}
	return out
}

// OK reports whether no invariant is broken.
func (r Report) OK() bool { return len(r.Problems) == 0 }

// Run checks db and, as opts ask, the links and the cloud.
func Run(ctx context.Context, db ipam.Store, opts Options) (Report, error) {
	if opts.OwnerAlive == nil {
		claims := db.ClaimsDir()
		opts.OwnerAlive = func(a store.Allocation) (bool, string) { return podnet.Verdict(claims, a) }
	}
	var (
		rep    Report
		enis   []store.ENI
		ips    []store.IP
		allocs []store.Allocation
		facts  store.NodeInfo
		fixed  []store.FixedENI
	)
	err := db.View(func(tx *store.ReadTx) error {
		for _, v := range tx.Check() {
			rep.Problems = append(rep.Problems, Problem{Kind: KindStore, Object: v.Object, Detail: v.String()})
		}
		var err error
		if enis, err = tx.ENIs(); err != nil {
			return err
		}
		if ips, err = tx.IPs(); err != nil {
			return err
		}
		facts, _ = tx.Node()
		if fixed, err = tx.FixedENIs(); err != nil {
			return err
		}
		allocs, err = tx.Allocations()
		return err
	})
	if err != nil {
		return rep, fmt.Errorf("read store: %w", err)
	}
	rep.Fixed = fixedOf(enis, fixed)
	rep.checkMembers(enis, ips, allocs)
	rep.ENIs, rep.IPs, rep.Allocations = len(enis), len(ips), len(allocs)

	for _, a := range allocs {
		if alive, why := opts.OwnerAlive(a); !alive {
			rep.add(KindOwnerGone, "allocation/"+string(a.Key), fmt.Sprintf("%s %s: owner gone (%s); gc releases it", a.State, a.IP, why))
		}
	}
	if opts.Links {
		rep.checkLinks(ctx, db, enis, allocs, opts.OwnerAlive, facts.InstanceID)
	}
	var born map[string]time.Time
	if opts.Cloud != nil {
		born = rep.checkCloud(ctx, opts.Cloud, opts.Node, enis, ips, fixed)
	}
	// The links and the cloud were looked at after the store was read, and
	// the daemon or a CNI call may have moved on meanwhile (an ENI drained
	// and deleted, an address released): read the store again and keep only
	// the problems of objects it still holds as they were.
	var after []store.ENI
	var afterIPs []store.IP
	var afterAllocs []store.Allocation
	err = db.View(func(tx *store.ReadTx) error {
		var err error
		if after, err = tx.ENIs(); err != nil {
			return err
		}
		if afterIPs, err = tx.IPs(); err != nil {
			return err
		}
		afterAllocs, err = tx.Allocations()
		return err
	})
	if err != nil {
		return rep, fmt.Errorf("read store again: %w", err)
	}
	stable := stableSince(enis, ips, allocs, after, afterIPs, afterAllocs, born, opts.LeakGrace)
	rep.Problems = slices.DeleteFunc(rep.Problems, func(p Problem) bool { return !stable(p) })
	slices.SortStableFunc(rep.Problems, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Object, b.Object))
	})
	return rep, nil
}

func (r *Report) add(kind, object, detail string) {
	r.Problems = append(r.Problems, Problem{Kind: kind, Object: object, Detail: detail})
}

func (r *Report) checkLinks(ctx context.Context, db ipam.Store, enis []store.ENI, allocs []store.Allocation, alive func(store.Allocation) (bool, string), instanceID string) {
	links := make(map[string]netplumb.ENILink)
	own := make(map[string]store.ENI) // exclusive ENIs a pod holds: checkExclusive
	members := memberTrunks(enis)
	for _, e := range enis {
		if e.State != store.ENIReady || e.Kind == store.ENIMember {
			continue // a member has no link: its pod is on the trunk's
		}
		if e.Fixed != nil && e.Fixed.Detaching {
			continue // the daemon is detaching it: its link may be gone
		}
		if e.Kind == store.ENIExclusive && e.Pod != "" && !e.Kept() {
			own[e.ID] = e
			continue
		}
		mac, err := net.ParseMAC(e.MAC)
		if err != nil {
			r.add(KindENILink, "eni/"+e.ID, fmt.Sprintf("bad mac %q in store", e.MAC))
			continue
		}
		l, err := netplumb.LookupENI(ctx, netplumb.ENIConfig{MAC: mac, VSwitchCIDR: e.VSwitchCIDR, Gateway: e.Gateway, Table: e.Table, IPv6CIDR: e.IPv6CIDR, Gateway6: e.Gateway6})
		if err != nil {
			r.add(KindENILink, "eni/"+e.ID, err.Error())
			continue
		}
		links[e.ID] = l
	}
	for _, a := range allocs {
		if e, ok := own[a.ENIID]; ok {
			r.checkExclusive(ctx, db, e, a, alive)
			continue
		}
		if alive, _ := alive(a); a.State != store.IPBound || !alive || a.NetNS == "" {
			continue
		}
		eniID := a.ENIID
		m, member := members[eniID]
		if member {
			eniID = m.TrunkID
			r.checkMemberTag(instanceID, a, m)
		}
		l, ok := links[eniID]
		if !ok {
			continue // reported as an ENI problem
		}
		ip4, ip6 := a.Families()
		err := netplumb.CheckPod(ctx, netplumb.PodConfig{ContainerID: a.ContainerID, IfName: a.IfName, ContainerNetNS: a.NetNS, IP: ip4, IP6: ip6, ENI: l})
		if err != nil {
			r.add(KindPlumbing, "allocation/"+string(a.Key), err.Error())
		}
	}
}

// checkCloud compares the store with the cloud and returns the creation
// time of every ENI it reports as leaked.
func (r *Report) checkCloud(ctx context.Context, cloud eni.Client, node store.NodeInfo, enis []store.ENI, ips []store.IP, fixed []store.FixedENI) map[string]time.Time {
	inCloud, err := cloud.ENIs(ctx, eni.ENIFilter{InstanceID: node.InstanceID})
	if err != nil {
		r.add(KindCloudError, "instance/"+node.InstanceID, err.Error())
		return nil
	}
	// ENIs veni created for this node but never attached (or detached and
	// not deleted) are not listed by instance: ask by tag as well.
	tagged, err := cloud.ENIs(ctx, eni.ENIFilter{Tags: map[string]string{ipam.TagCreator: ipam.TagCreatorValue, ipam.TagInstance: node.InstanceID}})
	if err != nil {
		r.add(KindCloudError, "instance/"+node.InstanceID, err.Error())
		return nil
	}
	cloudENIs := make(map[string]eni.ENI)
	for _, e := range append(inCloud, tagged...) {
		cloudENIs[e.ID] = e
	}
	known := make(map[string]bool)
	for _, f := range fixed {
		known[f.ID] = true // attaching here, or parked by this node: not leaked
	}
	for _, e := range enis {
		known[e.ID] = true
		c, ok := cloudENIs[e.ID]
		switch {
		case e.Fixed != nil && e.Fixed.Detaching:
			// The daemon is parking it: the cloud may have moved on.
		case !ok:
			r.add(KindCloudENI, "eni/"+e.ID, "in the store but not in the cloud")
		case e.State == store.ENIReady && (c.Status != eni.StatusInUse || c.InstanceID != node.InstanceID):
			r.add(KindCloudENI, "eni/"+e.ID, fmt.Sprintf("ready in the store but %s on instance %q in the cloud", c.Status, c.InstanceID))
		default:
			r.checkMemberCloud(e, c)
		}
	}
	for _, ip := range ips {
		if ip.State == store.IPFree {
			continue
		}
		c, ok := cloudENIs[ip.ENIID]
		// An address of a delegated /28 or /80 is assigned while its prefix is.
		inPrefix := ip.Prefix.IsValid() && (slices.Contains(c.Prefixes, ip.Prefix) || slices.Contains(c.IPv6Prefixes, ip.Prefix))
		assigned := slices.Contains(c.PrivateIPs, ip.Addr) || slices.Contains(c.IPv6s, ip.Addr)
		if !ok || (!inPrefix && !assigned) {
			r.add(KindCloudIP, "ip/"+ip.Addr.String(), fmt.Sprintf("%s by %s but not assigned to %s in the cloud", ip.State, ip.Owner, ip.ENIID))
		}
	}
	born := make(map[string]time.Time)
	for id, c := range cloudENIs {
		if known[id] || id == node.PrimaryENIID || c.Tags[ipam.TagCreator] != ipam.TagCreatorValue {
			continue
		}
		if c.Tags[ipam.TagFixedReleaseAt] != "" && c.InstanceID != node.InstanceID {
			// A fixed ENI this node created, parked for its pod (by
			// this node or another) or attached elsewhere since.
			continue
		}
		born[id] = c.CreationTime
		r.add(KindLeakedENI, "eni/"+id, fmt.Sprintf("created by veni for %s (%s, %d addresses) but not in the store", node.InstanceID, c.Status, len(c.PrivateIPs)))
	}
	return born
}

// stableSince returns the test a problem found between two reads of the
// store must pass to be reported: the object it is about is as it was in
// the first read (an ENI not draining, an address still held the same way,
// an allocation still the same), or, for a leaked ENI, still unknown to the
// store and older than leakGrace.
func stableSince(enis []store.ENI, ips []store.IP, allocs []store.Allocation,
	enis2 []store.ENI, ips2 []store.IP, allocs2 []store.Allocation, born map[string]time.Time, leakGrace time.Duration) func(Problem) bool {
	if leakGrace <= 0 {
		leakGrace = 2 * time.Minute
	}
	index := func(es []store.ENI) map[string]store.ENI {
		m := make(map[string]store.ENI, len(es))
		for _, e := range es {
			m[e.ID] = e
		}
		return m
	}
	e1, e2 := index(enis), index(enis2)
	ip1, ip2 := make(map[string]store.IP), make(map[string]store.IP)
	for _, ip := range ips {
		ip1[ip.Addr.String()] = ip
	}
	for _, ip := range ips2 {
		ip2[ip.Addr.String()] = ip
	}
	a1, a2 := make(map[string]store.Allocation), make(map[string]store.Allocation)
	for _, a := range allocs {
		a1[string(a.Key)] = a
	}
	for _, a := range allocs2 {
		a2[string(a.Key)] = a
	}
	return func(p Problem) bool {
		if p.Kind == KindStore || p.Kind == KindCloudError {
			return true // from one transaction, or about the cloud itself
		}
		kind, id, _ := strings.Cut(p.Object, "/")
		switch {
		case p.Kind == KindLeakedENI:
			_, known := e2[id]
			return !known && time.Since(born[id]) >= leakGrace
		case kind == "eni":
			a, ok1 := e1[id]
			b, ok2 := e2[id]
			return ok1 && ok2 && a.State == b.State && b.State != store.ENIDraining
		case kind == "ip":
			a, ok1 := ip1[id]
			b, ok2 := ip2[id]
			return ok1 == ok2 && a.State == b.State && a.Owner == b.Owner && a.ENIID == b.ENIID
		case kind == "allocation":
			a, ok1 := a1[id]
			b, ok2 := a2[id]
			return ok1 && ok2 && a.IP == b.IP && a.State == b.State && a.ReservedAt.Equal(b.ReservedAt)
		}
		return true
	}
}

// ErrProblems is returned by callers that turn a report into an exit code.
var ErrProblems = errors.New("invariants broken")

// checkExclusive checks a pod's own ENI: a live bound pod has it plumbed
// (netplumb.CheckExclusive); any other holder (a reservation, a pod whose
// namespace is gone) must have its link in the pinned namespace or back in
// the node, never lost, so its release can give it back.
func (r *Report) checkExclusive(ctx context.Context, db ipam.Store, e store.ENI, a store.Allocation, alive func(store.Allocation) (bool, string)) {
	mac, err := net.ParseMAC(e.MAC)
	if err != nil {
		r.add(KindENILink, "eni/"+e.ID, fmt.Sprintf("bad mac %q in store", e.MAC))
		return
	}
	cfg := netplumb.ExclusiveConfig{
		ContainerID: a.ContainerID, IfName: a.IfName, ContainerNetNS: a.NetNS,
		Pin: podnet.ExclusivePin(db, a.Key), MAC: mac, IP: a.IP, VSwitchCIDR: e.VSwitchCIDR, Gateway: e.Gateway,
	}
	if ok, _ := alive(a); ok && a.State == store.IPBound && a.NetNS != "" {
		if err := netplumb.CheckExclusive(ctx, cfg); err != nil {
			r.add(KindPlumbing, "allocation/"+string(a.Key), err.Error())
		}
		return
	}
	where, err := netplumb.LocateExclusive(cfg)
	switch {
	case err != nil:
		r.add(KindENILink, "eni/"+e.ID, err.Error())
	case where == "":
		r.add(KindENILink, "eni/"+e.ID, fmt.Sprintf("exclusive eni of %s (%s) has no link in its pod's namespace (pinned at %s) nor in the node: lost", e.Pod, mac, cfg.Pin))
	}
}
