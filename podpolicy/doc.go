// Package podpolicy wires NetworkPolicy into a node: it turns what the
// store holds (the Kubernetes mirror, the objects of a manifest folder)
// into a policy.Snapshot, keeps every local pod's compiled ruleset in the
// store (the daemon's Syncer), installs a new pod's policy during its CNI
// ADD before its link comes up (Plan), removes it on release, and answers
// "veni policy show" and "veni policy trace" from the same stored state.
//
// # Who writes what
//
// Only the daemon's Syncer writes policy records and sources; an ADD reads
// them in the read transaction it takes anyway and writes nothing. The
// kernel is reached only through the Kernel interface (the eBPF enforcer
// in production), keyed by the pod's host veth and address.
//
// # Records
//
// A record holds the pod's own part (name, addresses, node) and the
// digests of its ingress and egress; the directions are store parts,
// stored once for every pod that has them (pods selected alike), beside
// one kernel table per record that isolates. A pass compiles every local
// pod only when something a direction may depend on changed: when the
// only change is the address of pods no compiled rule holds
// (policy.Snapshot.CompileAllDeps), their own records take the new
// address and nothing else is compiled or written. The Syncer keeps what
// its passes read between them: a record is decoded again only when its
// stored bytes changed, and the merged snapshot inputs are reused while
// only allocations changed (an ADD's writes), so a pass after an ADD
// costs about what the pod's own record costs. Every Resync drops these
// caches and reads the whole store again.
//
// # A new pod
//
// An ADD installs the pod's stored record when there is one; without one
// it compiles the pod from the stored snapshot; when it cannot know which
// policies select the pod (its labels are not stored yet and a policy of
// its namespace exists, or the policy sources have not been read through
// yet) it installs policy.FailClosed. The Syncer applies to the kernel
// only endpoints whose allocation is bound, that is after their ADD is
// done with the kernel, and applies every endpoint it has not applied
// itself at least once: whatever the ADD installed, stale or closed, the
// daemon's next pass replaces it with the current record. A bound pod the
// sources do not know (no record) gets what an ADD would decide now: open
// once the sources are read through and no policy of its namespace
// exists, closed while one does.
//
// # The kernel
//
// The eBPF enforcer (ebpf/enforce) behind the Kernel interface
// (OpenNodeKernel). An ADD opens it only for a pod some policy isolates;
// the daemon opens it on first need, so a node without policies never
// loads the policy programs. Release (package podnet) removes a pod's
// endpoint, opening the enforcer only if the node ever had one.
//
// This package must not touch netlink or links, reach eBPF other than
// through ebpf/enforce, call the cloud or the API server, or hold a store
// transaction across a kernel call.
package podpolicy
