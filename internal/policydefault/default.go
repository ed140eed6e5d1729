// Package policydefault applies the API server's defaulting to a
// NetworkPolicy read from YAML, as the cyclonus oracle of veni's policy
// tests expects it. Test code only: it imports k8s.io/api, which must
// never reach the veni binary (see the Kubernetes issue's init-cost table).
package policydefault

import (
	v1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// Apply defaults np in place: namespace "default", policyTypes Ingress
// (plus Egress when it has egress rules), and TCP for ports without a
// protocol.
func Apply(np *networkingv1.NetworkPolicy) {
	if np.Namespace == "" {
		np.Namespace = "default"
	}
	if len(np.Spec.PolicyTypes) == 0 {
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
		if len(np.Spec.Egress) > 0 {
			np.Spec.PolicyTypes = append(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress)
		}
	}
	tcp := v1.ProtocolTCP
	fix := func(ports []networkingv1.NetworkPolicyPort) {
		for i := range ports {
			if ports[i].Protocol == nil {
				ports[i].Protocol = &tcp
			}
		}
	}
	for i := range np.Spec.Ingress {
		fix(np.Spec.Ingress[i].Ports)
	}
	for i := range np.Spec.Egress {
		fix(np.Spec.Egress[i].Ports)
	}
}
