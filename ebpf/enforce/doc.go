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
//     TCX tail), and pol_to_eni (tc egress of each ENI, priority 1; the
//     fast path hooks only the ENI's ingress);
//   - the maps declared in ebpf/headers/veni_policy.h (veni_pol_*), pinned
//     by name in the node's pin directory, which the fast path's object
//     declares too: fastpath.c calls the same check before bpf_redirect_peer,
//     which skips pol_to_pod, for both families; veni_pol_ct6, the IPv6
//     connection table, is declared in ebpf/headers/veni_policy6.h, which
//     both objects include;
//   - translating a policy.Ruleset into table entries (table.go).
//
// How a packet is decided: an endpoint no policy selects has no entry in
// veni_pol_eps and costs one hash lookup. A selected endpoint's entry
// names its table's generation; every table lives in the node's one LPM
// trie (veni_pol_rules) under its generation. A changed policy is written
// whole under a new generation and the endpoint switched to it with one
// update, so a packet never sees half a policy; the old generation is
// deleted after an RCU grace period. Installing a new endpoint's table
// creates no map and writes no map of maps, so a CNI ADD never waits for
// a grace period. A new flow is decided with two LPM lookups (peer prefix
// to port set, port set to protocol and port) and recorded in the node's
// connection LRU, so that replies and later packets pass. Every table
// carries a node-wide generation: a flow allowed under an older
// generation is decided again, as its opener, on its next packet, and
// dropped if the new policy no longer allows it. ICMP errors are decided
// as the flow they quote. Packets the node itself sends into a pod
// (kubelet probes) are always allowed.
//
// Service traffic is checked after the Service translation (DESIGN.md
// section 7, reference/policy.md H3/H4): a podSelector rule for the DNS
// pods allows a dial to the DNS ClusterIP. pol_from_pod does not decide an
// egress-isolated endpoint's new flow to a Service CIDR (veni_pol_svc,
// written from service_cidr by SetServiceCIDRs): the host stack has not
// DNATed it yet. It records the flow keyed by the ClusterIP and flagged
// deferred (so the replies the host un-NATs pass the endpoint's ingress),
// and marks each of the opener's packets with a bit of skb->mark
// (VENI_MARK_SVC_DEFER), which survives the host's forwarding. After DNAT,
// pol_to_pod (backend on this node, on its host veth) or pol_to_eni
// (backend elsewhere, on the ENI the pod's traffic leaves by) clears the
// bit, finds the source endpoint by address (veni_pol_ips, kept with the
// tables) and runs the one check, pol_check_table, against the backend,
// recording the verdict under the backend's address: later packets of the
// flow cost one connection lookup there. Costs: an unselected endpoint
// pays its one lookup as before; pol_to_eni tests one mark bit on
// unmarked packets; only a selected endpoint's new flows look up
// veni_pol_svc. The CNI ADD hooks the pod's ENI, the daemon every ENI of
// the store once the enforcer is open (the filter goes with the link).
// Not covered, and so allowed as before the check existed: a backend the
// host itself serves (hostNetwork: no hook sees the packet), a Service the
// host also SNATs (masquerade: the source is no longer the pod's, so no
// endpoint is found), later IP fragments of a deferred datagram, and
// host_stack_cidrs (served by the host, not DNATed to a pod).
//
// IPv6 (a dual-stack pod's second address, which the fast path redirects
// like its IPv4 after the same ingress check) is decided the same way from the same
// tables (IN6/OUT6 prefixes), by veni_policy6.h, which only the policy
// programs compile in: extension headers are skipped (up to six; a longer
// or truncated chain is malformed, dropped where isolated), fragments
// follow their first as for IPv4, ICMPv6 errors (packet too big among
// them) are decided as the flow they quote, and neighbour discovery that
// cannot leave the link (hop limit 255, a link-local address or link-scope
// multicast) always passes. IPv6 flows have their own connection LRU
// (veni_pol_ct6, Options.Flows6) and drop events their own size. Service
// traffic over IPv6 (a dual-stack cluster's IPv6 ClusterIPs) is deferred
// past DNAT as for IPv4, with the policy programs' own maps: the IPv6
// Service CIDRs (veni_pol_svc6, from SetServiceCIDRs), the endpoints'
// IPv6 addresses (veni_pol_ips6, from EndpointKey.IP6) and their reverse
// (veni_pol_ep_ip6, ifindex to address, which only Go reads to forget an
// address: struct pol_ep, shared with the fast path, holds the IPv4).
// The IPv6 check's calls nest to the verifier's 512-byte stack limit
// exactly (pol_to_pod, pol_check6, pol_parse6, the extension walk): a new
// local in pol_check6 must take the place of another.
//
// It must not touch what other packages own: the fast path's programs,
// maps and filters (ebpf/fastpath; it only uses its pin directory, lock
// and PodHook setting), the compilation of policies (package policy), and
// the daemon, store, CNI plugin and commands that call it. Nothing here
// runs at package init: the package is linked into the CNI plugin, whose
// start is measured.
package enforce
