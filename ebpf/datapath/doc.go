// Package datapath is the one copy of veni's eBPF fast-path glue that the
// CNI plugin, the daemon and the CLI share. It decides, for one node,
// whether pods get the fast path (package fastpath) on top of the plain
// datapath (package netplumb); derives what the fast path needs from
// veni's node configuration and store (the node's pin directory, the
// destinations that must stay on the host stack: Service CIDRs,
// host_stack_cidrs, the node's own addresses); and attaches, detaches and
// checks one pod:
//
//	ADD:     netplumb.SetupPod → AttachPod
//	release: netplumb.TeardownPod → DetachPod (matched by the host veth)
//	CHECK:   netplumb.CheckPod → CheckPod
//
// A trunk member pod's VLAN tag (trunk.go, package ebpf/vlan) is no
// shortcut but what its traffic needs: TagMember fails a member's ADD
// when eBPF is missing, on any datapath setting.
//
// All of them decide through Decide, so they never disagree about a node.
// The rule they share: eBPF that is missing never fails a pod; the plain
// datapath carries it, and status or the plugin's stderr says why.
//
// A pod's records are matched by its address and its host veth, never by
// the address alone: by the time an old pod is released, its address may
// belong to a new pod, whose records must stay.
//
// A dual-stack pod's IPv6 takes the fast path beside its IPv4: one
// endpoint per address, one hook on the veth; the node's own IPv6
// addresses, which the store does not hold, are read from the node's links
// for the host-stack destinations.
//
// This package reads the store and never writes it; it reads the node's
// IPv6 addresses and touches no links, routes or rules (netplumb owns
// them). Its pod functions load and attach
// programs through fastpath and resolve ifindexes in the calling thread's
// network namespace: call them in the node's.
package datapath
