package policy

import (
	"math/rand/v2"
	"testing"

	"github.com/mattfenwick/cyclonus/pkg/kube"
	veni "github.com/veni-cni/veni/kube"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// TestOracle_LabelQuirks pins the two places where cyclonus's label
// matching is not Kubernetes's, that veni's matcher is Kubernetes's there,
// and that the oracle adapter's rewrite (selectorVariants) gives cyclonus
// Kubernetes's answer.
func TestOracle_LabelQuirks(t *testing.T) {
	for _, tc := range []struct {
		name   string
		sel    metav1.LabelSelector
		labels map[string]string
		want   bool // Kubernetes
	}{
		{"NotIn matches an object without the key",
			metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "NotIn", Values: []string{"db"}}}},
			map[string]string{"tier": "x"}, true},
		{"matchLabels with an empty value wants the key",
			metav1.LabelSelector{MatchLabels: map[string]string{"app": ""}},
			map[string]string{"tier": "x"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k8s := mustAsSelector(t, tc.sel).Matches(labels.Set(tc.labels))
			if k8s != tc.want {
				t.Fatalf("apimachinery says %v, the test says Kubernetes means %v", k8s, tc.want)
			}
			if got := kube.IsLabelsMatchLabelSelector(tc.labels, tc.sel); got == tc.want {
				t.Errorf("cyclonus now agrees with Kubernetes (%v): the adapter's rewrite may go", got)
			}
			if got := toVeni(tc.sel).Matches(tc.labels); got != tc.want {
				t.Errorf("veni's matcher says %v, Kubernetes %v", got, tc.want)
			}
			union := false
			for _, v := range selectorVariants(tc.sel) {
				union = union || kube.IsLabelsMatchLabelSelector(tc.labels, *v)
			}
			if union != tc.want {
				t.Errorf("cyclonus on the rewritten selectors says %v, Kubernetes %v", union, tc.want)
			}
		})
	}
}

// TestLabelSelector_Matches_Apimachinery checks the matcher the compiler
// uses (veni's kube.LabelSelector) against apimachinery's on random
// selectors and label sets.
func TestLabelSelector_Matches_Apimachinery(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 8))
	keys, values := []string{"a", "b", "c"}, []string{"1", "2", ""}
	for range 20000 {
		var sel metav1.LabelSelector
		for range r.IntN(3) {
			if sel.MatchLabels == nil {
				sel.MatchLabels = map[string]string{}
			}
			sel.MatchLabels[pick(r, keys...)] = pick(r, values...)
		}
		for range r.IntN(3) {
			req := metav1.LabelSelectorRequirement{Key: pick(r, keys...), Operator: pick[metav1.LabelSelectorOperator](r, "In", "NotIn", "Exists", "DoesNotExist")}
			if req.Operator == "In" || req.Operator == "NotIn" {
				req.Values = []string{pick(r, values...), pick(r, values...)}
			}
			sel.MatchExpressions = append(sel.MatchExpressions, req)
		}
		ls := map[string]string{}
		for _, k := range keys {
			if r.IntN(2) == 0 {
				ls[k] = pick(r, values...)
			}
		}
		want := mustAsSelector(t, sel).Matches(labels.Set(ls))
		if got := toVeni(sel).Matches(ls); got != want {
			t.Fatalf("selector %v on %v: veni %v, apimachinery %v", sel, ls, got, want)
		}
	}
}

func mustAsSelector(tb testing.TB, s metav1.LabelSelector) labels.Selector {
	tb.Helper()
	sel, err := metav1.LabelSelectorAsSelector(&s)
	if err != nil {
		tb.Fatal(err)
	}
	return sel
}

func toVeni(s metav1.LabelSelector) *veni.LabelSelector {
	out := &veni.LabelSelector{MatchLabels: s.MatchLabels}
	for _, e := range s.MatchExpressions {
		out.MatchExpressions = append(out.MatchExpressions, veni.LabelSelectorRequirement{Key: e.Key, Operator: string(e.Operator), Values: e.Values})
	}
	return out
}
