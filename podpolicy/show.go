package podpolicy

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/veni-cni/veni/policy"
	"github.com/veni-cni/veni/store"
)

// ErrUnknownPod means neither a record nor the stored snapshot knows the
// pod.
var ErrUnknownPod = errors.New("pod unknown to this node's policy state")

// ShowReport is what "veni policy show POD" prints: the pod's compiled
// policy as its record holds it (what the daemon put in the kernel), which
// policies select it per direction, and whether the record is current.
type ShowReport struct {
	policy.PodReport
	// From is FromRecord when the daemon's record exists, FromSnapshot when
	// only the stored snapshot knows the pod (the daemon has not compiled
	// it yet), FromOff when network_policy is off.
	From string `json:"from"`
	// Record describes the record, when there is one.
	Record *RecordInfo `json:"record,omitempty"`
	// State is the daemon's policy loop as it last recorded itself.
	State *store.PolicyState `json:"state,omitempty"`
}

// RecordInfo says when and from what a record was compiled.
type RecordInfo struct {
	Digest     string    `json:"digest"`
	Generation uint64    `json:"generation"`
	Compiled   time.Time `json:"compiled"`
	// Current is false when compiling the stored snapshot now gives
	// another ruleset: the daemon has a change to apply.
	Current bool `json:"current"`
}

// Show reports pod ref from the store at db. May return an error wrapping
// ErrUnknownPod.
func Show(db store.File, ref policy.PodRef) (*ShowReport, error) {
	var (
		st  *Stored
		rec store.PolicyRecord
		has bool
	)
	err := db.View(func(tx *store.ReadTx) error {
		var err error
		if st, err = ReadStored(tx); err != nil {
			return err
		}
		if _, has = st.Records[store.PodKey(ref.Namespace, ref.Name)]; has {
			rec, err = tx.PolicyRecord(ref.Namespace, ref.Name)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read the store: %w", err)
	}
	if st.HasState && !st.State.Enabled {
		return &ShowReport{From: FromOff, State: &st.State, PodReport: policy.PodReport{Pod: policy.Pod{Namespace: ref.Namespace, Name: ref.Name}}}, nil
	}
	snap, err := st.Snapshot()
	if err != nil {
		return nil, err
	}
	r := &ShowReport{From: FromSnapshot}
	if st.HasState {
		r.State = &st.State
		if !st.State.Enabled {
			r.From = FromOff
		}
	}
	rep, err := snap.Show(ref)
	switch {
	case err == nil:
		r.PodReport = *rep
	case has:
		// A record of a pod the snapshot no longer holds: show the record.
		r.PodReport = policy.PodReport{Pod: policy.Pod{Namespace: ref.Namespace, Name: ref.Name}}
	default:
		return nil, fmt.Errorf("pod %s: %w (local pods are compiled here; is it on this node, and has the daemon's mirror seen it?)", ref, ErrUnknownPod)
	}
	if has {
		rs, err := decodeRecord(rec)
		if err != nil {
			return nil, err
		}
		info := &RecordInfo{Digest: rec.Digest, Generation: rec.Generation, Compiled: rec.Compiled}
		if r.Ruleset != nil {
			// Compare with the snapshot's compile of the pod as the
			// daemon would (the Show compile is the same function).
			if e, err := encodeRuleset(r.Ruleset); err == nil {
				info.Current = e.digest == rec.Digest
			}
		}
		r.From, r.Record, r.Ruleset = FromRecord, info, rs
		r.Size = rs.MapSize()
	}
	return r, nil
}

// WriteText writes the report for a terminal.
func (r *ShowReport) WriteText(w io.Writer) error {
	switch {
	case r.From == FromOff:
		fmt.Fprintf(w, "network_policy is off on this node: nothing is enforced\n")
	case r.Record != nil && r.Record.Current:
		fmt.Fprintf(w, "record %s (generation %d, compiled %s), current\n", r.Record.Digest, r.Record.Generation, r.Record.Compiled.Format(time.RFC3339))
	case r.Record != nil:
		fmt.Fprintf(w, "record %s (generation %d, compiled %s), STALE: the stored snapshot compiles differently; the daemon's next pass applies it\n",
			r.Record.Digest, r.Record.Generation, r.Record.Compiled.Format(time.RFC3339))
	default:
		fmt.Fprintf(w, "no record yet: compiled now from the stored snapshot (the daemon has not compiled this pod)\n")
	}
	if r.State != nil && r.State.Error != "" {
		fmt.Fprintf(w, "policy loop error: %s\n", r.State.Error)
	}
	if r.Ruleset == nil {
		return nil
	}
	return r.PodReport.WriteText(w)
}

// Trace traces a flow against the store's policy state: the same snapshot
// the daemon compiles the kernel's tables from.
func Trace(db store.File, from, to policy.Endpoint, proto policy.Protocol, port uint16) (*policy.Trace, error) {
	var st *Stored
	err := db.View(func(tx *store.ReadTx) error {
		var err error
		st, err = ReadStored(tx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read the store: %w", err)
	}
	snap, err := st.Snapshot()
	if err != nil {
		return nil, err
	}
	return snap.Tracer().Trace(from, to, proto, port)
}
