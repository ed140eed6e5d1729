package podpolicy

import (
	"errors"
	"fmt"
	"github.com/veni-cni/veni/ebpf/enforce"

	"github.com/veni-cni/veni/policy"
	"github.com/veni-cni/veni/store"
)

// How a Plan was decided.
const (
	FromOff        = "off"         // network_policy is off: nothing installed
	FromRecord     = "record"      // the daemon's compiled record
	FromSnapshot   = "compiled"    // compiled during the ADD from the stored snapshot
	FromFailClosed = "fail-closed" // selection unknown: isolated both ways until the daemon knows
)

// Plan is what a CNI ADD installs for its pod.
type Plan struct {
	Pod     policy.PodRef
	From    string
	Why     string          // for FromFailClosed: what was not known
	Ruleset *policy.Ruleset // nil for FromOff and FromFailClosed, and with a Table
	// Table is the record's ruleset in the kernel's form: an ADD
	// installs it without decoding the ruleset (nil: install Ruleset).
	Table  []byte
	Digest string // of the ruleset ("" without one)
}

// PlanForAdd decides, in the ADD's read transaction, what the pod
// namespace/name gets before its link is up: its record; else a ruleset
// compiled from the stored snapshot; else, when the store cannot say
// which policies select it, FailClosed. enabled is the node's
// network_policy switch. A pod with no name (no Kubernetes arguments) is
// no Kubernetes pod: no policy can select it.
func PlanForAdd(tx *store.ReadTx, enabled bool, namespace, name string) (Plan, error) {
	if namespace == "" {
		namespace = "default"
	}
	p := Plan{Pod: policy.PodRef{Namespace: namespace, Name: name}}
	if !enabled || name == "" {
		p.From = FromOff
		return p, nil
	}
	info, err := tx.PolicyRecordInfo(namespace, name)
	switch {
	case err == nil && !info.Isolated:
		// Nothing to install: the ruleset need not be read. Ruleset
		// stands for it (isolating nothing), Digest is the record's.
		p.From, p.Digest, p.Ruleset = FromRecord, info.Digest, &policy.Ruleset{Pod: p.Pod}
		return p, nil
	case err == nil:
		// The kernel form, when the daemon wrote one with this record.
		if digest, table, err := tx.PolicyTable(namespace, name); err == nil && digest == info.Digest {
			p.From, p.Table, p.Digest = FromRecord, table, digest
			return p, nil
		}
		rec, err := tx.PolicyRecord(namespace, name)
		if err != nil {
			return p, err
		}
		if rs, err := decodeRecord(rec); err == nil {
			p.From, p.Ruleset, p.Digest = FromRecord, rs, rec.Digest
			return p, nil
		}
		// A record that does not decode: compile instead.
	case !errors.Is(err, store.ErrNotFound):
		return p, err
	}
	st, err := ReadStored(tx)
	if err != nil {
		return p, err
	}
	return st.plan(p), nil
}

// plan compiles p.Pod from st, or fails it closed.
func (st *Stored) plan(p Plan) Plan {
	closed := func(why string) Plan {
		p.From, p.Why = FromFailClosed, why
		return p
	}
	snap, err := st.Snapshot()
	if err != nil {
		return closed(err.Error())
	}
	if rs, err := snap.Compile(p.Pod); err == nil {
		return st.compiled(p, rs)
	}
	// The pod is not known (its labels and ports): only the policies of
	// its namespace could select it.
	switch {
	case st.HasState && !st.State.Synced:
		return closed("the daemon has not read its policy sources through yet")
	case st.PoliciesIn(p.Pod.Namespace) > 0:
		return closed(fmt.Sprintf("pod %s is not known yet (labels, ports) and %d policies of namespace %s may select it",
			p.Pod, st.PoliciesIn(p.Pod.Namespace), p.Pod.Namespace))
	}
	// No policy of its namespace exists: whatever its labels, nothing
	// selects it.
	return st.compiled(p, snap.CompilePod(policy.Pod{Namespace: p.Pod.Namespace, Name: p.Pod.Name, Node: st.Mirror.Node.Name}))
}

func (st *Stored) compiled(p Plan, rs *policy.Ruleset) Plan {
	e, err := encodeRuleset(rs)
	if err != nil {
		p.From, p.Why = FromFailClosed, err.Error()
		return p
	}
	p.From, p.Ruleset, p.Digest = FromSnapshot, rs, e.digest
	return p
}

// NeedsKernel reports whether the ADD must install anything: a pod that
// no policy isolates needs nothing at birth (everything is allowed, and
// its peers' policies run on their own hooks); the daemon attaches it to
// the enforcer on its next pass, in case a policy selects it later.
func (p Plan) NeedsKernel() bool {
	return p.From != FromOff && (p.Table != nil || p.Ruleset == nil || p.Ruleset.Ingress.Isolated || p.Ruleset.Egress.Isolated)
}

// IsolatesEgress reports whether the plan isolates the pod's egress (fail
// closed does): only then are its flows to Services decided after DNAT, on
// its ENI's hook.
func (p Plan) IsolatesEgress() bool {
	switch {
	case p.From == FromOff:
		return false
	case p.Table != nil:
		return enforce.TableIsolatesEgress(p.Table)
	case p.Ruleset != nil:
		return p.Ruleset.Egress.Isolated
	}
	return true // fail closed
}

// Install puts the plan in the kernel for ep, before the pod's link is
// up: the tables first, then the programs on the veth, so the pod's first
// packet meets its policy. On error nothing of it is left.
func (p Plan) Install(k Kernel, ep Endpoint) error {
	if p.From == FromOff || k == nil {
		return nil
	}
	var err error
	switch {
	case p.Table != nil:
		err = k.SetEndpointTable(ep, p.Digest, p.Table)
	case p.Ruleset != nil:
		err = k.SetEndpoint(ep, p.Ruleset)
	default:
		err = k.FailClosed(ep)
	}
	if err == nil {
		err = k.AttachEndpoint(ep)
	}
	if err != nil {
		return errors.Join(fmt.Errorf("install policy of %s (%s) on %s: %w", p.Pod, p.From, ep, err), k.RemoveEndpoint(ep))
	}
	return nil
}
