package policy

import (
	"fmt"
	"net/netip"
	"strconv"
)

// Protocol is an IP protocol number. NetworkPolicy names three (TCP, UDP,
// SCTP); a rule without ports allows every protocol, which compiled rules
// write as ProtoAny.
type Protocol uint8

// Protocols.
const (
	ProtoAny  Protocol = 0 // in a PortRule: every protocol and port
	ProtoICMP Protocol = 1
	ProtoTCP  Protocol = 6
	ProtoUDP  Protocol = 17
	ProtoSCTP Protocol = 132
)

// ParseProtocol reads a Kubernetes protocol name: "TCP", "UDP" or "SCTP"
// (case-sensitive, as the API server), "" meaning TCP (the API default).
// Traces also accept "any", "ICMP" and a decimal protocol number.
func ParseProtocol(s string) (Protocol, error) {
	switch s {
	case "", "TCP":
		return ProtoTCP, nil
	case "UDP":
		return ProtoUDP, nil
	case "SCTP":
		return ProtoSCTP, nil
	}
	return 0, fmt.Errorf("protocol %q: not TCP, UDP or SCTP", s)
}

// ParseTraceProtocol reads a protocol as an operator writes it for a
// trace: a Kubernetes name in any case, "icmp", or a number.
func ParseTraceProtocol(s string) (Protocol, error) {
	switch s {
	case "tcp", "TCP", "":
		return ProtoTCP, nil
	case "udp", "UDP":
		return ProtoUDP, nil
	case "sctp", "SCTP":
		return ProtoSCTP, nil
	case "icmp", "ICMP":
		return ProtoICMP, nil
	}
	n, err := strconv.ParseUint(s, 10, 8)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("protocol %q: not tcp, udp, sctp, icmp or a protocol number", s)
	}
	return Protocol(n), nil
}

// String returns the Kubernetes name, "any", "ICMP" or the number.
func (p Protocol) String() string {
	switch p {
	case ProtoAny:
		return "any"
	case ProtoICMP:
		return "ICMP"
	case ProtoTCP:
		return "TCP"
	case ProtoUDP:
		return "UDP"
	case ProtoSCTP:
		return "SCTP"
	}
	return strconv.Itoa(int(p))
}

// HasPorts reports whether the protocol carries ports policy can name.
func (p Protocol) HasPorts() bool { return p == ProtoTCP || p == ProtoUDP || p == ProtoSCTP }

// MarshalText writes String().
func (p Protocol) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText reads what MarshalText writes.
func (p *Protocol) UnmarshalText(b []byte) error {
	if string(b) == "any" {
		*p = ProtoAny
		return nil
	}
	v, err := ParseTraceProtocol(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// PodRef names a pod.
type PodRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// String returns "namespace/name".
func (r PodRef) String() string { return r.Namespace + "/" + r.Name }

// ContainerPort is a port a pod's container declares; a NetworkPolicy's
// named port resolves to it when both name and protocol match.
type ContainerPort struct {
	Name     string   `json:"name,omitempty"`
	Port     uint16   `json:"port"`
	Protocol Protocol `json:"protocol"`
}

// Pod is what policy needs of a pod.
type Pod struct {
	Namespace string            `json:"namespace"`
	Name      string            `json:"name"`
	Labels    map[string]string `json:"labels,omitempty"`
	// IPs are the pod's addresses (one per family). A pod without any
	// (pending, or finished) is selected like any other but no peer
	// address stands for it.
	IPs   []netip.Addr    `json:"ips,omitempty"`
	Ports []ContainerPort `json:"ports,omitempty"`
	// HostNetwork pods share their node's addresses. veni cannot tell
	// their traffic from the node's, so, as the Kubernetes documentation
	// allows, they are neither selected by a policy nor matched by a
	// podSelector or namespaceSelector peer: their traffic is the node's,
	// matched by ipBlock only (see doc.go).
	HostNetwork bool   `json:"hostNetwork,omitempty"`
	Node        string `json:"node,omitempty"`
	// Annotations and Stateful (a StatefulSet owns the pod) are not
	// policy's: a manifest folder's pods carry them to the store for
	// package podnetwork (the pod-networking annotation, IP stick).
	Annotations map[string]string `json:"annotations,omitempty"`
	Stateful    bool              `json:"stateful,omitempty"`
}

// Ref returns the pod's name.
func (p *Pod) Ref() PodRef { return PodRef{p.Namespace, p.Name} }

// Namespace is a namespace's labels.
type Namespace struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
}

// Node is a node's addresses: the source of its kubelet's probes and of
// its hostNetwork pods' traffic.
type Node struct {
	Name string       `json:"name"`
	IPs  []netip.Addr `json:"ips,omitempty"`
}

// LabelNamespaceName is the label the API server puts on every namespace
// (since Kubernetes 1.22), so policies can select a namespace by name. A
// snapshot adds it to every namespace, including those it only knows by a
// pod or policy in them.
const LabelNamespaceName = "kubernetes.io/metadata.name"
