// Package enforce is the kernel side of veni's NetworkPolicy (DESIGN.md
// section 7, issue 8 point 2): it loads the policy programs (policy.c),
// installs each endpoint's compiled ruleset (policy.Ruleset) as an LPM
// table in the node's maps, attaches the programs to pods' host veths, and
// reads back what they did (drop events, per-endpoint stats, counters).
//
// It owns:
//   - the programs pol_from_pod (ingress of a pod's host veth: the pod's
//     egress policy) and pol_to_pod (egress of the host veth: the pod's
//     ingress policy), attached ahead of the fast path's programs (tc
//     priority 1, or TCX at the head; the fast path is at priority 2 or the
//     TCX tail);
//   - the maps declared in ebpf/headers/veni_policy.h (veni_pol_*), pinned
//     by name in the node's pin directory, which the fast path's object
//     declares too: fastpath.c calls the same check before bpf_redirect_peer,
//     which skips pol_to_pod;
//   - translating a policy.Ruleset into table entries (table.go).
//
// How a packet is decided: an endpoint no policy selects has no table and
// costs one hash lookup. An endpoint with a table (swapped in whole, one
// update of a HASH_OF_MAPS, so a packet never sees half a policy) decides a
// new flow with two LPM lookups (peer prefix to port set, port set to
// protocol and port) and records it in the node's connection LRU, so that
// replies and later packets pass. Every table carries a node-wide
// generation: a flow allowed under an older generation is decided again, as
// its opener, on its next packet, and dropped if the new policy no longer
// allows it. ICMP errors are decided as the flow they quote. Packets the
// node itself sends into a pod (kubelet probes) are always allowed.
//
// It must not touch what other packages own: the fast path's programs,
// maps and filters (ebpf/fastpath; it only uses its pin directory, lock
// and PodHook setting), the compilation of policies (package policy), and
// the daemon, store, CNI plugin and commands that call it. Nothing here
// runs at package init: the package is linked into the CNI plugin, whose
// start is measured.
package enforce
