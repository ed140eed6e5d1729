// Package netplumb is veni's node datapath: the links, addresses, routes,
// policy rules, neighbour entries and sysctls that carry pod traffic in
// shared-ENI mode (one veth pair per pod, policy routing per ENI), and in
// exclusive ENI mode (exclusive_linux.go: the pod's own ENI moved into its
// namespace as eth0, a veth1 to the node for Services and the node).
//
// The CNI plugin calls it in this order:
//
//	ADD:   EnsureENI → SetupPod
//	DEL:   TeardownPod (idempotent: "already gone" is success)
//	CHECK: LookupENI → CheckPod
//
// and in exclusive ENI mode ADD: SetupExclusive, DEL: TeardownExclusive,
// CHECK: CheckExclusive. SetupExclusive pins the pod's namespace (a bind
// mount the caller names) before the ENI moves in, and TeardownExclusive
// unpins it only after the ENI is back in the node: a namespace destroyed
// with the ENI inside would take a virtual ENI along, or hand a NIC to the
// initial namespace rather than the node's.
//
// HostPods lists the pods plumbed on a node from the kernel alone, for
// rebuilding the store after it was lost. There is no ENI teardown: a
// detached or deleted ENI's link takes its routes along, and the pods'
// rules go with TeardownPod.
//
// # What it owns
//
// In the host (node) namespace: the ENI links' MTU, up state, rp_filter and
// ARP sysctls (arp_ignore=1, arp_announce=2; no proxy ARP: the VPC delivers
// to the ENI's MAC without asking) and their policy-routing tables
// (ENIConfig.Table, which the caller assigns: never derived from the
// ifindex, which changes when an ENI is re-attached); the host ends of pod
// veths ("veni" + hash of the container id and interface name, strict
// rp_filter, an owner record in the alias), the /32 route to each pod and
// the two rules per pod IP at priorities 512 and 2048. In pod namespaces:
// the pod interface, its /32 address, the permanent neighbour entry for the
// link-local gateway 169.254.1.1 and the routes through it: the default
// route on eth0 (PrimaryIfName), the ENI's vSwitch CIDR plus a source rule
// and table on any other interface.
//
// It must not touch the store or the cloud: it is handed addresses and ENIs
// that were already allocated, and it reports kernel state only.
//
// # Namespaces and threads
//
// Plain netlink work uses a *netlink.Handle bound to the target namespace
// (netlink.NewHandleAt), which needs no thread switching. NetNS.Do (the
// containernetworking/plugins ns design: a fresh goroutine locked to its OS
// thread, unlocked only when switching back worked) is kept for what has no
// handle: sysctls under /proc/sys/net, /proc and sockets. Inside Do never
// start goroutines (they do not inherit the namespace), resolve names or call
// the cloud: keep the closure to a few file writes.
//
// Every netlink dump goes through the wrappers in netlink_linux.go, which
// retry on netlink.ErrDumpInterrupted; call those, not the Handle methods.
//
// IPv4 only: pods get no IPv6 address and the ENI table has no IPv6 routes.
package netplumb
