// Package fastpath is veni's eBPF shortcut for pod traffic on a node.
//
// Three tc programs (fastpath.c, compiled by bpf2go; the objects are
// committed). ENI programs attach with TCX links. Pod programs attach, by
// default, as direct-action cls_bpf filters on a clsact qdisc (PodHookTC):
// a TCX attach waits for an RCU grace period, which put ~20 ms on every pod
// start on the development kernel; PodHookTCX keeps TCX for pods too.
//
//   - on ingress of each pod's host veth (traffic leaving the pod): a
//     destination that is a pod of this node is sent straight into it with
//     bpf_redirect_peer; any other destination is looked up in the pod's ENI
//     route table (bpf_fib_lookup with BPF_FIB_LOOKUP_TBID) and sent out of
//     the ENI with bpf_redirect_neigh;
//   - on ingress of each ENI: traffic for a pod of this node goes straight
//     into it with bpf_redirect_peer;
//   - on egress of each pod's host veth: nothing is changed; flows the host
//     stack delivered are remembered so that their replies also go through
//     the host stack (its conntrack must undo Service DNAT).
//
// Remembered flows live in one LRU map per pod address: a pod that opens
// flow after flow evicts only its own oldest ones. Each holds 4096 flows
// and costs 320 KiB of kernel memory (the kernel preallocates an LRU map's
// elements). AttachPod creates it for an address's first pod on the node;
// a released pod's map stays, and the address's next pod gets it emptied,
// because writing the map of maps makes the kernel wait for an RCU grace
// period (15 ms and more on a busy 2-core node, most of a fast-path ADD).
// The daemon removes the maps of addresses the node gave back
// (PruneFlows), so they cost at most the pool's addresses, not its history. A packet a
// pod sends with another local pod's address is dropped by the program;
// other foreign sources go to the host stack, where the host veth's strict
// rp_filter (netplumb) drops IPv4 ones (IPv6 has none: the VPC drops
// sources the ENI does not hold).
//
// When the maps have no room for another pod (ErrMapFull), the pod runs on
// the plain datapath: PlainPod records its address so that the programs
// send other pods' packets for it through the host stack rather than out
// of the ENI, and HostStackPrefixes lists it as "plain-pod".
//
// IPv4 and IPv6 take the same paths. A dual-stack pod's IPv6 is an
// endpoint of its own (Endpoint.IP6, same veth, ENI and table) in maps of
// its own (veni_endpoints6, veni_pod_flows6, veni_hoststack6,
// veni_counters6: the IPv4 maps keep their layout, so an upgrade keeps
// IPv4 pins); its egress is looked up with bpf_fib_lookup AF_INET6 in the
// ENI's table, and Counters.IPv6 counts its packets. Releasing the pod's
// IPv4 (DetachPodOn, DetachPod) removes its IPv6 records too.
//
// Everything else goes to the host stack untouched (the programs return
// TCX_NEXT): ARP and anything not IP, IPv4 fragments, IPv6 with an
// extension header (fragments among them), protocols other than TCP, UDP
// and ICMP or ICMPv6 echo (neighbour discovery, ICMPv6 errors such as
// packet too big), Service CIDRs, configured host-stack CIDRs (node-local
// DNS), the node's own addresses, link-local and multicast (IPv6: also
// addresses whose top 64 bits are zero), and whatever the ENI table cannot
// route or is larger than its MTU (the host answers with ICMP or ICMPv6
// packet too big). The plain datapath built by netplumb must therefore
// work on its own; this package only shortens it.
//
// Lifetimes: maps, programs and TCX links are pinned under a per-node
// directory on bpffs (Options.PinDir, e.g. /sys/fs/bpf/veni/<node>), so they
// outlive the short-lived CNI process that attached them, and the next one
// opens the pinned programs instead of loading them again. Pod filters live
// as long as their veth. A Datapath holds file descriptors only; Close
// releases them and leaves the pins. DetachPodOn (a pod's release, matched
// by its host veth), DetachPod (by address only, for operators), DetachENI
// and Teardown remove pins and veni's filters, which detaches the programs.
// Writers of a pod's records serialise on the pin directory's flock.
//
// Namespaces: ifindexes given to AttachPod and AttachENI are resolved in the
// network namespace of the calling thread, so a caller that serves a
// simulated node must run them on a thread inside that node's namespace
// (netplumb.NetNS.Do). Pin directories are global to the kernel: nodes that
// share a kernel must use different ones. Do not run the caller under
// "ip netns exec": it mounts a private /sys, where /sys/fs/bpf is not the
// shared bpffs.
//
// This package must not touch routes, rules, addresses or links (netplumb
// owns them) nor the store; it only loads programs, attaches them and writes
// its own maps.
package fastpath
