// Package podnet owns a pod attachment's life on the node where it crosses
// the store and the kernel: the claim that serializes everything done for
// one attachment (a CNI ADD, a DEL, a GC, an operator's release), the one
// function that releases an attachment whoever asks, and the liveness
// tests garbage collection decides by.
//
// # Releasing
//
// Release is the only way an added pod gives its address back, for CNI DEL,
// the CNI GC verb, the daemon's GC, "veni ipam gc" and "veni ipam release".
// Under the attachment's claim it tears the pod down first (veth, routes,
// rules, its fast-path endpoint matched by address and host interface,
// its NetworkPolicy endpoint, a trunk member's VLAN tag) and
// only then frees the address, and only if the store still holds the very
// allocation it tore down. A pod on its own ENI (exclusive ENI mode) is
// torn down by moving the ENI back to the node (netplumb.TeardownExclusive),
// from the namespace veni pinned at ADD (ExclusivePin) even when the
// runtime already dropped the pod's; freeing its address makes the ENI
// warm. An ENI whose link is nowhere is retired instead (the daemon
// deletes it), never given to another pod. While the teardown runs the address is still
// held, so no new pod can be given it, and nothing the teardown removes can
// belong to a newer owner.
//
// # Liveness
//
// Decided by what the kernel guarantees, never by a PID (the plugin, a
// daemon in its own PID namespace and the CLI see different PIDs): a
// reservation is alive while its ADD holds the attachment's claim; a bound
// allocation while its netns path still names the network namespace it
// named at ADD (an nsfs mount of that inode, or /proc/<pid>/ns/net seen
// from the PID namespace that recorded it). An empty file left where a
// netns was unmounted is not a namespace.
//
// This package must not call the cloud; it reads and writes the store only
// in short transactions (through ipam), and never holds one open across a
// netlink call.
package podnet
