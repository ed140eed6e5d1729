// Package daemon is veni's node daemon: it keeps the node's IP pool within
// its targets, keeps the store, the links and the cloud in agreement, and
// garbage-collects addresses whose owner is gone.
//
// The daemon is not on the CNI's path: a warm ADD works while it is
// stopped. It talks to the other roles only through the store, and wakes on
// a timer and when the store file is written (inotify), never on an RPC.
//
// On nodes that run the eBPF fast path (ebpf/datapath decides) it keeps the
// fast path in step with the store: the host-stack destinations, the ENI
// programs, and no endpoint for a pod whose allocation is gone. It stops
// without detaching live pods: their pins keep their traffic flowing.
//
// It runs the node's NetworkPolicy loop (package podpolicy) on its own
// watchers of the store and of the manifest folder: each local pod's
// compiled record in the store, changes applied to the kernel's enforcer.
//
// It must not hold the store open across a netlink or a cloud call: every
// store access is one short transaction (ipam's functions are built so).
package daemon
