// Package podnetwork decides what network a pod asks for: the node's
// shared ENIs (the default), or a dedicated ENI — a trunk member or an
// exclusive ENI — with its own security groups and vSwitches, as Terway's
// PodNetworking objects (network.alibabacloud.com/v1beta1) say. Manifests
// written for Terway select the same pods here.
//
// The PodNetworkings come from the store: mirrored from the API server by
// the daemon (package kubesync), or read from the node's manifest folder
// with the NetworkPolicy sources. A pod's labels come from the same places
// (the Kubernetes mirror, the folder's Pods). Resolve is what a CNI ADD
// calls, inside the read transaction it takes anyway: no API server, no
// daemon.
//
// Selection follows Terway: a pod annotated k8s.aliyun.com/pod-networking
// (Terway's webhook writes it) gets that PodNetworking; otherwise the one
// whose selectors match the pod's and its namespace's labels (both given:
// both must match; neither: it selects nothing). Two matching is an error
// the operator must fix, not a coin toss.
//
// This package reads the store and nothing else: no netlink, no cloud,
// no API server.
package podnetwork
