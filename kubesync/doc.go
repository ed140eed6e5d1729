// Package kubesync is the node daemon's Kubernetes side. It watches what
// concerns its node (its Node object, the pods scheduled here, namespaces,
// network policies, the config ConfigMaps in kube-system) and:
//
//   - mirrors into the store the facts a CNI call may need (pods' labels,
//     ports and annotations, namespaces' labels, network policies), so an
//     ADD never waits for the API server and keeps working while the
//     daemon or the API server is down;
//   - layers the cluster's eni_conf (kube-system/eni-config, then the
//     ConfigMap a node label terway-config= or veni-config= names, then
//     exclusive_eni_type from the label
//     k8s.aliyun.com/exclusive-mode-eni-type=eniOnly) over the node's file
//     as RFC 7396 merge patches, writes the result to
//     cluster.json beside veni.json for the plugin, and hands the daemon
//     the fields it may apply live (others are refused with an event);
//   - reports back: the pod annotation k8s.aliyun.com/pod-ips, events with
//     Terway's reasons (AllocIPSucceed "took N ms", AllocIPFailed, ENI and
//     vSwitch events, ConfigError), the node conditions SufficientIP and
//     VeniConfig, an annotation with the instance's limits, and on a trunk
//     node Terway's k8s.aliyun.com/trunk-on and max-member-eni-ip;
//   - on the one daemon elected through a coordination.k8s.io Lease (only
//     a few daemons stand), sweeps ENIs veni created that sat Available
//     (a fixed-IP ENI parked for its pod only once its release time is
//     past by the sweep's grace).
//
// It talks to the API server through package kube, to the rest of veni
// only through the store and the callbacks the daemon gives it. It never
// touches links, eBPF or the node's pool; the one cloud call it makes is
// the elected sweeper's.
//
// Everything the CNI plugin and the daemon's loops leave in the store's
// event log (CNI call records, pool events) is read from there: no RPC.
package kubesync
