package podnetwork

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/veni-cni/veni/kube"
	"github.com/veni-cni/veni/store"
)

func pn(name string, pod, ns map[string]string, mutate func(*kube.PodNetworking)) kube.PodNetworking {
	p := kube.PodNetworking{ObjectMeta: kube.ObjectMeta{Name: name}}
	if pod != nil {
		p.Spec.Selector.PodSelector = &kube.LabelSelector{MatchLabels: pod}
	}
	if ns != nil {
		p.Spec.Selector.NamespaceSelector = &kube.LabelSelector{MatchLabels: ns}
	}
	if mutate != nil {
		mutate(&p)
	}
	return p
}

func TestSelect(t *testing.T) {
	web := pn("web", map[string]string{"app": "web"}, nil, func(p *kube.PodNetworking) {
		p.Spec.SecurityGroupIDs = []string{"sg-web"}
		p.Spec.ENIOptions.ENIType = kube.ENITypeTrunk
	})
	prod := pn("prod", nil, map[string]string{"env": "prod"}, func(p *kube.PodNetworking) {
		p.Spec.ENIOptions.ENIType = kube.ENITypeENI
		p.Spec.VSwitchOptions = []string{"vsw-b"}
	})
	both := pn("both", map[string]string{"app": "db"}, map[string]string{"env": "prod"}, nil)
	inert := pn("inert", nil, nil, nil)
	all := []kube.PodNetworking{web, prod, both, inert}
	for _, tc := range []struct {
		name      string
		pns       []kube.PodNetworking
		pod, anno map[string]string
		ns        map[string]string
		want      Request
		err       error
	}{
		{name: "none selects: shared", pns: all, pod: map[string]string{"app": "x"}, want: Request{}},
		{name: "pod selector", pns: all, pod: map[string]string{"app": "web"},
			want: Request{Networking: "web", Kind: Member, SecurityGroupIDs: []string{"sg-web"}}},
		{name: "namespace selector", pns: all, ns: map[string]string{"env": "prod"},
			want: Request{Networking: "prod", Kind: Exclusive, VSwitchIDs: []string{"vsw-b"}}},
		{name: "both selectors: both must match", pns: []kube.PodNetworking{both}, pod: map[string]string{"app": "db"}, want: Request{}},
		{name: "both selectors match; eniType unset is the node's default", pns: []kube.PodNetworking{both},
			pod: map[string]string{"app": "db"}, ns: map[string]string{"env": "prod"}, want: Request{Networking: "both", Kind: NodeDefault}},
		{name: "two match: error", pns: all, pod: map[string]string{"app": "web"}, ns: map[string]string{"env": "prod"}, err: ErrInvalid},
		{name: "annotation wins over selectors", pns: all, pod: map[string]string{"app": "web"},
			anno: map[string]string{AnnotationPodNetworking: "prod"}, want: Request{Networking: "prod", Kind: Exclusive, VSwitchIDs: []string{"vsw-b"}}},
		{name: "annotation names nothing: error", pns: all, anno: map[string]string{AnnotationPodNetworking: "gone"}, err: ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Select(tc.pns, tc.pod, tc.anno, tc.ns)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if tc.err != nil {
				return
			}
			if g, w := mustJSON(t, got), mustJSON(t, tc.want); g != w {
				t.Fatalf("got %s\nwant %s", g, w)
			}
		})
	}
}

func TestRequestOf_Fixed(t *testing.T) {
	for _, tc := range []struct {
		a         kube.AllocationType
		never     bool
		after     time.Duration
		fixed     bool
		wantValid bool
	}{
		{a: kube.AllocationType{}, wantValid: true},
		{a: kube.AllocationType{Type: "Fixed"}, fixed: true, after: DefaultReleaseAfter, wantValid: true},
		{a: kube.AllocationType{Type: "Fixed", ReleaseStrategy: "TTL", ReleaseAfter: "10m"}, fixed: true, after: 10 * time.Minute, wantValid: true},
		{a: kube.AllocationType{Type: "Fixed", ReleaseStrategy: "Never"}, fixed: true, never: true, wantValid: true},
		{a: kube.AllocationType{Type: "Fixed", ReleaseAfter: "soon"}},
		{a: kube.AllocationType{Type: "Fixed", ReleaseStrategy: "Never", ReleaseAfter: "5m"}},
		{a: kube.AllocationType{Type: "Elastic", ReleaseAfter: "5m"}},
		{a: kube.AllocationType{Type: "Sticky"}},
	} {
		p := pn("x", map[string]string{}, nil, func(p *kube.PodNetworking) { p.Spec.AllocationType = tc.a })
		err := Validate(&p)
		if (err == nil) != tc.wantValid {
			t.Errorf("%+v: Validate = %v, want valid %t", tc.a, err, tc.wantValid)
			continue
		}
		if err != nil {
			continue
		}
		r := RequestOf(&p)
		if r.Fixed != tc.fixed || r.ReleaseNever != tc.never || r.ReleaseAfter != tc.after {
			t.Errorf("%+v: got fixed %t never %t after %s", tc.a, r.Fixed, r.ReleaseNever, r.ReleaseAfter)
		}
		// What the store keeps of it: the same decision, made once.
		switch f := r.FixedPolicy(); {
		case !tc.fixed && f != nil:
			t.Errorf("%+v: policy %+v for an elastic pod", tc.a, f)
		case tc.fixed && (f == nil || f.Never != tc.never || f.ReleaseAfter != tc.after || f.Networking != "x"):
			t.Errorf("%+v: policy %+v", tc.a, f)
		}
	}
}

func TestValidate_Refuses(t *testing.T) {
	for name, mutate := range map[string]func(*kube.PodNetworking){
		"eniType":    func(p *kube.PodNetworking) { p.Spec.ENIOptions.ENIType = "Member" },
		"sg id":      func(p *kube.PodNetworking) { p.Spec.SecurityGroupIDs = []string{"web"} },
		"11 groups":  func(p *kube.PodNetworking) { p.Spec.SecurityGroupIDs = make([]string, 11) },
		"vswitch id": func(p *kube.PodNetworking) { p.Spec.VSwitchOptions = []string{"b"} },
		"bad selector": func(p *kube.PodNetworking) {
			p.Spec.Selector.PodSelector.MatchExpressions = []kube.LabelSelectorRequirement{{Key: "a", Operator: "Near"}}
		},
		"no name": func(p *kube.PodNetworking) { p.Name = "" },
	} {
		p := pn("x", map[string]string{"a": "b"}, nil, mutate)
		if err := Validate(&p); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Validate = %v, want ErrInvalid", name, err)
		}
	}
}

// TestResolve reads what an ADD reads: PodNetworkings and pods from the
// Kubernetes mirror and from a manifest folder's source.
func TestResolve(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "veni.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	resolve := func(ns, name string) (Request, error) {
		var r Request
		err := db.View(func(tx *store.ReadTx) error {
			var err error
			r, err = Resolve(tx, ns, name)
			return err
		})
		return r, err
	}
	// No PodNetworking: shared, even for a pod nobody knows.
	if r, err := resolve("default", "ghost"); err != nil || r.Dedicated() {
		t.Fatalf("no PodNetworking: %+v, %v", r, err)
	}
	web := pn("web", map[string]string{"app": "web"}, nil, func(p *kube.PodNetworking) { p.Spec.SecurityGroupIDs = []string{"sg-web"} })
	err = db.Update(func(tx *store.WriteTx) error {
		if err := tx.PutMirrorPodNetworking(store.PodNetworking{Name: "web", Raw: []byte(mustJSON(t, web))}); err != nil {
			return err
		}
		if err := tx.PutMirrorPod(store.Pod{Namespace: "default", Name: "a", Labels: map[string]string{"app": "web"}}); err != nil {
			return err
		}
		return tx.PutPolicySource(store.PolicySource{Name: "manifests", Pods: []store.SourcePod{
			{Pod: store.Pod{Namespace: "shop", Name: "b", Labels: map[string]string{"app": "web"}}},
			{Pod: store.Pod{Namespace: "shop", Name: "c", Labels: map[string]string{"app": "cart"}}},
		}})
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ns, name string
		want     string
		err      error
	}{
		{"default", "a", "web", nil},
		{"shop", "b", "web", nil},
		{"shop", "c", "", nil},
		{"default", "ghost", "", ErrPodUnknown},
	} {
		r, err := resolve(tc.ns, tc.name)
		if !errors.Is(err, tc.err) || r.Networking != tc.want {
			t.Errorf("%s/%s: %+v, %v; want networking %q, err %v", tc.ns, tc.name, r, err, tc.want, tc.err)
		}
	}
	// A PodNetworking the store cannot read stops every dedicated
	// decision rather than letting pods it meant to select go shared.
	err = db.Update(func(tx *store.WriteTx) error {
		return tx.PutMirrorPodNetworking(store.PodNetworking{Name: "bad", Raw: []byte(`{"metadata":{"name":"bad"},"spec":{"eniOptions":{"eniType":"Nope"}}}`)})
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := resolve("shop", "c"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unreadable PodNetworking: err %v, want ErrInvalid", err)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestStickFor(t *testing.T) {
	for _, tc := range []struct {
		anno     string // "" absent
		stateful bool
		want     time.Duration
		invalid  bool
	}{
		{want: 0},
		{stateful: true, want: DefaultStick},
		{anno: "true", want: DefaultStick},
		{anno: "false", stateful: true, want: 0},
		{anno: "10m", want: 10 * time.Minute},
		{anno: "forever", invalid: true},
		{anno: "-5m", invalid: true},
		{anno: "48h", invalid: true},
	} {
		p := store.Pod{Namespace: "db", Name: "pg-0", Stateful: tc.stateful}
		if tc.anno != "" {
			p.Annotations = map[string]string{AnnotationIPReservation: tc.anno}
		}
		got, err := StickFor(p)
		if (err != nil) != tc.invalid || (errors.Is(err, ErrInvalid) != tc.invalid) || got != tc.want {
			t.Errorf("annotation %q stateful %t: %s, %v; want %s (invalid %t)", tc.anno, tc.stateful, got, err, tc.want, tc.invalid)
		}
	}
}
