// Package pods is the simulated cluster's container runtime: a pod is a
// network namespace, added to and deleted from a simulated node through
// libcni with that node's CNI configuration, exactly the calls containerd
// and CRI-O make. The plugin runs inside the node's network namespace, as
// it would on a real node.
//
// It also carries the probes the demo and the end-to-end tests use to prove
// connectivity: a TCP echo server inside a pod and a client that dials from
// inside another one. Probe traffic stays inside the simulated VPC.
//
// It owns pod namespaces and nothing else: addresses, links and routes are
// the CNI plugin's, the fabric is eni/sim/fabric's.
package pods
