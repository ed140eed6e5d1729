package podpolicy

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/veni-cni/veni/ebpf/enforce"
	"github.com/veni-cni/veni/policy"
	"github.com/veni-cni/veni/store"
)

// Ensure an ADD gets the daemon's record when there is one, compiles from
// the stored snapshot when there is none, and fails closed exactly when
// the store cannot say which policies select the pod.
func TestPlanForAdd(t *testing.T) {
	db, dir := testStore(t), t.TempDir()
	writeFile(t, dir, "pods.yaml", podsYAML)
	writeFile(t, dir, "web-allow.yaml", allowHTTP)

	// No daemon has run: nothing stored selects anything.
	if p := planFor(t, db, "shop", "web"); p.From != FromSnapshot || p.Ruleset == nil || p.Ruleset.Ingress.Isolated {
		t.Errorf("empty store: %+v, want an unisolated compile", p)
	}

	s := NewSyncer(SyncOptions{DB: db, Enabled: true, ManifestDir: dir, Node: "node-a"})
	mustPass(t, s)
	rec, _ := record(t, db, "shop", "web")
	p := planFor(t, db, "shop", "web")
	rs, err := DecodeRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	want, err := enforce.EncodeTable(rs)
	if err != nil {
		t.Fatal(err)
	}
	if p.From != FromRecord || p.Digest != rec.Digest || !bytes.Equal(p.Table, want) || p.Ruleset != nil {
		t.Errorf("with a record: %+v, want its kernel table and no ruleset to decode", p)
	}
	// A record without its kernel table (written by an older daemon), or
	// with the table of another ruleset: the ADD decodes the ruleset.
	for _, table := range [][]byte{nil, []byte("VPT1 of an older record")} {
		mustUpdate(t, db, func(tx *store.WriteTx) error {
			r := rec
			r.Table = table
			if err := tx.PutPolicyRecord(r); err != nil || table == nil {
				return err
			}
			old := r
			old.Ruleset = []byte("older")
			old.Digest = store.PolicyDigest(old.Ruleset)
			old.Table = table
			if err := tx.PutPolicyRecord(old); err != nil {
				return err
			}
			r.Table = nil
			return tx.PutPolicyRecord(r) // the record again, the older table gone
		})
		p = planFor(t, db, "shop", "web")
		if p.From != FromRecord || p.Digest != rec.Digest || p.Table != nil || p.Ruleset == nil || !p.Ruleset.Ingress.Isolated {
			t.Errorf("record without a table of its own: %+v, want its ruleset", p)
		}
	}

	// The record is gone (the daemon lags): the mirror knows the pod.
	mustUpdate(t, db, func(tx *store.WriteTx) error {
		if err := tx.DeletePolicyRecord("shop", "web"); err != nil {
			return err
		}
		return tx.PutMirrorPod(store.Pod{Namespace: "shop", Name: "api", Labels: map[string]string{"app": "web"}, Mirrored: time.Now()})
	})
	p = planFor(t, db, "shop", "web")
	if p.From != FromSnapshot || p.Digest != rec.Digest {
		t.Errorf("no record: from %s digest %s, want a compile equal to the daemon's %s", p.From, p.Digest, rec.Digest)
	}
	if p := planFor(t, db, "shop", "api"); p.From != FromSnapshot || !p.Ruleset.Ingress.Isolated {
		t.Errorf("mirrored pod without record: %+v, want compiled and isolated", p)
	}

	// A pod nobody knows, in a namespace with a policy: closed.
	if p := planFor(t, db, "shop", "new"); p.From != FromFailClosed || !strings.Contains(p.Why, "shop/new") {
		t.Errorf("unknown pod in a namespace with policies: %+v", p)
	}
	// ... in a namespace without any: nothing can select it.
	if p := planFor(t, db, "other", "new"); p.From != FromSnapshot || p.Ruleset.Ingress.Isolated || p.Ruleset.Egress.Isolated {
		t.Errorf("unknown pod in a namespace without policies: %+v", p)
	}
	// Sources not read through: even that namespace is unknown.
	mustUpdate(t, db, func(tx *store.WriteTx) error {
		st, err := tx.PolicyState()
		if err != nil {
			return err
		}
		st.Synced = false
		return tx.PutPolicyState(st)
	})
	if p := planFor(t, db, "other", "new"); p.From != FromFailClosed {
		t.Errorf("unsynced sources: %+v, want fail-closed", p)
	}

	// Off, or no pod name: nothing.
	_ = db.View(func(tx *store.ReadTx) error {
		if p, err := PlanForAdd(tx, false, "shop", "new"); err != nil || p.From != FromOff {
			t.Errorf("network_policy off: %+v, %v", p, err)
		}
		if p, err := PlanForAdd(tx, true, "", ""); err != nil || p.From != FromOff {
			t.Errorf("no pod name: %+v, %v", p, err)
		}
		return nil
	})
}

// Ensure a fail-closed plan isolates the endpoint in the kernel, and a
// kernel error leaves nothing behind.
func TestPlan_Install(t *testing.T) {
	k := newFakeKernel()
	ep := Endpoint{Ifindex: 3, IP: netip.MustParseAddr("10.0.0.10")}
	if err := (Plan{From: FromFailClosed}).Install(k, ep); err != nil {
		t.Fatal(err)
	}
	if got, _ := k.get(ep); got.digest != "closed" || !got.attached {
		t.Errorf("fail-closed install: %+v", got)
	}
	bad := failingKernel{k}
	ep2 := Endpoint{Ifindex: 4, IP: netip.MustParseAddr("10.0.0.11")}
	if err := (Plan{From: FromFailClosed}).Install(bad, ep2); err == nil {
		t.Error("attach failure not reported")
	}
	if _, ok := k.get(ep2); ok {
		t.Error("a failed install left the endpoint in the kernel")
	}
}

type failingKernel struct{ *fakeKernel }

func (failingKernel) AttachEndpoint(Endpoint) error { return errAttach }

var errAttach = &attachError{}

type attachError struct{}

func (*attachError) Error() string { return "attach: no such device" }

// Ensure a plan says whether it isolates egress, whichever form it has:
// the ADD hooks the pod's ENI (Service flows decided after DNAT) only then.
func TestPlan_IsolatesEgress(t *testing.T) {
	in := &policy.Ruleset{Ingress: policy.Direction{Isolated: true}}
	out := &policy.Ruleset{Egress: policy.Direction{Isolated: true}}
	table := func(rs *policy.Ruleset) []byte {
		b, err := enforce.EncodeTable(rs)
		if err != nil || b == nil {
			t.Fatalf("encode: %v", err)
		}
		return b
	}
	for _, tc := range []struct {
		name string
		p    Plan
		want bool
	}{
		{"off", Plan{From: FromOff}, false},
		{"ruleset, ingress only", Plan{From: FromSnapshot, Ruleset: in}, false},
		{"ruleset, egress", Plan{From: FromSnapshot, Ruleset: out}, true},
		{"table, ingress only", Plan{From: FromRecord, Table: table(in)}, false},
		{"table, egress", Plan{From: FromRecord, Table: table(out)}, true},
		{"fail closed", Plan{From: FromFailClosed}, true},
	} {
		if got := tc.p.IsolatesEgress(); got != tc.want {
			t.Errorf("%s: IsolatesEgress() = %t, want %t", tc.name, got, tc.want)
		}
	}
}
