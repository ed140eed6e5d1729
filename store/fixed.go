package store

import (
	"fmt"
	"net/netip"
	"time"
)

// Fixed IPs (a PodNetworking's allocationType Fixed): a pod's dedicated
// ENI (a trunk member or an exclusive ENI) that outlives the pod, so that
// the pod recreated under the same namespace/name, on this node or on
// another of the zone, gets it back, and with it its address.
//
// While such an ENI is attached to this node its ENI record carries Fixed
// and keeps Pod even once the pod is gone (so no other pod is given it).
// Around the cloud calls that move it off or onto the node, a FixedENI
// record in its own bucket says what this node did with it: "attaching"
// (an ADD here attaches it; the record is replaced by the ENI record in
// the transaction that learns it is attached, so one left behind is an
// ADD cut short) and "parked" (this node detached it for its pod's next
// node, and deletes it at ReleaseAt unless another node took it). An ENI
// is never in both buckets at once.

// Fixed is what a fixed ENI's ENI record says of it: its PodNetworking's
// release strategy and, once its pod is gone, since when.
type Fixed struct {
	// Networking is the PodNetworking that asked for it, for humans.
	Networking string `json:"networking,omitempty"`
	// Never keeps the ENI until an operator releases it (releaseStrategy
	// Never); otherwise it is deleted ReleaseAfter after its pod went
	// (TTL).
	Never        bool          `json:"never,omitempty"`
	ReleaseAfter time.Duration `json:"releaseAfter,omitempty"`
	// PodGoneAt is when the pod was released on this node; zero while a
	// pod holds the ENI. The ENI stays attached for fixed_eni_hold, for
	// the pod coming back here, then the daemon detaches it.
	PodGoneAt time.Time `json:"podGoneAt,omitzero"`
	// Detaching says the daemon is detaching it (tagging it, detaching,
	// waiting for Available): no pod is given it here meanwhile.
	Detaching bool `json:"detaching,omitempty"`
}

// Kept reports whether its pod is gone and the ENI waits on the node.
func (f *Fixed) Kept() bool { return f != nil && !f.PodGoneAt.IsZero() }

// ReleaseAt is when an ENI whose pod went at gone is to be deleted; the
// zero time for Never.
func (f Fixed) ReleaseAt(gone time.Time) time.Time {
	if f.Never {
		return time.Time{}
	}
	return gone.Add(f.ReleaseAfter)
}

// FixedState is what this node does with a fixed ENI it has no ENI record
// for (FixedENI.State).
type FixedState string

// Fixed ENI states.
const (
	// FixedAttaching: an ADD of this node attaches it. The record is
	// written before the attach and replaced by the ENI record once the
	// ENI is attached: one older than any running ADD (whoever holds the
	// allocator lease sees none running) is an attach cut short, and the
	// daemon parks the ENI again if it did attach.
	FixedAttaching FixedState = "attaching"
	// FixedParked: this node detached the ENI after its pod went; it is
	// Available in the cloud, tagged for its pod, for any node of the zone
	// to take. This node deletes it at ReleaseAt if it is still parked as
	// this node left it.
	FixedParked FixedState = "parked"
)

// FixedENI is a fixed ENI this node attaches or parked (see FixedState),
// keyed by its id.
type FixedENI struct {
	ID     string     `json:"id"`
	Pod    string     `json:"pod"` // "namespace/name"
	IP     netip.Addr `json:"ip"`  // its primary address: the pod's
	ZoneID string     `json:"zoneID,omitempty"`
	State  FixedState `json:"state"`
	Since  time.Time  `json:"since"` // when it entered State
	Fixed  Fixed      `json:"fixed"` // the release strategy (PodGoneAt: when the pod went)
	// ReleaseAt is when a parked ENI is deleted (TTL); the cloud tag
	// veni.io/fixed-release-at says the same. Parked ENIs of strategy
	// Never are not recorded: this node has nothing left to do for them.
	ReleaseAt time.Time `json:"releaseAt,omitzero"`
}

func (f FixedENI) validate() error {
	switch {
	case f.ID == "":
		return fmt.Errorf("fixed eni: empty id: %w", ErrInvalid)
	case f.Pod == "":
		return fmt.Errorf("fixed eni %s: no pod: %w", f.ID, ErrInvalid)
	case f.State != FixedAttaching && f.State != FixedParked:
		return fmt.Errorf("fixed eni %s: state %q: %w", f.ID, f.State, ErrInvalid)
	case f.State == FixedParked && f.ReleaseAt.IsZero():
		return fmt.Errorf("fixed eni %s: parked without a release time: %w", f.ID, ErrInvalid)
	}
	return nil
}

// FixedENI returns the fixed ENI record of id, or an error wrapping
// ErrNotFound.
func (t *ReadTx) FixedENI(id string) (FixedENI, error) {
	return get[FixedENI](t, bucketFixed, []byte(id), "fixed eni")
}

// FixedENIs returns every fixed ENI record, ordered by id.
func (t *ReadTx) FixedENIs() ([]FixedENI, error) {
	return list[FixedENI](t, bucketFixed)
}

// PutFixedENI creates or replaces a fixed ENI record. The node must not
// hold an ENI record of the same id: an ENI is attached here (its ENI
// record) or being moved (this record), not both.
//
// May return an error wrapping ErrInvalid or ErrInvariant.
func (t *WriteTx) PutFixedENI(f FixedENI) error {
	if err := f.validate(); err != nil {
		return err
	}
	if _, err := t.ENI(f.ID); err == nil {
		return fmt.Errorf("put fixed eni %s: the node holds it as an ENI: %w", f.ID, ErrInvariant)
	} else if !isNotFound(err) {
		return err
	}
	return put(t, bucketFixed, []byte(f.ID), f)
}

// DeleteFixedENI removes a fixed ENI record. Deleting an unknown one does
// nothing.
func (t *WriteTx) DeleteFixedENI(id string) error {
	return t.tx.Bucket(bucketFixed).Delete([]byte(id))
}
