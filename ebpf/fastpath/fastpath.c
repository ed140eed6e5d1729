//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * veni fast path: moves pod traffic between a pod's veth and its ENI (or
 * another local pod) without a trip through the host stack.
 *
 *   from_pod  tcx ingress of a pod's host veth (packets leaving the pod)
 *   to_pod    tcx egress of a pod's host veth (packets the host stack
 *             delivers to the pod; only observed, never changed)
 *   from_eni  tcx ingress of an ENI (packets arriving from the VPC)
 *
 * Each handles IPv4 and IPv6 alike, with a map of its own per family
 * (endpoints, host-stack destinations, flow maps, counters). Anything the
 * programs do not positively recognise returns TCX_NEXT, which hands the
 * packet to the next tcx program or, if none, to the host stack: ARP,
 * neighbour discovery, ICMP and ICMPv6 other than echo (errors such as
 * packet too big among them), IPv4 fragments and options-bearing IPv6
 * (any extension header). The host stack is always a correct answer; the
 * fast path is only a shortcut.
 */
#include "veni_uapi.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
/* NetworkPolicy: bpf_redirect_peer skips the destination's host veth egress
 * hook, where the policy programs check what the host stack delivers, so
 * the fast path checks the destination's ingress itself before it
 * redirects (veni_policy_check, both families: veni_policy6.h decides
 * IPv6; the pod's egress was checked by the policy program that ran
 * before from_pod on the same hook). */
#define VENI_POL_IP6
#include "veni_policy.h"
#include "veni_policy6.h"

char __license[] SEC("license") = "Dual BSD/GPL";

enum hook {
	HOOK_FROM_POD,
	HOOK_TO_POD,
	HOOK_FROM_ENI,
	HOOK_MAX,
};

/* Keep in step with HookCounters in counters_linux.go. */
enum counter {
	CNT_PACKETS,          /* every packet the program saw */
	CNT_REDIRECT_PEER,    /* sent straight into a local pod */
	CNT_REDIRECT_NEIGH,   /* sent straight out of the pod's ENI */
	CNT_PASS_NOT_IP,      /* ARP and anything else that is not IP */
	CNT_PASS_MALFORMED,   /* truncated or odd headers */
	CNT_PASS_FRAGMENT,    /* IP fragments: no ports to track */
	CNT_PASS_PROTO,       /* not TCP, UDP or ICMP echo (IPv6: or an extension header) */
	CNT_PASS_SPECIAL,     /* link-local, loopback, multicast, broadcast */
	CNT_PASS_SERVICE,     /* Service CIDR: kube-proxy's NAT lives in the host */
	CNT_PASS_HOST_CIDR,   /* configured host-stack CIDR */
	CNT_PASS_NODE_ADDR,   /* an address of the node itself */
	CNT_PASS_HOST_FLOW,   /* reply of a flow the host stack carried (NAT) */
	CNT_PASS_UNKNOWN_SRC, /* source is not the endpoint of this veth */
	CNT_PASS_NOT_LOCAL,   /* destination is not a pod of this node */
	CNT_PASS_TTL,         /* TTL or hop limit would expire: the host sends the ICMP */
	CNT_FIB_NOT_FWDED,    /* no route in the ENI table, or a local address */
	CNT_FIB_DROP,         /* blackhole, unreachable or prohibit route */
	CNT_FIB_FRAG_NEEDED,  /* larger than the route's MTU */
	CNT_FIB_FWD_DISABLED, /* forwarding off on the host veth */
	CNT_FIB_OTHER_DEV,    /* the ENI table routes out of another device */
	CNT_FIB_ERROR,        /* any other lookup failure */
	CNT_FLOW_TRACKED,     /* new host-stack flow remembered */
	CNT_DROP_SPOOFED,     /* source is another local pod's address: dropped */
	CNT_PASS_PLAIN_POD,   /* destination is a local pod on the plain datapath */
	CNT_FLOW_NO_MAP,      /* the endpoint has no flow map: nothing remembered */
	CNT_DROP_POLICY,      /* dropped: the destination pod's ingress policy denies it */
	CNT_MAX,
};

/* Why a destination must stay on the host stack. */
enum host_reason {
	HOST_SERVICE = 1,
	HOST_CIDR = 2,
	HOST_NODE_ADDR = 3,
	HOST_PLAIN_POD = 4, /* a pod of this node that has no endpoint */
};

/* Value of veni_hoststack. */
struct host_entry {
	__u32 reason;       /* enum host_reason */
	__u32 host_ifindex; /* HOST_PLAIN_POD: the pod's host veth; else 0 */
};

struct endpoint {
	__u32 host_ifindex; /* the pod's host-side veth */
	__u32 eni_ifindex;  /* the ENI the pod's address belongs to */
	__u32 eni_table;    /* the ENI's route table */
	__u8 host_mac[ETH_ALEN];
	__u8 pod_mac[ETH_ALEN];
};

struct lpm_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct lpm6_key {
	__u32 prefixlen;
	__u8 addr[16];
};

/* An IPv6 address as a map key. */
struct in6_key {
	__u8 addr[16];
};

/* One side of a flow the host stack carried: a pod address with the pod's
 * port (TCP/UDP) or echo id (ICMP). */
struct flow_key {
	__u8 addr[4];
	__be16 port;
	__u8 proto;
	__u8 pad;
};

/* flow_key for an IPv6 flow. */
struct flow6_key {
	__u8 addr[16];
	__be16 port;
	__u8 proto;
	__u8 pad;
};

/* Pod IPv4 address (network order) to endpoint; written by AttachPod. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __be32);
	__type(value, struct endpoint);
	__uint(max_entries, 1024);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} veni_endpoints SEC(".maps");

/* Destinations the host stack must see, with the reason as value: the
 * configured ones (SetHostStack) and the pods of this node that run on the
 * plain datapath (the endpoint map had no room for them): sent to the ENI,
 * their packets would leave the node instead of reaching them. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct lpm_key);
	__type(value, struct host_entry);
	__uint(max_entries, 2048);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} veni_hoststack SEC(".maps");

/*
 * Client ends (address, port) of flows whose packets went through the host
 * stack. Their replies must go back the same way: the host may have NATed
 * them (Service DNAT, masquerade) and only its conntrack can undo that.
 * Keying on the client end, whose port is ephemeral, makes one entry one
 * flow; a server's listening port is never recorded, so one NATed
 * connection does not send every later flow of that port through the host.
 * LRU: lookups keep live flows young.
 *
 * Each pod has its own map (veni_pod_flows, by pod address; AttachPod
 * creates it): one pod opening flow after flow only ever evicts its own
 * oldest entries, never another pod's. Every entry belongs to the local pod
 * that took part in the flow: from_pod and to_pod use the map of the pod on
 * their veth, from_eni the map of the pod a packet is for.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__type(key, __be32);
	__uint(max_entries, 1024);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct {
		__uint(type, BPF_MAP_TYPE_LRU_HASH);
		__type(key, struct flow_key);
		__type(value, __u32);
		__uint(max_entries, 4096); /* flowsPerPod in Go */
	});
} veni_pod_flows SEC(".maps");

/* Index hook * CNT_MAX + counter. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, HOOK_MAX * CNT_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} veni_counters SEC(".maps");

/* The IPv6 twins of the maps above, for a dual-stack pod's second
 * address: its endpoint (the same record as its IPv4 one), the IPv6
 * host-stack destinations (IPv6 Service CIDR, host_stack_cidrs, the
 * node's IPv6, plain pods' IPv6), its flow maps (struct flow6_key) and
 * the counters of IPv6 packets (veni_counters counts IPv4 and what is not
 * IP). Separate maps leave the IPv4 ones as they were, so pins of an
 * IPv4-only build stay compatible. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct in6_key);
	__type(value, struct endpoint);
	__uint(max_entries, 1024);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} veni_endpoints6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct lpm6_key);
	__type(value, struct host_entry);
	__uint(max_entries, 2048);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} veni_hoststack6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__type(key, struct in6_key);
	__uint(max_entries, 1024);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct {
		__uint(type, BPF_MAP_TYPE_LRU_HASH);
		__type(key, struct flow6_key);
		__type(value, __u32);
		__uint(max_entries, 4096); /* flowsPerPod in Go */
	});
} veni_pod_flows6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, HOOK_MAX * CNT_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} veni_counters6 SEC(".maps");

/* Unused globals so bpf2go can emit these types for Go. */
const enum hook *unused_hook __attribute__((unused));
const enum counter *unused_counter __attribute__((unused));
const enum host_reason *unused_host_reason __attribute__((unused));
const struct host_entry *unused_host_entry __attribute__((unused));
/* Only reached through the inner map's pointers, which clang would emit as
 * a forward declaration: keep the full type in BTF. */
const struct flow_key *unused_flow_key __attribute__((unused));
const struct flow6_key *unused_flow6_key __attribute__((unused));

/* count adds one to counter cnt of hook, in the IPv6 counters when v6. */
static __always_inline int count(int v6, enum hook hook, enum counter cnt)
{
	__u32 key = hook * CNT_MAX + cnt;
	__u64 *v = bpf_map_lookup_elem(v6 ? (void *)&veni_counters6 : (void *)&veni_counters, &key);

	if (v)
		*v += 1;
	return TCX_NEXT;
}

/* TCP flag bits, in the header's 14th byte. */
#define TCPF_SYN 0x02
#define TCPF_ACK 0x10

/*
 * The functions below serve both families: v6 is a constant at each call
 * (each program calls one copy per family, a subprogram of its own, so
 * one family's locals do not add to the other's stack), so the compiler
 * keeps only the family's code and the verifier sees fixed map pointers.
 */

/* A parsed IP packet. Pointers are only valid until the packet changes;
 * the addresses are copies (IPv4: the first 4 bytes). */
struct pkt {
	struct ethhdr *eth;
	struct iphdr *ip;        /* IPv4 */
	struct pol_ip6hdr *ip6;  /* IPv6 */
	__u8 saddr[16];
	__u8 daddr[16];
	__be16 sport; /* or echo id */
	__be16 dport; /* or echo id */
	__u8 proto;
	__u8 syn;     /* a TCP SYN without ACK: a connection's first packet */
};

/* is_ipv6 tells which family's copy of a program handles the packet:
 * anything that is not IPv6 (IPv4, ARP, a truncated frame) goes to the
 * IPv4 copy, which counts it. */
static __always_inline int is_ipv6(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;

	return (void *)(eth + 1) <= data_end && eth->h_proto == bpf_htons(ETH_P_IPV6);
}

/* parse_l4 reads the ports (or echo id) of the upper-layer header at l4. */
static __always_inline enum counter parse_l4(int v6, __u8 *l4, void *data_end, struct pkt *p)
{
	if ((void *)(l4 + 8) > data_end)
		return CNT_PASS_MALFORMED;
	p->syn = 0;
	switch (p->proto) {
	case IPPROTO_TCP:
		if ((void *)(l4 + 14) > data_end)
			return CNT_PASS_MALFORMED;
		p->syn = (l4[13] & (TCPF_SYN | TCPF_ACK)) == TCPF_SYN;
		/* fall through */
	case IPPROTO_UDP:
		p->sport = *(__be16 *)l4;
		p->dport = *(__be16 *)(l4 + 2);
		return CNT_MAX;
	case IPPROTO_ICMP:
		if (v6 || (l4[0] != ICMP_ECHO && l4[0] != ICMP_ECHOREPLY))
			return CNT_PASS_PROTO;
		break;
	case IPPROTO_ICMPV6:
		/* Neighbour discovery and errors (packet too big among them)
		 * are the host's. */
		if (!v6 || (l4[0] != ICMPV6_ECHO_REQUEST && l4[0] != ICMPV6_ECHO_REPLY))
			return CNT_PASS_PROTO;
		break;
	default:
		/* IPv6: extension headers too; the host walks them. */
		return CNT_PASS_PROTO;
	}
	p->sport = *(__be16 *)(l4 + 4);
	p->dport = p->sport;
	return CNT_MAX;
}

/* parse fills p and returns CNT_MAX when the packet is one the fast path
 * handles, or the counter saying why not. */
static __always_inline enum counter parse(struct __sk_buff *skb, int v6, struct pkt *p)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct pol_ip6hdr *ip6;
	struct iphdr *ip;
	__u32 ihl;

	if ((void *)(eth + 1) > data_end)
		return CNT_PASS_MALFORMED;
	p->eth = eth;
	if (v6) {
		/* is_ipv6 checked the ethertype. */
		ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > data_end)
			return CNT_PASS_MALFORMED;
		if ((ip6->vtc_flow & bpf_htonl(0xF0000000)) != bpf_htonl(0x60000000))
			return CNT_PASS_MALFORMED;
		if (ip6->nexthdr == IPPROTO_FRAGMENT)
			return CNT_PASS_FRAGMENT;
		p->ip6 = ip6;
		p->proto = ip6->nexthdr;
		__builtin_memcpy(p->saddr, ip6->saddr, 16);
		__builtin_memcpy(p->daddr, ip6->daddr, 16);
		return parse_l4(1, (__u8 *)(ip6 + 1), data_end, p);
	}
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return CNT_PASS_NOT_IP;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return CNT_PASS_MALFORMED;
	if ((ip->ver_ihl >> 4) != 4)
		return CNT_PASS_MALFORMED;
	ihl = (ip->ver_ihl & 0x0f) * 4;
	if (ihl < sizeof(*ip))
		return CNT_PASS_MALFORMED;
	if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return CNT_PASS_FRAGMENT;
	p->ip = ip;
	p->proto = ip->protocol;
	__builtin_memcpy(p->saddr, &ip->saddr, 4);
	__builtin_memcpy(p->daddr, &ip->daddr, 4);
	return parse_l4(0, (__u8 *)ip + ihl, data_end, p);
}

/* Addresses that are never a pod or a VPC destination. IPv4: 0/8,
 * loopback, multicast and above, link-local. IPv6: the top 64 bits zero
 * (unspecified, loopback, IPv4-mapped), link-local, multicast. */
static __always_inline int special_dst(int v6, const __u8 *d)
{
	__u64 hi;

	if (v6) {
		__builtin_memcpy(&hi, d, 8);
		return hi == 0 || d[0] == 0xff || pol_ip6_linklocal(d);
	}
	return d[0] == 0 || d[0] == 127 || d[0] >= 224 ||
	       (d[0] == 169 && d[1] == 254);
}

static __always_inline const struct endpoint *endpoint_of(int v6, const __u8 *addr)
{
	return bpf_map_lookup_elem(v6 ? (void *)&veni_endpoints6 : (void *)&veni_endpoints, addr);
}

/* The flow map of the pod with address pod, or NULL. */
static __always_inline void *pod_flows(int v6, const __u8 *pod)
{
	return bpf_map_lookup_elem(v6 ? (void *)&veni_pod_flows6 : (void *)&veni_pod_flows, pod);
}

/* The host-stack entry covering daddr, or NULL. */
static __always_inline const struct host_entry *host_entry_of(int v6, const __u8 *daddr)
{
	struct lpm6_key k = { .prefixlen = v6 ? 128 : 32 };

	/* struct lpm_key is struct lpm6_key's first 8 bytes. */
	__builtin_memcpy(k.addr, daddr, v6 ? 16 : 4);
	return bpf_map_lookup_elem(v6 ? (void *)&veni_hoststack6 : (void *)&veni_hoststack, &k);
}

union flow_any {
	struct flow_key k4;
	struct flow6_key k6;
};

static __always_inline void flow_key_of(int v6, union flow_any *k, const __u8 *addr,
					__be16 port, __u8 proto)
{
	if (v6) {
		__builtin_memcpy(k->k6.addr, addr, 16);
		k->k6.port = port;
		k->k6.proto = proto;
		k->k6.pad = 0;
		return;
	}
	__builtin_memcpy(k->k4.addr, addr, 4);
	k->k4.port = port;
	k->k4.proto = proto;
	k->k4.pad = 0;
}

static __always_inline int host_flow(int v6, void *flows, const __u8 *addr, __be16 port,
				     __u8 proto)
{
	union flow_any k;

	if (!flows)
		return 0;
	flow_key_of(v6, &k, addr, port, proto);
	return bpf_map_lookup_elem(flows, &k) != 0;
}

/* forget_flow drops what the map remembers for a client end that starts a
 * new connection: that entry belonged to an earlier flow that used the same
 * port, and keeping it would send the new flow's replies through the host,
 * whose conntrack never saw the flow's start. */
static __always_inline void forget_flow(int v6, void *flows, const __u8 *addr,
					__be16 port, __u8 proto)
{
	union flow_any k;

	if (!flows)
		return;
	flow_key_of(v6, &k, addr, port, proto);
	bpf_map_delete_elem(flows, &k);
}

static __always_inline void track_flow(int v6, enum hook hook, void *flows,
				       const __u8 *addr, __be16 port, __u8 proto)
{
	union flow_any k;
	__u32 one = 1;

	if (!flows) {
		count(v6, hook, CNT_FLOW_NO_MAP);
		return;
	}
	flow_key_of(v6, &k, addr, port, proto);
	if (bpf_map_lookup_elem(flows, &k))
		return;
	if (bpf_map_update_elem(flows, &k, &one, BPF_NOEXIST) == 0)
		count(v6, hook, CNT_FLOW_TRACKED);
}

/* dec_ttl takes one off the TTL or hop limit, as a router does, and
 * returns 0 (changing nothing) when it would expire. IPv4 as
 * ip_decrease_ttl in include/net/ip.h: TTL is the high byte of its 16-bit
 * word, so the checksum grows by 0x0100. IPv6 has no header checksum. */
static __always_inline int dec_ttl(int v6, struct pkt *p)
{
	__u32 check;

	if (v6) {
		if (p->ip6->hop_limit <= 1)
			return 0;
		p->ip6->hop_limit--;
		return 1;
	}
	if (p->ip->ttl <= 1)
		return 0;
	check = p->ip->check;
	check += bpf_htons(0x0100);
	p->ip->check = (__sum16)(check + (check >= 0xFFFF));
	p->ip->ttl--;
	return 1;
}

/* policy_denies asks the ingress policy of the pod behind host veth
 * ifindex about the packet; it only reads the packet, so the caller's
 * packet pointers stay valid. IPv4 inline, without the IPv6 check (this
 * copy never sees IPv6); IPv6 in a subprogram that goes straight to the
 * IPv6 check, whose frames would not fit beside the IPv4 check's locals
 * in the 512 bytes of stack a program's calls share. */
static __attribute__((noinline)) int policy_denies6(struct __sk_buff *skb, __u32 ifindex)
{
	return veni_policy_check6(skb, ifindex, POL_INGRESS, 0) == POL_DROP;
}

static __always_inline int policy_denies(struct __sk_buff *skb, int v6, __u32 ifindex)
{
	if (v6)
		return policy_denies6(skb, ifindex);
	return pol_check_ep(skb, ifindex, POL_INGRESS, 0, 0, 0) == POL_DROP;
}

/* Deliver into the pod behind ep, as its gateway would, if its ingress
 * policy allows the packet. */
static __always_inline int to_peer(struct __sk_buff *skb, int v6, enum hook hook,
				   struct pkt *p, const struct endpoint *ep)
{
	if (policy_denies(skb, v6, ep->host_ifindex)) {
		count(v6, hook, CNT_DROP_POLICY);
		return TC_ACT_SHOT;
	}
	if (!dec_ttl(v6, p))
		return count(v6, hook, CNT_PASS_TTL);
	__builtin_memcpy(p->eth->h_dest, ep->pod_mac, ETH_ALEN);
	__builtin_memcpy(p->eth->h_source, ep->host_mac, ETH_ALEN);
	count(v6, hook, CNT_REDIRECT_PEER);
	return bpf_redirect_peer(ep->host_ifindex, 0);
}

static __always_inline enum counter fib_counter(long ret)
{
	switch (ret) {
	case BPF_FIB_LKUP_RET_NOT_FWDED:
		return CNT_FIB_NOT_FWDED;
	case BPF_FIB_LKUP_RET_BLACKHOLE:
	case BPF_FIB_LKUP_RET_UNREACHABLE:
	case BPF_FIB_LKUP_RET_PROHIBIT:
		return CNT_FIB_DROP;
	case BPF_FIB_LKUP_RET_FRAG_NEEDED:
		return CNT_FIB_FRAG_NEEDED;
	case BPF_FIB_LKUP_RET_FWD_DISABLED:
		return CNT_FIB_FWD_DISABLED;
	default:
		return CNT_FIB_ERROR;
	}
}

static __always_inline int from_pod_af(struct __sk_buff *skb, int v6)
{
	const enum hook hook = HOOK_FROM_POD;
	const struct endpoint *src, *dst;
	struct bpf_fib_lookup fib = {};
	struct bpf_redir_neigh nh = {};
	const struct host_entry *he;
	enum counter why;
	struct pkt p = {};
	void *flows;
	long ret;

	count(v6, hook, CNT_PACKETS);
	why = parse(skb, v6, &p);
	if (why != CNT_MAX)
		return count(v6, hook, why);

	/* A pod sending with another local pod's address is spoofing: drop
	 * it here, whatever the host's rp_filter says (conf/all=2 would make
	 * the veth's strict setting loose). Other foreign sources go to the
	 * host, whose strict rp_filter on the veth drops IPv4 ones (IPv6 has
	 * no rp_filter: the VPC drops what the ENI does not hold). */
	src = endpoint_of(v6, p.saddr);
	if (!src)
		return count(v6, hook, CNT_PASS_UNKNOWN_SRC);
	if (src->host_ifindex != skb->ifindex) {
		count(v6, hook, CNT_DROP_SPOOFED);
		return TC_ACT_SHOT;
	}
	flows = pod_flows(v6, p.saddr);
	if (p.syn)
		forget_flow(v6, flows, p.saddr, p.sport, p.proto);

	if (special_dst(v6, p.daddr)) {
		why = CNT_PASS_SPECIAL;
		goto host;
	}
	he = host_entry_of(v6, p.daddr);
	if (he) {
		switch (he->reason) {
		case HOST_SERVICE:
			why = CNT_PASS_SERVICE;
			break;
		case HOST_NODE_ADDR:
			why = CNT_PASS_NODE_ADDR;
			break;
		case HOST_PLAIN_POD:
			why = CNT_PASS_PLAIN_POD;
			break;
		default:
			why = CNT_PASS_HOST_CIDR;
		}
		goto host;
	}
	/* A packet to the client end of a flow the host stack carried (a
	 * backend answering a client the host NATed to it, or a pod of this
	 * node answering a local client that went through the host) goes back
	 * through the host, whose conntrack undoes the NAT. */
	if (host_flow(v6, flows, p.daddr, p.dport, p.proto))
		return count(v6, hook, CNT_PASS_HOST_FLOW);

	dst = endpoint_of(v6, p.daddr);
	if (dst)
		return to_peer(skb, v6, hook, &p, dst);

	fib.l4_protocol = p.proto;
	fib.sport = p.sport;
	fib.dport = p.dport;
	/* tot_len stays 0: the kernel then checks the skb against the MTU
	 * itself, GSO-aware. The IP header's length of a GSO packet is far
	 * above the MTU and would fail the lookup with FRAG_NEEDED. */
	fib.ifindex = skb->ifindex;
	if (v6) {
		fib.family = AF_INET6;
		fib.flowinfo = p.ip6->vtc_flow & bpf_htonl(0x0FFFFFFF);
		__builtin_memcpy(fib.ipv6_src, p.saddr, 16);
		__builtin_memcpy(fib.ipv6_dst, p.daddr, 16);
	} else {
		fib.family = AF_INET;
		fib.tos = p.ip->tos;
		__builtin_memcpy(&fib.ipv4_src, p.saddr, 4);
		__builtin_memcpy(&fib.ipv4_dst, p.daddr, 4);
	}
	fib.tbid = src->eni_table;
	ret = bpf_fib_lookup(skb, &fib, sizeof(fib),
			     BPF_FIB_LOOKUP_DIRECT | BPF_FIB_LOOKUP_TBID |
				     BPF_FIB_LOOKUP_SKIP_NEIGH);
	if (ret != BPF_FIB_LKUP_RET_SUCCESS && ret != BPF_FIB_LKUP_RET_NO_NEIGH) {
		why = fib_counter(ret);
		goto host;
	}
	if (fib.ifindex != src->eni_ifindex) {
		why = CNT_FIB_OTHER_DEV;
		goto host;
	}

	/* bpf_fib_lookup does not change the packet: p stays valid. */
	if (!dec_ttl(v6, &p))
		return count(v6, hook, CNT_PASS_TTL);
	/* The gateway, or the destination when it is on-link. */
	if (v6) {
		nh.nh_family = AF_INET6;
		__builtin_memcpy(nh.ipv6_nh, fib.ipv6_dst, 16);
	} else {
		nh.nh_family = AF_INET;
		nh.ipv4_nh = fib.ipv4_dst;
	}
	count(v6, hook, CNT_REDIRECT_NEIGH);
	return bpf_redirect_neigh(fib.ifindex, &nh, sizeof(nh), 0);

host:
	/* Whatever the host does to this flow, its replies must come back
	 * through the host too. */
	track_flow(v6, hook, flows, p.saddr, p.sport, p.proto);
	return count(v6, hook, why);
}

static __attribute__((noinline)) int from_pod4(struct __sk_buff *skb)
{
	return from_pod_af(skb, 0);
}

static __attribute__((noinline)) int from_pod6(struct __sk_buff *skb)
{
	return from_pod_af(skb, 1);
}

SEC("tc")
int from_pod(struct __sk_buff *skb)
{
	if (is_ipv6(skb))
		return from_pod6(skb);
	return from_pod4(skb);
}

static __always_inline int to_pod_af(struct __sk_buff *skb, int v6)
{
	const enum hook hook = HOOK_TO_POD;
	const struct endpoint *ep;
	struct pkt p = {};
	void *flows;

	count(v6, hook, CNT_PACKETS);
	if (parse(skb, v6, &p) != CNT_MAX)
		return TCX_NEXT;
	/* The flows belong to the pod on this veth. */
	ep = endpoint_of(v6, p.daddr);
	if (!ep || ep->host_ifindex != skb->ifindex)
		return TCX_NEXT;
	flows = pod_flows(v6, p.daddr);
	/* A reply to a flow this pod opened through the host: its client end
	 * (the pod's own) is recorded already. */
	if (host_flow(v6, flows, p.daddr, p.dport, p.proto))
		return TCX_NEXT;
	/* The host stack carried a client's packet to the pod, so it may be
	 * NATed: the pod's answers to that client end must return the same
	 * way. */
	track_flow(v6, hook, flows, p.saddr, p.sport, p.proto);
	return TCX_NEXT;
}

static __attribute__((noinline)) int to_pod4(struct __sk_buff *skb)
{
	return to_pod_af(skb, 0);
}

static __attribute__((noinline)) int to_pod6(struct __sk_buff *skb)
{
	return to_pod_af(skb, 1);
}

SEC("tc")
int to_pod(struct __sk_buff *skb)
{
	if (is_ipv6(skb))
		return to_pod6(skb);
	return to_pod4(skb);
}

static __always_inline int from_eni_af(struct __sk_buff *skb, int v6)
{
	const enum hook hook = HOOK_FROM_ENI;
	const struct endpoint *dst;
	enum counter why;
	struct pkt p = {};
	void *flows;

	count(v6, hook, CNT_PACKETS);
	why = parse(skb, v6, &p);
	if (why != CNT_MAX)
		return count(v6, hook, why);
	dst = endpoint_of(v6, p.daddr);
	if (!dst)
		return count(v6, hook, CNT_PASS_NOT_LOCAL);
	flows = pod_flows(v6, p.daddr);
	if (p.syn)
		forget_flow(v6, flows, p.saddr, p.sport, p.proto);
	if (host_flow(v6, flows, p.daddr, p.dport, p.proto))
		return count(v6, hook, CNT_PASS_HOST_FLOW);
	return to_peer(skb, v6, hook, &p, dst);
}

static __attribute__((noinline)) int from_eni4(struct __sk_buff *skb)
{
	return from_eni_af(skb, 0);
}

static __attribute__((noinline)) int from_eni6(struct __sk_buff *skb)
{
	return from_eni_af(skb, 1);
}

SEC("tc")
int from_eni(struct __sk_buff *skb)
{
	if (is_ipv6(skb))
		return from_eni6(skb);
	return from_eni4(skb);
}
