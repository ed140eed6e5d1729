package kube

// NetworkPolicy is a networking.k8s.io/v1 NetworkPolicy with its full spec
// (the enforcer needs every field to get the semantics exactly right).
type NetworkPolicy struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata"`
	Spec       NetworkPolicySpec `json:"spec"`
}

// NetworkPolicySpec is a networking.k8s.io/v1 NetworkPolicySpec.
type NetworkPolicySpec struct {
	// PodSelector selects the pods the policy applies to; empty selects
	// every pod in the namespace.
	PodSelector LabelSelector `json:"podSelector"`
	// Ingress rules; nil with "Ingress" in PolicyTypes denies all ingress.
	Ingress []NetworkPolicyIngressRule `json:"ingress,omitempty"`
	// Egress rules; nil with "Egress" in PolicyTypes denies all egress.
	Egress []NetworkPolicyEgressRule `json:"egress,omitempty"`
	// PolicyTypes lists "Ingress" and/or "Egress". When empty the server
	// defaults it (Ingress always, Egress if there are egress rules).
	PolicyTypes []string `json:"policyTypes,omitempty"`
}

// Policy types.
const (
	PolicyTypeIngress = "Ingress"
	PolicyTypeEgress  = "Egress"
)

// NetworkPolicyIngressRule allows traffic that matches all of Ports (empty:
// any port) and any of From (empty: any source).
type NetworkPolicyIngressRule struct {
	Ports []NetworkPolicyPort `json:"ports,omitempty"`
	From  []NetworkPolicyPeer `json:"from,omitempty"`
}

// NetworkPolicyEgressRule allows traffic that matches all of Ports (empty:
// any port) and any of To (empty: any destination).
type NetworkPolicyEgressRule struct {
	Ports []NetworkPolicyPort `json:"ports,omitempty"`
	To    []NetworkPolicyPeer `json:"to,omitempty"`
}

// NetworkPolicyPort is a protocol and a port (number or named container
// port), optionally a range up to EndPort.
type NetworkPolicyPort struct {
	Protocol *string      `json:"protocol,omitempty"` // TCP (default), UDP, SCTP
	Port     *IntOrString `json:"port,omitempty"`     // nil: every port
	EndPort  *int32       `json:"endPort,omitempty"`  // only with a numeric Port
}

// NetworkPolicyPeer is one peer. PodSelector alone selects pods in the
// policy's namespace; NamespaceSelector alone selects all pods in matching
// namespaces; both together select matching pods in matching namespaces;
// IPBlock excludes the other two.
type NetworkPolicyPeer struct {
	PodSelector       *LabelSelector `json:"podSelector,omitempty"`
	NamespaceSelector *LabelSelector `json:"namespaceSelector,omitempty"`
	IPBlock           *IPBlock       `json:"ipBlock,omitempty"`
}

// IPBlock is a CIDR minus the CIDRs in Except.
type IPBlock struct {
	CIDR   string   `json:"cidr"`
	Except []string `json:"except,omitempty"`
}

// LabelSelector is a metav1.LabelSelector: the result of MatchLabels and
// MatchExpressions ANDed. An empty selector matches everything; see
// Matches, and Selector for the nil case.
type LabelSelector struct {
	MatchLabels      map[string]string          `json:"matchLabels,omitempty"`
	MatchExpressions []LabelSelectorRequirement `json:"matchExpressions,omitempty"`
}

// LabelSelectorRequirement is one expression: Key Operator Values.
type LabelSelectorRequirement struct {
	Key      string   `json:"key"`
	Operator string   `json:"operator"` // In, NotIn, Exists, DoesNotExist
	Values   []string `json:"values,omitempty"`
}

// Label selector operators.
const (
	LabelSelectorOpIn           = "In"
	LabelSelectorOpNotIn        = "NotIn"
	LabelSelectorOpExists       = "Exists"
	LabelSelectorOpDoesNotExist = "DoesNotExist"
)
