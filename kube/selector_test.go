package kube

import (
	"errors"
	"math/rand/v2"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// toMeta converts our selector to apimachinery's, field by field.
func toMeta(s *LabelSelector) *metav1.LabelSelector {
	if s == nil {
		return nil
	}
	m := &metav1.LabelSelector{MatchLabels: s.MatchLabels}
	for _, r := range s.MatchExpressions {
		m.MatchExpressions = append(m.MatchExpressions, metav1.LabelSelectorRequirement{
			Key: r.Key, Operator: metav1.LabelSelectorOperator(r.Operator), Values: r.Values,
		})
	}
	return m
}

// reference evaluates s the way Kubernetes does.
func reference(t *testing.T, s *LabelSelector, l map[string]string) bool {
	t.Helper()
	sel, err := metav1.LabelSelectorAsSelector(toMeta(s))
	if err != nil {
		t.Fatalf("apimachinery rejects %+v: %v", s, err)
	}
	return sel.Matches(labels.Set(l))
}

func TestLabelSelector_Matches_Table(t *testing.T) {
	app := map[string]string{"app": "web", "tier": "front"}
	tests := []struct {
		name string
		sel  *LabelSelector
		l    map[string]string
		want bool
	}{
		{"nil matches nothing", nil, app, false},
		{"empty matches all", &LabelSelector{}, app, true},
		{"empty matches no labels", &LabelSelector{}, nil, true},
		{"matchLabels hit", &LabelSelector{MatchLabels: map[string]string{"app": "web"}}, app, true},
		{"matchLabels miss", &LabelSelector{MatchLabels: map[string]string{"app": "db"}}, app, false},
		{"matchLabels absent", &LabelSelector{MatchLabels: map[string]string{"x": ""}}, app, false},
		{"matchLabels empty value", &LabelSelector{MatchLabels: map[string]string{"x": ""}}, map[string]string{"x": ""}, true},
		{"In hit", &LabelSelector{MatchExpressions: []LabelSelectorRequirement{{Key: "tier", Operator: "In", Values: []string{"back", "front"}}}}, app, true},
		{"In absent key", &LabelSelector{MatchExpressions: []LabelSelectorRequirement{{Key: "zone", Operator: "In", Values: []string{"a"}}}}, app, false},
		{"NotIn absent key matches", &LabelSelector{MatchExpressions: []LabelSelectorRequirement{{Key: "zone", Operator: "NotIn", Values: []string{"a"}}}}, app, true},
		{"NotIn hit", &LabelSelector{MatchExpressions: []LabelSelectorRequirement{{Key: "app", Operator: "NotIn", Values: []string{"web"}}}}, app, false},
		{"Exists", &LabelSelector{MatchExpressions: []LabelSelectorRequirement{{Key: "app", Operator: "Exists"}}}, app, true},
		{"DoesNotExist", &LabelSelector{MatchExpressions: []LabelSelectorRequirement{{Key: "app", Operator: "DoesNotExist"}}}, app, false},
		{"AND of both", &LabelSelector{
			MatchLabels:      map[string]string{"app": "web"},
			MatchExpressions: []LabelSelectorRequirement{{Key: "tier", Operator: "NotIn", Values: []string{"front"}}},
		}, app, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.sel.Matches(tc.l)
			if got != tc.want {
				t.Errorf("Matches = %v, want %v", got, tc.want)
			}
			if ref := reference(t, tc.sel, tc.l); ref != got {
				t.Errorf("apimachinery says %v, we say %v", ref, got)
			}
		})
	}
}

// TestLabelSelector_Matches_Random compares with apimachinery on random
// selectors and label sets over a small alphabet (so hits are common),
// and checks that String() parses back, with labels.Parse, to a selector
// that agrees too.
func TestLabelSelector_Matches_Random(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	keys := []string{"app", "tier", "k8s.io/zone", "x"}
	vals := []string{"a", "b", "c"}
	ops := []string{LabelSelectorOpIn, LabelSelectorOpNotIn, LabelSelectorOpExists, LabelSelectorOpDoesNotExist}
	randLabels := func() map[string]string {
		l := map[string]string{}
		for _, k := range keys {
			if rng.IntN(2) == 0 {
				l[k] = vals[rng.IntN(len(vals))]
			}
		}
		return l
	}
	for range 3000 {
		s := &LabelSelector{}
		if rng.IntN(2) == 0 {
			s.MatchLabels = map[string]string{}
			for range rng.IntN(3) {
				s.MatchLabels[keys[rng.IntN(len(keys))]] = vals[rng.IntN(len(vals))]
			}
		}
		for range rng.IntN(4) {
			r := LabelSelectorRequirement{Key: keys[rng.IntN(len(keys))], Operator: ops[rng.IntN(len(ops))]}
			if r.Operator == LabelSelectorOpIn || r.Operator == LabelSelectorOpNotIn {
				for range 1 + rng.IntN(2) {
					r.Values = append(r.Values, vals[rng.IntN(len(vals))])
				}
			}
			s.MatchExpressions = append(s.MatchExpressions, r)
		}
		parsed, err := labels.Parse(s.String())
		if err != nil {
			t.Fatalf("labels.Parse(%q): %v", s.String(), err)
		}
		for range 5 {
			l := randLabels()
			got, ref := s.Matches(l), reference(t, s, l)
			if got != ref {
				t.Fatalf("selector %+v labels %v: we say %v, apimachinery %v", s, l, got, ref)
			}
			if p := parsed.Matches(labels.Set(l)); p != got {
				t.Fatalf("String() %q parses to a selector that says %v on %v, we say %v", s.String(), p, l, got)
			}
		}
	}
}

func TestLabelSelector_Validate_Invalid(t *testing.T) {
	tests := []LabelSelectorRequirement{
		{Key: "a", Operator: "In"},
		{Key: "a", Operator: "NotIn"},
		{Key: "a", Operator: "Exists", Values: []string{"x"}},
		{Key: "a", Operator: "DoesNotExist", Values: []string{"x"}},
		{Key: "a", Operator: "Gt", Values: []string{"1"}},
	}
	for _, r := range tests {
		s := &LabelSelector{MatchExpressions: []LabelSelectorRequirement{r}}
		err := s.Validate()
		if !errors.Is(err, ErrInvalidSelector) {
			t.Errorf("%+v: Validate = %v, want ErrInvalidSelector", r, err)
		}
		if _, merr := metav1.LabelSelectorAsSelector(toMeta(s)); merr == nil {
			t.Errorf("%+v: apimachinery accepts what we reject", r)
		}
		if s.Matches(map[string]string{"a": "x"}) {
			t.Errorf("%+v: invalid selector matched", r)
		}
	}
}
