package store

import (
	"cmp"
	"fmt"
	"net/netip"
)

// ViolationKind names one store invariant.
type ViolationKind string

// The store invariants. Check reports each breach as a Violation.
const (
	// ViolationCorrupt: a value that cannot be decoded.
	ViolationCorrupt ViolationKind = "corrupt"
	// ViolationBadRecord: a record that would fail its Put validation
	// (free IP with an owner, allocation in state free, ...).
	ViolationBadRecord ViolationKind = "bad-record"
	// ViolationIPWithoutENI: an IP whose ENI does not exist.
	ViolationIPWithoutENI ViolationKind = "ip-without-eni"
	// ViolationIPOnTwoENIs: an address recorded for two ENIs (as one ENI's
	// secondary IP and another's primary IP, or as two ENIs' primary IP).
	ViolationIPOnTwoENIs ViolationKind = "ip-on-two-enis"
	// ViolationAllocationWithoutIP: an allocation whose IP is not in the
	// store.
	ViolationAllocationWithoutIP ViolationKind = "allocation-without-ip"
	// ViolationAllocationIPMismatch: an allocation whose IP is not
	// reserved/bound by it, in its state, on its ENI.
	ViolationAllocationIPMismatch ViolationKind = "allocation-ip-mismatch"
	// ViolationIPTwoOwners: two allocations on the same IP.
	ViolationIPTwoOwners ViolationKind = "ip-two-owners"
	// ViolationOwnerWithoutAllocation: an IP reserved or bound by an owner
	// that has no allocation, so nothing would ever release it.
	ViolationOwnerWithoutAllocation ViolationKind = "owner-without-allocation"
	// ViolationTableShared: two ENIs with the same routing table (or one
	// with none), so one ENI's pods would leave through the other.
	ViolationTableShared ViolationKind = "table-shared"
	// ViolationPrefix: an address tagged with a prefix its ENI does not
	// hold, so nothing would give the prefix back with it.
	ViolationPrefix ViolationKind = "prefix-not-on-eni"
	// ViolationHalfStack: on a dual-stack node, an allocation without its
	// IPv6, or an address held by an owner whose allocation does not name
	// it: a pod with half its stack, or a half that nothing would release.
	ViolationHalfStack ViolationKind = "half-stack"
	// ViolationPolicyRecord: a compiled policy record whose key is not its
	// pod, whose ruleset is not JSON or whose digest is not its ruleset's
	// (an ADD would install what the daemon did not compile).
	ViolationPolicyRecord ViolationKind = "policy-record"
	// ViolationFixed: a fixed ENI record (attaching or parked) for an ENI
	// the node also holds as an ENI: one of the two is stale, and the ENI
	// could be parked away under its pod or deleted under it.
	ViolationFixed ViolationKind = "fixed-eni"
)

// Violation is one breach of a store invariant.
type Violation struct {
	Kind   ViolationKind
	Object string // "ip/10.0.0.5", "allocation/<key>", "eni/<id>"
	Detail string
}

func (v Violation) String() string {
	return fmt.Sprintf("%s: %s: %s", v.Kind, v.Object, v.Detail)
}

// Check verifies every store invariant and returns the breaches, none when
// the store is consistent. It reads the whole store: it is for tests,
// "veni ipam verify" and the daemon's start-up, not for every CNI call.
func (t *ReadTx) Check() []Violation {
	var out []Violation
	add := func(kind ViolationKind, obj, format string, args ...any) {
		out = append(out, Violation{Kind: kind, Object: obj, Detail: fmt.Sprintf(format, args...)})
	}

	enis := make(map[string]ENI)
	primaries := make(map[netip.Addr]string)
	tables := make(map[int]string)
	_ = t.tx.Bucket(bucketENIs).ForEach(func(k, v []byte) error {
		e, err := decode[ENI](k, v)
		if err != nil {
			add(ViolationCorrupt, "eni/"+string(k), "%v", err)
			return nil
		}
		if err := e.validate(); err != nil {
			add(ViolationBadRecord, "eni/"+e.ID, "%v", err)
		}
		if other, ok := primaries[e.PrimaryIP]; ok && e.PrimaryIP.IsValid() {
			add(ViolationIPOnTwoENIs, "ip/"+e.PrimaryIP.String(), "primary ip of %s and %s", other, e.ID)
		}
		primaries[e.PrimaryIP] = e.ID
		switch other, ok := tables[e.Table]; {
		case e.Table == 0:
			add(ViolationTableShared, "eni/"+e.ID, "no routing table assigned")
		case ok:
			add(ViolationTableShared, "eni/"+e.ID, "table %d is also %s's", e.Table, other)
		}
		tables[e.Table] = e.ID
		enis[e.ID] = e
		return nil
	})

	ips := make(map[netip.Addr]IP)
	_ = t.tx.Bucket(bucketIPs).ForEach(func(k, v []byte) error {
		ip, err := decode[IP](k, v)
		if err != nil {
			add(ViolationCorrupt, "ip/"+string(k), "%v", err)
			return nil
		}
		obj := "ip/" + ip.Addr.String()
		if err := ip.validate(); err != nil {
			add(ViolationBadRecord, obj, "%v", err)
		}
		e, ok := enis[ip.ENIID]
		if !ok {
			add(ViolationIPWithoutENI, obj, "eni %s does not exist", ip.ENIID)
		} else if ip.Prefix.IsValid() && !e.HasPrefix(ip.Prefix) {
			add(ViolationPrefix, obj, "prefix %s is not recorded on eni %s", ip.Prefix, ip.ENIID)
		}
		if other, ok := primaries[ip.Addr]; ok && other != ip.ENIID {
			add(ViolationIPOnTwoENIs, obj, "secondary ip of %s and primary ip of %s", ip.ENIID, other)
		}
		ips[ip.Addr] = ip
		return nil
	})

	var dual, v6only bool
	if ps, err := t.PoolState(); err == nil {
		dual, v6only = ps.Stack == "dual", ps.Stack == "ipv6"
	}
	byIP := make(map[netip.Addr]OwnerKey)
	owners := make(map[OwnerKey]Allocation)
	_ = t.tx.Bucket(bucketAllocs).ForEach(func(k, v []byte) error {
		a, err := decode[Allocation](k, v)
		if err != nil {
			add(ViolationCorrupt, "allocation/"+string(k), "%v", err)
			return nil
		}
		obj := "allocation/" + string(k)
		owners[OwnerKey(k)] = a
		if err := a.validate(); err != nil {
			add(ViolationBadRecord, obj, "%v", err)
		} else if string(a.Key) != string(k) {
			add(ViolationBadRecord, obj, "record has key %q", a.Key)
		}
		if other, ok := byIP[a.IP]; ok {
			add(ViolationIPTwoOwners, "ip/"+a.IP.String(), "held by %s and %s", other, a.Key)
		}
		byIP[a.IP] = a.Key
		ip, ok := ips[a.IP]
		switch {
		case !ok:
			add(ViolationAllocationWithoutIP, obj, "ip %s does not exist", a.IP)
		case ip.Owner != a.Key || ip.State != a.State || ip.ENIID != a.ENIID:
			add(ViolationAllocationIPMismatch, obj, "%s on %s, but ip %s is %s by %q on %s", a.State, a.ENIID, a.IP, ip.State, ip.Owner, ip.ENIID)
		}
		if v6only && a.IP.Is4() {
			add(ViolationHalfStack, obj, "%s %s on an IPv6-only node is an IPv4", a.State, a.IP)
		}
		if !a.IP6.IsValid() {
			if dual {
				add(ViolationHalfStack, obj, "%s %s on a dual-stack node has no ipv6", a.State, a.IP)
			}
			return nil
		}
		if other, ok := byIP[a.IP6]; ok {
			add(ViolationIPTwoOwners, "ip/"+a.IP6.String(), "held by %s and %s", other, a.Key)
		}
		byIP[a.IP6] = a.Key
		switch ip6, ok := ips[a.IP6]; {
		case !ok:
			add(ViolationHalfStack, obj, "ip6 %s does not exist", a.IP6)
		case ip6.Owner != a.Key || ip6.State != a.State || ip6.ENIID != a.ENIID:
			add(ViolationAllocationIPMismatch, obj, "%s on %s, but ip6 %s is %s by %q on %s", a.State, a.ENIID, a.IP6, ip6.State, ip6.Owner, ip6.ENIID)
		}
		return nil
	})

	_ = t.tx.Bucket(bucketFixed).ForEach(func(k, v []byte) error {
		obj := "fixed/" + string(k)
		f, err := decode[FixedENI](k, v)
		if err != nil {
			add(ViolationCorrupt, obj, "%v", err)
			return nil
		}
		if err := f.validate(); err != nil {
			add(ViolationBadRecord, obj, "%v", err)
		} else if f.ID != string(k) {
			add(ViolationBadRecord, obj, "record has id %q", f.ID)
		}
		if e, ok := enis[f.ID]; ok {
			add(ViolationFixed, obj, "%s for %s, and the node holds it as a %s eni of %q", f.State, f.Pod, cmp.Or(string(e.Kind), "shared"), e.Pod)
		}
		return nil
	})

	_ = t.tx.Bucket(bucketPolicyRecords).ForEach(func(k, v []byte) error {
		obj := "policy/" + string(k)
		r, err := decode[PolicyRecord](k, v)
		if err != nil {
			add(ViolationCorrupt, obj, "%v", err)
			return nil
		}
		if err := r.validate(); err != nil {
			add(ViolationPolicyRecord, obj, "%v", err)
		} else if PodKey(r.Namespace, r.Name) != string(k) {
			add(ViolationPolicyRecord, obj, "record is pod %s's", PodKey(r.Namespace, r.Name))
		}
		for _, d := range r.Parts {
			if t.tx.Bucket(bucketPolicyParts).Get([]byte(d)) == nil {
				add(ViolationPolicyRecord, obj, "part %s is not stored", d)
			}
		}
		switch v := t.tx.Bucket(bucketPolicyIndex).Get(k); {
		case v == nil:
			add(ViolationPolicyRecord, obj, "not in the policy index")
		default:
			if info, err := decode[PolicyRecordInfo](k, v); err != nil || info != r.Info() {
				add(ViolationPolicyRecord, obj, "index says %+v, record %+v (%v)", info, r.Info(), err)
			}
		}
		return nil
	})
	_ = t.tx.Bucket(bucketPolicyIndex).ForEach(func(k, _ []byte) error {
		if t.tx.Bucket(bucketPolicyRecords).Get(k) == nil {
			add(ViolationPolicyRecord, "policy/"+string(k), "indexed without a record")
		}
		return nil
	})
	_ = t.tx.Bucket(bucketPolicyParts).ForEach(func(k, v []byte) error {
		if PolicyDigest(v) != string(k) {
			add(ViolationPolicyRecord, "policy-part/"+string(k), "stored under another digest than its content's %s", PolicyDigest(v))
		}
		return nil
	})
	_ = t.tx.Bucket(bucketPolicyTables).ForEach(func(k, v []byte) error {
		obj := "policy/" + string(k)
		iv := t.tx.Bucket(bucketPolicyIndex).Get(k)
		if iv == nil {
			add(ViolationPolicyRecord, obj, "kernel table without a record")
			return nil
		}
		info, err := decode[PolicyRecordInfo](k, iv)
		switch {
		case err != nil:
			// Reported with the record.
		case len(v) < policyDigestLen || string(v[:policyDigestLen]) != info.Digest:
			add(ViolationPolicyRecord, obj, "kernel table of another ruleset than the record's %s", info.Digest)
		case !info.Isolated:
			add(ViolationPolicyRecord, obj, "kernel table for a record that isolates nothing")
		}
		return nil
	})

	for addr, ip := range ips {
		a, ok := owners[ip.Owner]
		switch {
		case ip.Owner == "":
		case !ok:
			add(ViolationOwnerWithoutAllocation, "ip/"+addr.String(), "%s by %s, which has no allocation", ip.State, ip.Owner)
		case addr.Is6() && a.IP6 != addr && a.IP != addr:
			add(ViolationHalfStack, "ip/"+addr.String(), "%s by %s, whose allocation holds ip6 %s", ip.State, ip.Owner, a.IP6)
		}
	}
	return out
}
