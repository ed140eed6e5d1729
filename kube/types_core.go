package kube

// The core/v1 objects veni reads and writes. Each type holds only the fields
// veni uses, under their official JSON names. Because fields are missing,
// Update (PUT) of a Pod or a Node would erase what this package does not
// model: change those with Patch. Namespace, ConfigMap, Event and Lease are
// modelled completely enough for Update.

// Pod is a core/v1 Pod, reduced to what placement and policy need.
type Pod struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata"`
	Spec       PodSpec   `json:"spec"`
	Status     PodStatus `json:"status"`
}

// PodSpec holds the node a pod is bound to, whether it uses the host's
// network, and its containers' ports (for named ports in NetworkPolicy).
type PodSpec struct {
	NodeName    string      `json:"nodeName,omitempty"`
	HostNetwork bool        `json:"hostNetwork,omitempty"`
	Containers  []Container `json:"containers"`
}

// Container holds a container's name and ports only.
type Container struct {
	Name  string          `json:"name"`
	Image string          `json:"image,omitempty"`
	Ports []ContainerPort `json:"ports,omitempty"`
}

// ContainerPort is a port a container declares; Name is what a
// NetworkPolicy's named port refers to.
type ContainerPort struct {
	Name          string `json:"name,omitempty"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol,omitempty"` // TCP (default), UDP, SCTP
}

// PodStatus holds the pod's phase and addresses.
type PodStatus struct {
	Phase  string  `json:"phase,omitempty"` // Pending, Running, Succeeded, Failed, Unknown
	PodIP  string  `json:"podIP,omitempty"`
	PodIPs []PodIP `json:"podIPs,omitempty"`
}

// PodIP is one address of a pod (one per family).
type PodIP struct {
	IP string `json:"ip"`
}

// Pod phases.
const (
	PodPending   = "Pending"
	PodRunning   = "Running"
	PodSucceeded = "Succeeded"
	PodFailed    = "Failed"
)

// Node is a core/v1 Node: its labels and annotations (in ObjectMeta), its
// provider id, conditions and addresses.
type Node struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata"`
	Spec       NodeSpec   `json:"spec"`
	Status     NodeStatus `json:"status"`
}

// NodeSpec holds the cloud provider's id of the node
// ("<region>.<instance-id>" on Alibaba Cloud).
type NodeSpec struct {
	ProviderID string `json:"providerID,omitempty"`
}

// NodeStatus holds the node's conditions and addresses.
type NodeStatus struct {
	Conditions []NodeCondition `json:"conditions,omitempty"`
	Addresses  []NodeAddress   `json:"addresses,omitempty"`
}

// NodeCondition is one condition of a node, e.g. veni's SufficientIP.
// Strategic merge patches merge conditions by Type.
type NodeCondition struct {
	Type               string `json:"type"`
	Status             string `json:"status"` // "True", "False", "Unknown"
	LastHeartbeatTime  Time   `json:"lastHeartbeatTime,omitzero"`
	LastTransitionTime Time   `json:"lastTransitionTime,omitzero"`
	Reason             string `json:"reason,omitempty"`
	Message            string `json:"message,omitempty"`
}

// NodeAddress is one address of a node (InternalIP, Hostname, ...).
type NodeAddress struct {
	Type    string `json:"type"`
	Address string `json:"address"`
}

// Condition statuses.
const (
	ConditionTrue    = "True"
	ConditionFalse   = "False"
	ConditionUnknown = "Unknown"
)

// Namespace is a core/v1 Namespace: only its metadata matters to veni
// (labels for namespaceSelector).
type Namespace struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata"`
	Status     NamespaceStatus `json:"status,omitzero"`
}

// NamespaceStatus holds the namespace's phase (Active, Terminating).
type NamespaceStatus struct {
	Phase string `json:"phase,omitempty"`
}

// ConfigMap is a core/v1 ConfigMap (complete).
type ConfigMap struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata"`
	Immutable  *bool             `json:"immutable,omitempty"`
	Data       map[string]string `json:"data,omitempty"`
	BinaryData map[string][]byte `json:"binaryData,omitempty"`
}

// Event is a core/v1 Event. The recorder writes the legacy fields kubectl
// shows (count, firstTimestamp, lastTimestamp, source) and aggregates by
// patching count rather than creating duplicates.
type Event struct {
	TypeMeta           `json:",inline"`
	ObjectMeta         `json:"metadata"`
	InvolvedObject     ObjectReference  `json:"involvedObject"`
	Reason             string           `json:"reason,omitempty"`
	Message            string           `json:"message,omitempty"`
	Source             EventSource      `json:"source,omitzero"`
	FirstTimestamp     Time             `json:"firstTimestamp,omitzero"`
	LastTimestamp      Time             `json:"lastTimestamp,omitzero"`
	Count              int32            `json:"count,omitempty"`
	Type               string           `json:"type,omitempty"` // Normal or Warning
	EventTime          MicroTime        `json:"eventTime,omitzero"`
	Series             *EventSeries     `json:"series,omitempty"`
	Action             string           `json:"action,omitempty"`
	Related            *ObjectReference `json:"related,omitempty"`
	ReportingComponent string           `json:"reportingComponent,omitempty"`
	ReportingInstance  string           `json:"reportingInstance,omitempty"`
}

// EventSeries is a core/v1 EventSeries: how often an event recurred.
type EventSeries struct {
	Count            int32     `json:"count,omitempty"`
	LastObservedTime MicroTime `json:"lastObservedTime,omitzero"`
}

// EventSource names the component (and host) that reported an event.
type EventSource struct {
	Component string `json:"component,omitempty"`
	Host      string `json:"host,omitempty"`
}

// Event types.
const (
	EventTypeNormal  = "Normal"
	EventTypeWarning = "Warning"
)

// ObjectReference is a core/v1 ObjectReference: the object an event is
// about.
type ObjectReference struct {
	Kind            string `json:"kind,omitempty"`
	Namespace       string `json:"namespace,omitempty"`
	Name            string `json:"name,omitempty"`
	UID             string `json:"uid,omitempty"`
	APIVersion      string `json:"apiVersion,omitempty"`
	ResourceVersion string `json:"resourceVersion,omitempty"`
	FieldPath       string `json:"fieldPath,omitempty"`
}

// Lease is a coordination.k8s.io/v1 Lease (complete).
type Lease struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata"`
	Spec       LeaseSpec `json:"spec"`
}

// LeaseSpec is a coordination.k8s.io/v1 LeaseSpec.
type LeaseSpec struct {
	HolderIdentity       *string    `json:"holderIdentity,omitempty"`
	LeaseDurationSeconds *int32     `json:"leaseDurationSeconds,omitempty"`
	AcquireTime          *MicroTime `json:"acquireTime,omitempty"`
	RenewTime            *MicroTime `json:"renewTime,omitempty"`
	LeaseTransitions     *int32     `json:"leaseTransitions,omitempty"`
	Strategy             *string    `json:"strategy,omitempty"`
	PreferredHolder      *string    `json:"preferredHolder,omitempty"`
}
