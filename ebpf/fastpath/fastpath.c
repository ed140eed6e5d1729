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
 * Anything the programs do not positively recognise returns TCX_NEXT, which
 * hands the packet to the next tcx program or, if none, to the host stack.
 * The host stack is always a correct answer; the fast path is only a shortcut.
 */
#include "veni_uapi.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
/* NetworkPolicy: bpf_redirect_peer skips the destination's host veth egress
 * hook, where the policy programs check what the host stack delivers, so
 * the fast path checks the destination's ingress itself before it
 * redirects (veni_policy_check; the pod's egress was checked by the policy
 * program that ran before from_pod on the same hook). */
#include "veni_policy.h"

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
	CNT_PASS_NOT_IPV4,    /* ARP, IPv6, ... */
	CNT_PASS_MALFORMED,   /* truncated or odd headers */
	CNT_PASS_FRAGMENT,    /* IP fragments: no ports to track */
	CNT_PASS_PROTO,       /* not TCP, UDP or ICMP echo */
	CNT_PASS_SPECIAL,     /* link-local, loopback, multicast, broadcast */
	CNT_PASS_SERVICE,     /* Service CIDR: kube-proxy's NAT lives in the host */
	CNT_PASS_HOST_CIDR,   /* configured host-stack CIDR */
	CNT_PASS_NODE_ADDR,   /* an address of the node itself */
	CNT_PASS_HOST_FLOW,   /* reply of a flow the host stack carried (NAT) */
	CNT_PASS_UNKNOWN_SRC, /* source is not the endpoint of this veth */
	CNT_PASS_NOT_LOCAL,   /* destination is not a pod of this node */
	CNT_PASS_TTL,         /* TTL would expire: the host sends the ICMP */
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

/* One side of a flow the host stack carried: a pod address with the pod's
 * port (TCP/UDP) or echo id (ICMP). */
struct flow_key {
	__u8 addr[4];
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

/* Unused globals so bpf2go can emit these types for Go. */
const enum hook *unused_hook __attribute__((unused));
const enum counter *unused_counter __attribute__((unused));
const enum host_reason *unused_host_reason __attribute__((unused));
const struct host_entry *unused_host_entry __attribute__((unused));
/* Only reached through the inner map's pointers, which clang would emit as
 * a forward declaration: keep the full type in BTF. */
const struct flow_key *unused_flow_key __attribute__((unused));

static __always_inline int count(enum hook hook, enum counter cnt)
{
	__u32 key = hook * CNT_MAX + cnt;
	__u64 *v = bpf_map_lookup_elem(&veni_counters, &key);

	if (v)
		*v += 1;
	return TCX_NEXT;
}

/* A parsed IPv4 packet. Pointers are only valid until the packet changes. */
/* TCP flag bits, in the header's 14th byte. */
#define TCPF_SYN 0x02
#define TCPF_ACK 0x10

struct pkt {
	struct ethhdr *eth;
	struct iphdr *ip;
	__be16 sport; /* or echo id */
	__be16 dport; /* or echo id */
	__u8 syn;     /* a TCP SYN without ACK: a connection's first packet */
};

/* parse fills p and returns CNT_MAX when the packet is one the fast path
 * handles, or the counter saying why not. */
static __always_inline enum counter parse(struct __sk_buff *skb, struct pkt *p)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	__u8 *l4;
	__u32 ihl;

	if ((void *)(eth + 1) > data_end)
		return CNT_PASS_MALFORMED;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return CNT_PASS_NOT_IPV4;
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

	l4 = (__u8 *)ip + ihl;
	if ((void *)(l4 + 8) > data_end)
		return CNT_PASS_MALFORMED;
	p->syn = 0;
	switch (ip->protocol) {
	case IPPROTO_TCP:
		if ((void *)(l4 + 14) > data_end)
			return CNT_PASS_MALFORMED;
		p->syn = (l4[13] & (TCPF_SYN | TCPF_ACK)) == TCPF_SYN;
		/* fall through */
	case IPPROTO_UDP:
		p->sport = *(__be16 *)l4;
		p->dport = *(__be16 *)(l4 + 2);
		break;
	case IPPROTO_ICMP:
		if (l4[0] != ICMP_ECHO && l4[0] != ICMP_ECHOREPLY)
			return CNT_PASS_PROTO;
		p->sport = *(__be16 *)(l4 + 4);
		p->dport = p->sport;
		break;
	default:
		return CNT_PASS_PROTO;
	}
	p->eth = eth;
	p->ip = ip;
	return CNT_MAX;
}

/* Addresses that are never a pod or a VPC destination. */
static __always_inline int special_dst(__be32 daddr)
{
	__u8 *d = (__u8 *)&daddr;

	return d[0] == 0 || d[0] == 127 || d[0] >= 224 ||
	       (d[0] == 169 && d[1] == 254);
}

static __always_inline void flow_key_of(struct flow_key *k, __be32 addr,
					__be16 port, __u8 proto)
{
	__builtin_memcpy(k->addr, &addr, 4);
	k->port = port;
	k->proto = proto;
	k->pad = 0;
}

/* The flow map of the pod with address pod, or NULL. */
static __always_inline void *pod_flows(__be32 pod)
{
	return bpf_map_lookup_elem(&veni_pod_flows, &pod);
}

static __always_inline int host_flow(void *flows, __be32 addr, __be16 port,
				     __u8 proto)
{
	struct flow_key k;

	if (!flows)
		return 0;
	flow_key_of(&k, addr, port, proto);
	return bpf_map_lookup_elem(flows, &k) != 0;
}

/* forget_flow drops what the map remembers for a client end that starts a
 * new connection: that entry belonged to an earlier flow that used the same
 * port, and keeping it would send the new flow's replies through the host,
 * whose conntrack never saw the flow's start. */
static __always_inline void forget_flow(void *flows, __be32 addr,
					__be16 port, __u8 proto)
{
	struct flow_key k;

	if (!flows)
		return;
	flow_key_of(&k, addr, port, proto);
	bpf_map_delete_elem(flows, &k);
}

static __always_inline void track_flow(enum hook hook, void *flows,
				       __be32 addr, __be16 port, __u8 proto)
{
	struct flow_key k;
	__u32 one = 1;

	if (!flows) {
		count(hook, CNT_FLOW_NO_MAP);
		return;
	}
	flow_key_of(&k, addr, port, proto);
	if (bpf_map_lookup_elem(flows, &k))
		return;
	if (bpf_map_update_elem(flows, &k, &one, BPF_NOEXIST) == 0)
		count(hook, CNT_FLOW_TRACKED);
}

/* ip_decrease_ttl from include/net/ip.h: TTL is the high byte of its
 * 16-bit word, so the checksum grows by 0x0100. */
static __always_inline void dec_ttl(struct iphdr *ip)
{
	__u32 check = ip->check;

	check += bpf_htons(0x0100);
	ip->check = (__sum16)(check + (check >= 0xFFFF));
	ip->ttl--;
}

/* Deliver into the pod behind ep, as its gateway would, if its ingress
 * policy allows the packet. */
static __always_inline int to_peer(struct __sk_buff *skb, enum hook hook,
				   struct pkt *p, const struct endpoint *ep)
{
	if (veni_policy_check(skb, ep->host_ifindex, POL_INGRESS, 0) == POL_DROP) {
		count(hook, CNT_DROP_POLICY);
		return TC_ACT_SHOT;
	}
	if (p->ip->ttl <= 1)
		return count(hook, CNT_PASS_TTL);
	dec_ttl(p->ip);
	__builtin_memcpy(p->eth->h_dest, ep->pod_mac, ETH_ALEN);
	__builtin_memcpy(p->eth->h_source, ep->host_mac, ETH_ALEN);
	count(hook, CNT_REDIRECT_PEER);
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

SEC("tc")
int from_pod(struct __sk_buff *skb)
{
	const enum hook hook = HOOK_FROM_POD;
	const struct endpoint *src, *dst;
	struct bpf_fib_lookup fib = {};
	struct bpf_redir_neigh nh = {};
	struct lpm_key lk = { .prefixlen = 32 };
	const struct host_entry *he;
	enum counter why;
	struct pkt p;
	void *flows;
	__be32 saddr, daddr;
	long ret;

	count(hook, CNT_PACKETS);
	why = parse(skb, &p);
	if (why != CNT_MAX)
		return count(hook, why);
	saddr = p.ip->saddr;
	daddr = p.ip->daddr;

	/* A pod sending with another local pod's address is spoofing: drop
	 * it here, whatever the host's rp_filter says (conf/all=2 would make
	 * the veth's strict setting loose). Other foreign sources go to the
	 * host, whose strict rp_filter on the veth drops them. */
	src = bpf_map_lookup_elem(&veni_endpoints, &saddr);
	if (!src)
		return count(hook, CNT_PASS_UNKNOWN_SRC);
	if (src->host_ifindex != skb->ifindex) {
		count(hook, CNT_DROP_SPOOFED);
		return TC_ACT_SHOT;
	}
	flows = pod_flows(saddr);
	if (p.syn)
		forget_flow(flows, saddr, p.sport, p.ip->protocol);

	if (special_dst(daddr)) {
		why = CNT_PASS_SPECIAL;
		goto host;
	}
	__builtin_memcpy(lk.addr, &daddr, 4);
	he = bpf_map_lookup_elem(&veni_hoststack, &lk);
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
	if (host_flow(flows, daddr, p.dport, p.ip->protocol))
		return count(hook, CNT_PASS_HOST_FLOW);

	dst = bpf_map_lookup_elem(&veni_endpoints, &daddr);
	if (dst)
		return to_peer(skb, hook, &p, dst);

	fib.family = AF_INET;
	fib.l4_protocol = p.ip->protocol;
	fib.sport = p.sport;
	fib.dport = p.dport;
	/* tot_len stays 0: the kernel then checks the skb against the MTU
	 * itself, GSO-aware. The IP header's length of a GSO packet is far
	 * above the MTU and would fail the lookup with FRAG_NEEDED. */
	fib.ifindex = skb->ifindex;
	fib.tos = p.ip->tos;
	fib.ipv4_src = saddr;
	fib.ipv4_dst = daddr;
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
	if (p.ip->ttl <= 1)
		return count(hook, CNT_PASS_TTL);
	dec_ttl(p.ip);
	nh.nh_family = AF_INET;
	nh.ipv4_nh = fib.ipv4_dst; /* the gateway, or daddr when on-link */
	count(hook, CNT_REDIRECT_NEIGH);
	return bpf_redirect_neigh(fib.ifindex, &nh, sizeof(nh), 0);

host:
	/* Whatever the host does to this flow, its replies must come back
	 * through the host too. */
	track_flow(hook, flows, saddr, p.sport, p.ip->protocol);
	return count(hook, why);
}

SEC("tc")
int to_pod(struct __sk_buff *skb)
{
	const enum hook hook = HOOK_TO_POD;
	const struct endpoint *ep;
	struct pkt p;
	__be32 daddr;
	void *flows;

	count(hook, CNT_PACKETS);
	if (parse(skb, &p) != CNT_MAX)
		return TCX_NEXT;
	/* The flows belong to the pod on this veth. */
	daddr = p.ip->daddr;
	ep = bpf_map_lookup_elem(&veni_endpoints, &daddr);
	if (!ep || ep->host_ifindex != skb->ifindex)
		return TCX_NEXT;
	flows = pod_flows(daddr);
	/* A reply to a flow this pod opened through the host: its client end
	 * (the pod's own) is recorded already. */
	if (host_flow(flows, daddr, p.dport, p.ip->protocol))
		return TCX_NEXT;
	/* The host stack carried a client's packet to the pod, so it may be
	 * NATed: the pod's answers to that client end must return the same
	 * way. */
	track_flow(hook, flows, p.ip->saddr, p.sport, p.ip->protocol);
	return TCX_NEXT;
}

SEC("tc")
int from_eni(struct __sk_buff *skb)
{
	const enum hook hook = HOOK_FROM_ENI;
	const struct endpoint *dst;
	enum counter why;
	struct pkt p;
	__be32 daddr;
	void *flows;

	count(hook, CNT_PACKETS);
	why = parse(skb, &p);
	if (why != CNT_MAX)
		return count(hook, why);
	daddr = p.ip->daddr;
	dst = bpf_map_lookup_elem(&veni_endpoints, &daddr);
	if (!dst)
		return count(hook, CNT_PASS_NOT_LOCAL);
	flows = pod_flows(daddr);
	if (p.syn)
		forget_flow(flows, p.ip->saddr, p.sport, p.ip->protocol);
	if (host_flow(flows, daddr, p.dport, p.ip->protocol))
		return count(hook, CNT_PASS_HOST_FLOW);
	return to_peer(skb, hook, &p, dst);
}
