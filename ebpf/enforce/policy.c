//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * veni NetworkPolicy programs, on each pod's host veth:
 *
 *   pol_from_pod  ingress of the host veth (packets leaving the pod): the
 *                 pod's egress policy. The pod cannot remove it: the hook
 *                 is in the node's namespace, not the pod's.
 *   pol_to_pod    egress of the host veth (packets the host stack delivers
 *                 to the pod): the pod's ingress policy. Packets the fast
 *                 path redirects into a pod skip this hook; fastpath.c
 *                 runs the same check (veni_policy.h) before redirecting.
 *                 First, it decides the egress pol_from_pod deferred for
 *                 a Service's traffic the host DNATed to this pod.
 *   pol_to_eni    egress of an ENI: the deferred egress of Service traffic
 *                 the host DNATed to a backend elsewhere. Packets without
 *                 the deferral mark cost one test.
 *
 * Both run before the fast path's programs on the same hooks and return
 * TCX_NEXT (TC_ACT_UNSPEC) to let them, or the host stack, carry on.
 */
#define VENI_POL_IP6 /* the IPv6 check: veni_policy6.h */
#include "veni_policy.h"
#include "veni_policy6.h"

#ifdef VENI_POL_TEST
#define VENI_POL_TEST_HOST_MARK 0x484f5354 /* "HOST" */
#endif

char __license[] SEC("license") = "Dual BSD/GPL";

/* An endpoint whose host veth carries these programs (AttachEndpoint), for
 * Endpoints and Teardown. Only Go reads and writes it. */
struct pol_hook {
	__be32 ip;               /* the pod's IPv4 address */
	__u8 mac[ETH_ALEN];      /* the host veth's: an ifindex alone may name another veth later */
	__u16 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32); /* host veth ifindex */
	__type(value, struct pol_hook);
	__uint(max_entries, VENI_POL_MAX_ENDPOINTS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} veni_pol_hooks SEC(".maps");

/* The node's last generation: each table installed takes the next one, so
 * a generation is never reused, even by an endpoint that comes back. Only
 * Go reads and writes it, under the pin directory's lock. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} veni_pol_gen SEC(".maps");

SEC("tc")
int pol_from_pod(struct __sk_buff *skb)
{
	if (pol_check_ep(skb, skb->ifindex, POL_EGRESS, 0, 1, 1) == POL_DROP)
		return TC_ACT_SHOT;
	return TCX_NEXT;
}

SEC("tc")
int pol_to_pod(struct __sk_buff *skb)
{
	/* Only packets the host itself sends carry an IP socket here (a
	 * full, request, timewait or ICMP control socket): forwarded packets
	 * never do (ip_forward and ip6_forward drop those that do). The
	 * node's own packets, kubelet probes among them, are always allowed
	 * in, over either family. bpf_prog_test_run gives its packets a
	 * socket of family AF_UNSPEC. */
	struct bpf_sock *sk = skb->sk;
	int from_host = sk && (sk->family == AF_INET || sk->family == AF_INET6);

#ifdef VENI_POL_TEST
	/* bpf_prog_test_run gives every packet a socket of the packet's
	 * family: the test build takes "from the host" from the mark. */
	from_host = skb->mark == VENI_POL_TEST_HOST_MARK;
#endif

	/* The sender's egress first, when it was deferred past DNAT. */
	if (pol_check_deferred_any(skb) == POL_DROP)
		return TC_ACT_SHOT;
	if (veni_policy_check(skb, skb->ifindex, POL_INGRESS, from_host) == POL_DROP)
		return TC_ACT_SHOT;
	return TCX_NEXT;
}

SEC("tc")
int pol_to_eni(struct __sk_buff *skb)
{
	if (!(skb->mark & VENI_MARK_SVC_DEFER))
		return TCX_NEXT;
	if (pol_check_deferred_any(skb) == POL_DROP)
		return TC_ACT_SHOT;
	return TCX_NEXT;
}
