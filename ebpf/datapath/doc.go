// Package datapath decides, for one node, whether pods get the eBPF fast
// path (package fastpath) on top of the plain datapath (package netplumb),
// and derives what the fast path needs from veni's node configuration and
// store: the node's pin directory and the destinations that must stay on
// the host stack (Service CIDRs, host_stack_cidrs, the node's own
// addresses).
//
// The CNI plugin, the daemon and "veni status" all decide through Decide,
// so the three never disagree about a node. The rule they share: eBPF that
// is missing never fails a pod; the plain datapath carries it and status
// says why.
//
// This package reads the store and never writes it; it touches no links,
// routes or rules (netplumb owns them) and loads nothing into the kernel
// itself.
package datapath
