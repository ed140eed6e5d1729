// Package tc hooks veni's eBPF programs to a link's clsact qdisc as
// cls_bpf direct-action filters and takes them off again by name: the one
// copy of that mechanism for the fast path (ebpf/fastpath, priority 2)
// and the NetworkPolicy programs (ebpf/enforce, priority 1, run first).
// It owns no program and no map, and never touches a filter whose name
// lacks the caller's prefix. Links are resolved in the calling thread's
// network namespace.
package tc
