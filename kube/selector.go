package kube

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// ErrInvalidSelector means a LabelSelector cannot be evaluated: an unknown
// operator, values given to Exists/DoesNotExist, or no values for In/NotIn.
// The API server rejects such selectors, so seeing it means the object did
// not come from a server.
var ErrInvalidSelector = errors.New("invalid label selector")

// Validate reports whether s can be evaluated, with the same rules as
// metav1.LabelSelectorAsSelector. May return an error wrapping
// ErrInvalidSelector.
func (s *LabelSelector) Validate() error {
	if s == nil {
		return nil
	}
	for _, r := range s.MatchExpressions {
		switch r.Operator {
		case LabelSelectorOpIn, LabelSelectorOpNotIn:
			if len(r.Values) == 0 {
				return fmt.Errorf("%w: %s %s needs values", ErrInvalidSelector, r.Key, r.Operator)
			}
		case LabelSelectorOpExists, LabelSelectorOpDoesNotExist:
			if len(r.Values) > 0 {
				return fmt.Errorf("%w: %s %s takes no values", ErrInvalidSelector, r.Key, r.Operator)
			}
		default:
			return fmt.Errorf("%w: %s: unknown operator %q", ErrInvalidSelector, r.Key, r.Operator)
		}
	}
	return nil
}

// Matches reports whether labels satisfy every requirement of s. A nil
// selector matches nothing and an empty one matches everything, as
// metav1.LabelSelectorAsSelector defines (NetworkPolicy relies on both: a
// nil namespaceSelector in a peer means "this namespace only", handled by
// the caller; an empty podSelector means "all pods"). An invalid selector
// matches nothing: call Validate to tell why.
func (s *LabelSelector) Matches(labels map[string]string) bool {
	if s == nil {
		return false
	}
	if s.Validate() != nil {
		return false
	}
	for k, v := range s.MatchLabels {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	for _, r := range s.MatchExpressions {
		v, ok := labels[r.Key]
		switch r.Operator {
		case LabelSelectorOpIn:
			if !ok || !slices.Contains(r.Values, v) {
				return false
			}
		case LabelSelectorOpNotIn:
			if ok && slices.Contains(r.Values, v) {
				return false
			}
		case LabelSelectorOpExists:
			if !ok {
				return false
			}
		case LabelSelectorOpDoesNotExist:
			if ok {
				return false
			}
		}
	}
	return true
}

// Empty reports whether s has no requirements (and so matches everything).
func (s *LabelSelector) Empty() bool {
	return s != nil && len(s.MatchLabels) == 0 && len(s.MatchExpressions) == 0
}

// String renders s in the labelSelector query syntax the API server
// accepts ("a=b,c in (d,e),!f"), sorted by key so equal selectors render
// equally. A nil selector renders as "" (which the server reads as
// everything: callers that mean "nothing" must not list).
func (s *LabelSelector) String() string {
	if s == nil {
		return ""
	}
	var parts []string
	for k, v := range s.MatchLabels {
		parts = append(parts, k+"="+v)
	}
	for _, r := range s.MatchExpressions {
		vals := slices.Clone(r.Values)
		sort.Strings(vals)
		switch r.Operator {
		case LabelSelectorOpIn:
			parts = append(parts, r.Key+" in ("+strings.Join(vals, ",")+")")
		case LabelSelectorOpNotIn:
			parts = append(parts, r.Key+" notin ("+strings.Join(vals, ",")+")")
		case LabelSelectorOpExists:
			parts = append(parts, r.Key)
		case LabelSelectorOpDoesNotExist:
			parts = append(parts, "!"+r.Key)
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}
