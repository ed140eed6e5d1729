// Package policy compiles Kubernetes NetworkPolicy (networking.k8s.io/v1)
// into per-endpoint rulesets the kernel side loads, and answers "is this
// flow allowed, and why" from the same compiled tables.
//
// It is pure computation: a Snapshot (policies, namespaces, pods, nodes)
// in, a Ruleset per local pod out, deterministic and sorted. It owns no
// state beyond the snapshot and must not touch netlink, eBPF, the store
// (it reads the store's mirror records the caller hands it, never a
// transaction) or the API server.
//
// # Semantics
//
// Exactly those of networking.k8s.io/v1, checked against cyclonus's
// policy engine in this package's tests:
//   - A policy selects pods of its own namespace by podSelector (empty:
//     all) for the directions in policyTypes. Without policyTypes it is
//     Ingress, plus Egress when it has egress rules (an empty list is
//     none), as the API server defaults it.
//   - A pod selected by any policy for a direction is isolated in it and
//     allowed what the union of those policies' rules allows; a pod no
//     policy selects allows everything in that direction.
//   - A rule allows a peer if its ports match (none listed: every
//     protocol and port) and any of its peers match (none listed: every
//     peer). A peer is an ipBlock (a CIDR minus excepts, matching any
//     address, pods' included) or selectors: podSelector alone means
//     pods of the policy's namespace, namespaceSelector alone all pods of
//     matching namespaces, both together pods matching both.
//   - Ports are a protocol (TCP when omitted, UDP, SCTP) with a number, a
//     range (endPort) or a name. A name resolves on the destination pod:
//     the endpoint itself for ingress, each destination pod for egress,
//     to its container port of that name and of the rule's protocol. A
//     name never matches an address that is no pod.
//   - A connection is allowed only when the client's egress and the
//     server's ingress both allow it (Snapshot.Verdict, Tracer.Trace).
//
// # Choices where Kubernetes leaves room
//
//   - Host-network pods are their node. veni cannot tell their packets
//     from the node's, so, as the NetworkPolicy documentation allows,
//     they are never selected by a policy and never matched by a
//     podSelector or namespaceSelector peer; an ipBlock over node
//     addresses matches them.
//   - Traffic from a pod's own node into the pod is always allowed
//     (Kubernetes: a pod cannot block its node; kubelet probes). In a
//     compiled ingress direction this is an entry per node address with
//     every protocol allowed by RuleRef{Host: true}, and HostIdentity in
//     Identities; the datapath may instead recognise packets the host
//     itself sends by the hook they arrive on. Egress to the node is not
//     exempt.
//   - Pods that finished (Succeeded, Failed) hold no address: their IPs
//     may already be someone else's.
//   - Namespaces carry kubernetes.io/metadata.name, as the API server
//     guarantees, even when the snapshot only knows them by name.
//   - Replies of an allowed connection are the datapath's concern (its
//     connection tracking), as are Service translations: the compiled
//     tables are about pod and node addresses after DNAT.
//
// # Compiled form
//
// Per endpoint and direction: Isolated, the selecting policies, and the
// allow-set three ways. CIDRs is one longest-prefix-match table that
// decides alone: ipBlocks flattened so every prefix carries the union of
// the rules covering it (an except is an entry that still carries every
// other rule, the AWS agent's #326 avoided) and every selected pod as a
// /32 or /128. Blocks and Identities split the same set for a datapath
// keyed by identity: Identities holds selector peers by pod identity
// (IdentityOf: namespace, labels, named ports), Blocks the rest. Every
// port rule lists the policy, rule and peer that allow it, for traces.
//
// # Rules
//
//   - A Snapshot is immutable and safe for concurrent use; the indexes it
//     builds lazily are guarded. Rulesets are read-only: entries with
//     equal port sets share one slice, and CompileAll shares a whole
//     direction between pods selected alike (replicas).
//   - Nothing here runs at package init (the package is linked into the
//     CNI plugin): no package-level maps or regexps.
package policy
