package kube

// PodNetworking is Terway's network.alibabacloud.com/v1beta1 PodNetworking
// (cluster-scoped): which pods get a dedicated ENI (a trunk member or an
// exclusive ENI) and with which security groups and vSwitches, so
// manifests written for Terway work unchanged. Fields veni does not act on
// (vSwitchSelectOptions, eniOptions.eniAttachType, ...) are not modelled.
type PodNetworking struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata"`
	Spec       PodNetworkingSpec   `json:"spec"`
	Status     PodNetworkingStatus `json:"status,omitzero"`
}

// PodNetworkingSpec is what a PodNetworking asks for the pods it selects.
type PodNetworkingSpec struct {
	// Selector picks pods by their labels and their namespace's labels;
	// both given, a pod must match both. An empty selector selects no pod
	// (Terway: a PodNetworking with neither selector is inert).
	Selector         PodNetworkingSelector `json:"selector"`
	SecurityGroupIDs []string              `json:"securityGroupIDs,omitempty"`
	VSwitchOptions   []string              `json:"vSwitchOptions,omitempty"`
	ENIOptions       ENIOptions            `json:"eniOptions,omitzero"`
	AllocationType   AllocationType        `json:"allocationType,omitzero"`
}

// PodNetworkingSelector is spec.selector.
type PodNetworkingSelector struct {
	PodSelector       *LabelSelector `json:"podSelector,omitempty"`
	NamespaceSelector *LabelSelector `json:"namespaceSelector,omitempty"`
}

// ENIOptions is spec.eniOptions.
type ENIOptions struct {
	// ENIType is Default (the node decides: a member on trunk nodes, an
	// exclusive ENI on exclusive nodes), ENI (exclusive) or Trunk (member).
	ENIType string `json:"eniType,omitempty"`
}

// ENI types of eniOptions.eniType.
const (
	ENITypeDefault = "Default"
	ENITypeENI     = "ENI"
	ENITypeTrunk   = "Trunk"
)

// AllocationType is spec.allocationType: Elastic (the ENI goes with the
// pod) or Fixed (it is kept for the pod's next incarnation, per
// ReleaseStrategy).
type AllocationType struct {
	Type            string `json:"type,omitempty"`            // Elastic (default) or Fixed
	ReleaseStrategy string `json:"releaseStrategy,omitempty"` // TTL (default for Fixed) or Never
	ReleaseAfter    string `json:"releaseAfter,omitempty"`    // a Go duration, e.g. "5m0s"; TTL only
}

// Allocation types and release strategies.
const (
	AllocationElastic = "Elastic"
	AllocationFixed   = "Fixed"
	ReleaseTTL        = "TTL"
	ReleaseNever      = "Never"
)

// PodNetworkingStatus is what Terway's controller reports; veni reads it
// only to show it.
type PodNetworkingStatus struct {
	Status    string `json:"status,omitempty"` // Ready or Fail
	Message   string `json:"message,omitempty"`
	VSwitches []struct {
		ID   string `json:"id"`
		Zone string `json:"zone"`
	} `json:"vSwitches,omitempty"`
}
