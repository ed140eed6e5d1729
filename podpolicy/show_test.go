package podpolicy

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/veni-cni/veni/policy"
	"github.com/veni-cni/veni/store"
)

// Ensure show reports the daemon's record (current or stale) with the
// policies selecting the pod, and trace decides from the same state.
func TestShowAndTrace(t *testing.T) {
	db, dir := testStore(t), t.TempDir()
	writeFile(t, dir, "pods.yaml", podsYAML)
	writeFile(t, dir, "web-allow.yaml", allowHTTP)
	bind(t, db, reserve(t, db, "shop", "web", "10.0.0.10"), 5)
	bind(t, db, reserve(t, db, "shop", "client", "10.0.0.11"), 6)
	s := NewSyncer(SyncOptions{DB: db, Enabled: true, ManifestDir: dir, Node: "node-a"})
	mustPass(t, s)

	r, err := Show(db, policy.PodRef{Namespace: "shop", Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := record(t, db, "shop", "web")
	if r.From != FromRecord || r.Record == nil || !r.Record.Current || r.Record.Digest != rec.Digest {
		t.Fatalf("show: from %s record %+v, want the current record %s", r.From, r.Record, rec.Digest)
	}
	if !slices.Equal(r.Ruleset.Ingress.Policies, []string{"shop/web-allow"}) || r.Ruleset.Egress.Isolated {
		t.Errorf("show ruleset: ingress %v, egress isolated %t", r.Ruleset.Ingress.Policies, r.Ruleset.Egress.Isolated)
	}
	var text bytes.Buffer
	if err := r.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"current", "ingress: isolated by shop/web-allow", "egress: not isolated", "10.0.0.11/32"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("show text lacks %q:\n%s", want, text.String())
		}
	}
	js, err := json.Marshal(r)
	if err != nil || !strings.Contains(string(js), `"from":"record"`) || !strings.Contains(string(js), `"current":true`) {
		t.Errorf("show json: %s, %v", js, err)
	}

	// Traces from the stored state: allowed by the named port, denied on
	// another port, from a pod the policy does not name.
	for _, c := range []struct {
		from, to string
		port     uint16
		allowed  bool
	}{
		{"shop/client", "shop/web", 8080, true},
		{"10.9.0.7", "shop/web", 8080, true}, // far, on node-b
		{"shop/client", "shop/web", 80, false},
		{"10.0.0.99", "shop/web", 8080, false},
		{"shop/web", "shop/client", 80, true}, // client is not isolated
	} {
		from, _ := policy.ParseEndpoint(c.from)
		to, _ := policy.ParseEndpoint(c.to)
		tr, err := Trace(db, from, to, policy.ProtoTCP, c.port)
		if err != nil {
			t.Fatalf("trace %s → %s: %v", c.from, c.to, err)
		}
		if tr.Allowed != c.allowed {
			t.Errorf("trace %s → %s:%d = %t, want %t", c.from, c.to, c.port, tr.Allowed, c.allowed)
		}
		if c.allowed && c.to == "shop/web" && (len(tr.Ingress.By) == 0 || tr.Ingress.By[0].Policy != "shop/web-allow") {
			t.Errorf("trace %s → %s: decided by %v, want shop/web-allow", c.from, c.to, tr.Ingress.By)
		}
	}

	// The policy goes, the daemon has not run: the record is stale.
	if err := os.Remove(filepath.Join(dir, "web-allow.yaml")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "deny.yaml", denyAll)
	// Only the stored source counts: put the new folder in the store
	// without recompiling, as a daemon that died mid-pass would.
	in, err := policy.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	src, err := SourceFromInput(SourceManifests, dir, in)
	if err != nil {
		t.Fatal(err)
	}
	mustUpdate(t, db, func(tx *store.WriteTx) error { return tx.PutPolicySource(src) })
	r, err = Show(db, policy.PodRef{Namespace: "shop", Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	text.Reset()
	_ = r.WriteText(&text)
	if r.Record == nil || r.Record.Current || !strings.Contains(text.String(), "STALE") {
		t.Errorf("stale record shown as %+v:\n%s", r.Record, text.String())
	}
	// The trace already follows the stored snapshot: denied now.
	from, _ := policy.ParseEndpoint("shop/client")
	to, _ := policy.ParseEndpoint("shop/web")
	if tr, err := Trace(db, from, to, policy.ProtoTCP, 8080); err != nil || tr.Allowed {
		t.Errorf("trace after deny-all: %+v, %v", tr, err)
	}

	if _, err := Show(db, policy.PodRef{Namespace: "shop", Name: "nobody"}); !errors.Is(err, ErrUnknownPod) {
		t.Errorf("unknown pod: %v, want ErrUnknownPod", err)
	}
}
