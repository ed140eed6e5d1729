/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * veni's NetworkPolicy check, shared by the policy programs (ebpf/enforce,
 * policy.c) and the fast path (ebpf/fastpath, fastpath.c). The fast path
 * delivers packets into a pod with bpf_redirect_peer, which skips the hook
 * on the pod's host veth where the policy programs would see them, so it
 * must ask veni_policy_check for the destination's ingress before it
 * redirects. Both objects declare the same maps, pinned by name in the
 * node's pin directory: whichever loads first creates them, the other
 * reuses them. Change a map here and both objects change (make generate).
 * The IPv6 check (veni_policy6.h) and its connection table are declared
 * there; both objects include it (the fast path redirects IPv6 too).
 *
 * An endpoint is a pod, keyed by the ifindex of its host veth. An endpoint
 * a policy selects has an entry in veni_pol_eps (its table's generation,
 * isolation flags, digest and address); one without is selected by no
 * policy and costs one hash lookup per check. Every endpoint's table lives
 * in the node's one LPM trie, veni_pol_rules, under its generation: every
 * key starts with it. A new policy is written whole under a new
 * generation, then the endpoint's entry is switched to it with one update,
 * so a packet sees either the old policy or the new one, never a mix; the
 * old generation's entries are deleted once no program can still read
 * them. Installing a table needs no new map, and so no map-in-map update,
 * which makes the kernel wait for an RCU grace period (milliseconds) on
 * the CNI ADD's path.
 *
 * A generation's keys (struct pol_key.kind):
 *   HEAD    the first key of the generation in the trie's order (all
 *           zero after the generation): Go deletes a generation by walking
 *           the trie from it, without reading anybody else's entries
 *   IN4     ingress peers: prefix -> port set (value.id, 0: none)
 *   OUT4    egress peers, the same
 *   IN6/OUT6 the same for IPv6, looked up by veni_policy6.h (compiled
 *           in with VENI_POL_IP6, by both objects)
 *   PORTS   port sets: {set id, protocol, port} with ports as prefixes;
 *           a set allowing every protocol is the prefix {set id}
 * A new flow costs two trie lookups: the peer's longest prefix gives a port
 * set, the set is looked up with the flow's protocol and server port.
 *
 * Connections are tracked in one LRU hash per node (veni_pol_ct[0], made
 * by Go when the first table is installed, so nodes without policy pay no
 * memory for it), keyed by endpoint, peer, both ports and protocol from
 * the endpoint's point of view: both directions of a flow share an entry.
 * An entry remembers who opened the flow and the endpoint's generation
 * when it was allowed. A packet of a known flow of the current generation
 * passes; a packet of a flow allowed under an older generation is decided
 * again as its opener would be now: still allowed, the entry is renewed,
 * otherwise the packet is dropped and the entry marked denied under the
 * new generation (a policy change cuts the established connections it no
 * longer allows, and only those). A denied entry drops the opener's side
 * of the flow, and the other side's too where that direction is isolated;
 * elsewhere the other side's packets pass untracked: were the entry
 * deleted, the endpoint's next packet of the flow in a direction that is
 * not isolated would track it again as the endpoint's own, and the cut
 * peer's packets would pass as its replies.
 */
#ifndef VENI_POLICY_H
#define VENI_POLICY_H

#include "veni_uapi.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* Directions, from the endpoint's point of view. */
enum pol_dir {
	POL_INGRESS = 0, /* a packet to the endpoint */
	POL_EGRESS = 1,  /* a packet from the endpoint */
};

/* What veni_policy_check answers. */
enum pol_verdict {
	POL_PASS = 0,
	POL_DROP = 1,
};

enum pol_kind {
	POL_KIND_HEAD = 0,
	POL_KIND_IN4 = 1,
	POL_KIND_OUT4 = 2,
	POL_KIND_IN6 = 3,
	POL_KIND_OUT6 = 4,
	POL_KIND_PORTS = 5,
};

/* Flags of an endpoint (struct pol_ep). */
enum pol_flag {
	POL_F_ISOLATED_IN = 1 << 0,
	POL_F_ISOLATED_OUT = 1 << 1,
	POL_F_FAIL_CLOSED = 1 << 2, /* isolated because the policy is unknown */
};

/* Why a packet was dropped: the drop event's reason, and counters. */
enum pol_reason {
	POL_R_NONE = 0,
	POL_R_POLICY = 1,    /* a new flow no rule allows */
	POL_R_CHANGED = 2,   /* a flow of an older generation the policy no longer allows */
	POL_R_RELATED = 3,   /* an ICMP error about a flow the endpoint does not have */
	POL_R_FRAGMENT = 4,  /* a later fragment of a datagram whose first was not allowed */
	POL_R_IPV6 = 5,      /* IPv6 in an isolated direction, built without VENI_POL_IP6 */
	POL_R_MALFORMED = 6, /* truncated IP headers in an isolated direction */
	POL_R_MAX,
};

/* Global counters (veni_pol_counters), per CPU. The drop reasons come
 * first: index POL_C_DROP + reason. */
enum pol_counter {
	POL_C_DROP = 0,                       /* + enum pol_reason */
	POL_C_ALLOW_NEW = POL_R_MAX,          /* new flows allowed and tracked */
	POL_C_ALLOW_RENEWED,                  /* flows of an older generation still allowed */
	POL_C_ALLOW_HOST,                     /* new flows from the node itself */
	POL_C_CT_FULL,                        /* a flow could not be tracked */
	POL_C_NO_CT,                          /* no connection table: flows not tracked */
	POL_C_EVENT_LOST,                     /* the drop ring buffer was full */
	POL_C_DEFERRED,                       /* new flows to a Service, egress decided after DNAT */
	POL_C_MAX,
};

#define POL_KEY_BITS 192 /* the whole of pol_key.gen..data */

struct pol_key {
	__u32 prefixlen;
	__u32 gen; /* the table's generation: every prefix covers it */
	__u8 kind;
	__u8 pad[3];
	/* IN4/OUT4: address in data[0..3]; IN6/OUT6: data[0..15];
	 * PORTS: set id (host order) data[0..3], protocol data[4] (0: any),
	 * port (network order) data[5..6]; HEAD: zero. */
	__u8 data[16];
};

struct pol_value {
	__u32 id; /* IN/OUT: port set (0 allows nothing) */
};

/* A selected endpoint: which table is its policy. gen and flags come
 * first and together, so that one 8-byte load reads a consistent pair
 * while Go replaces the entry. */
struct pol_ep {
	__u32 gen;     /* its table's generation, never reused on the node */
	__u32 flags;   /* enum pol_flag */
	__u64 sum;     /* digest of the table's content (Go's) */
	__be32 ip;     /* the endpoint's IPv4 address */
	__u32 entries; /* entries of its table, HEAD included */
};

/* A flow from the endpoint's point of view. */
enum ct_kind {
	CT_FLOW = 0,
	CT_FRAG = 1, /* a datagram's first fragment was allowed: port = IP id */
};

struct ct_key {
	__u32 ifindex;    /* the endpoint */
	__be32 peer;      /* the other end's address */
	__be16 port;      /* the endpoint's port (ICMP echo: the id or 0) */
	__be16 peer_port; /* the other end's port */
	__u8 proto;
	__u8 kind;        /* enum ct_kind */
	__u16 pad;
};

enum ct_flag {
	CT_F_HOST = 1 << 0,     /* opened by the node itself: always allowed */
	CT_F_DENIED = 1 << 1,   /* cut by a policy change: its opener's packets drop */
	CT_F_DEFERRED = 1 << 2, /* to a Service address: egress decided after DNAT */
};

/*
 * Service traffic (DESIGN.md section 7: policy is checked after Service
 * translation). An egress-isolated endpoint's new flow to an address in
 * veni_pol_svc (the Service CIDRs) is not decided where it leaves the pod:
 * kube-proxy has not yet translated the ClusterIP to a backend. Its entry
 * (keyed by the ClusterIP, so the replies the host un-NATs pass the
 * endpoint's ingress) is flagged CT_F_DEFERRED, and each of the opener's
 * packets leaves pol_from_pod with VENI_MARK_SVC_DEFER in skb->mark. The
 * hooks after the host stack's DNAT decide it: the destination's host
 * veth egress (pol_to_pod, a local backend) and the ENI's egress
 * (pol_to_eni, a remote one). They find the source endpoint by the
 * packet's source address (veni_pol_ips) and run the same check,
 * pol_check_table, against the backend's address, keyed by it in the
 * connection table, so a flow's later packets cost one more lookup.
 */
#define VENI_MARK_SVC_DEFER 0x00100000

struct ct_value {
	__u32 gen;   /* the endpoint's generation when the flow was last allowed */
	__u8 origin; /* enum pol_dir: POL_EGRESS when the endpoint opened it */
	__u8 flags;  /* enum ct_flag */
	__u16 pad;
};

/* Per-endpoint counters: flows allowed and packets dropped, by direction. */
struct pol_stats {
	__u64 allowed[2];
	__u64 denied[2];
};

/* A dropped packet, for veni policy drops. */
struct pol_drop {
	__u64 ktime;   /* bpf_ktime_get_ns */
	__u32 ifindex; /* the endpoint */
	__u32 gen;     /* its generation */
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 dir;    /* enum pol_dir */
	__u8 reason; /* enum pol_reason */
	__u8 pad;
};

/* Sizes fixed in both objects: a pinned map must match its declaration. */
#define VENI_POL_MAX_ENDPOINTS 4096
#define VENI_POL_MAX_RULES (1 << 21) /* every endpoint's table entries together */
#define VENI_POL_DROPS_BYTES (64 * 1024)
#define VENI_POL_MAX_SVC 64 /* Service CIDRs of the node */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32); /* host veth ifindex */
	__type(value, struct pol_ep);
	__uint(max_entries, VENI_POL_MAX_ENDPOINTS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} veni_pol_eps SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct pol_key);
	__type(value, struct pol_value);
	__uint(max_entries, VENI_POL_MAX_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* memory as entries come */
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} veni_pol_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__type(key, __u32);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct {
		__uint(type, BPF_MAP_TYPE_LRU_HASH);
		__type(key, struct ct_key);
		__type(value, struct ct_value);
		__uint(max_entries, 1); /* Go sizes it (Options.Flows) */
	});
} veni_pol_ct SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__type(key, __u32); /* host veth ifindex */
	__type(value, struct pol_stats);
	__uint(max_entries, VENI_POL_MAX_ENDPOINTS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} veni_pol_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, POL_C_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} veni_pol_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, VENI_POL_DROPS_BYTES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} veni_pol_drops SEC(".maps");

/* The Service CIDRs (Go writes them; value unused). */
struct pol_svc_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct pol_svc_key);
	__type(value, __u32);
	__uint(max_entries, VENI_POL_MAX_SVC);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} veni_pol_svc SEC(".maps");

/* A selected endpoint's address -> its host veth ifindex, for the checks
 * deferred past DNAT, which see the packet away from the source's veth. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __be32);
	__type(value, __u32);
	__uint(max_entries, VENI_POL_MAX_ENDPOINTS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} veni_pol_ips SEC(".maps");

/* Only reached through inner maps or the ring buffer: keep the full types
 * in BTF for bpf2go. */
const struct ct_key *unused_ct_key __attribute__((unused));
const struct ct_value *unused_ct_value __attribute__((unused));
const struct pol_drop *unused_pol_drop __attribute__((unused));
const struct pol_svc_key *unused_pol_svc_key __attribute__((unused));
const enum pol_kind *unused_pol_kind __attribute__((unused));
const enum pol_flag *unused_pol_flag __attribute__((unused));
const enum pol_reason *unused_pol_reason __attribute__((unused));
const enum pol_counter *unused_pol_counter __attribute__((unused));
const enum pol_dir *unused_pol_dir __attribute__((unused));

#ifdef VENI_POL_TEST
/* Test builds (ebpf/enforce's policytest object, never shipped) count the
 * map lookups of a check, to prove what a packet costs. Not pinned. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
} veni_pol_probe SEC(".maps");

static __always_inline void *pol_lookup(void *map, const void *key)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&veni_pol_probe, &zero);

	if (n)
		*n += 1;
	return bpf_map_lookup_elem(map, key);
}
#else
#define pol_lookup bpf_map_lookup_elem
#endif

static __always_inline void pol_count(enum pol_counter c)
{
	__u32 key = c;
	__u64 *v = bpf_map_lookup_elem(&veni_pol_counters, &key);

	if (v)
		*v += 1;
}

/* A parsed packet. For an ICMP error, addresses, ports and protocol are
 * those of the packet quoted in it, which travelled the other way. */
enum pol_frag {
	POL_FRAG_NONE = 0,
	POL_FRAG_FIRST = 1, /* offset 0, more fragments: has ports */
	POL_FRAG_LATER = 2, /* no transport header */
};

struct pol_pkt {
	__be32 saddr;
	__be32 daddr;
	__be16 sport; /* ICMP echo request: the id; echo reply: 0 */
	__be16 dport; /* ICMP echo request: 0; echo reply: the id */
	__be16 ip_id;
	__u8 proto;
	__u8 syn;      /* a TCP SYN without ACK: opens a connection */
	__u8 icmp_err; /* the fields describe the quoted packet */
	__u8 frag;     /* enum pol_frag */
};

enum pol_parsed {
	POL_PARSED_IP4 = 0,
	POL_PARSED_NOT_IP = 1, /* ARP and the like: not policy's business */
	POL_PARSED_IP6 = 2,
	POL_PARSED_MALFORMED = 3,
};

/* ports_of reads the ports (or echo id) of protocol proto at off. */
static __always_inline int pol_ports(struct __sk_buff *skb, __u32 off, __u8 proto,
				     struct pol_pkt *p, int outer)
{
	__u8 l4[14];

	switch (proto) {
	case IPPROTO_TCP:
		/* A quoted packet carries only 8 bytes of its header. */
		if (outer) {
			if (bpf_skb_load_bytes(skb, off, l4, 14))
				return -1;
			p->syn = (l4[13] & 0x12) == 0x02; /* SYN without ACK */
		} else if (bpf_skb_load_bytes(skb, off, l4, 8)) {
			return -1;
		}
		break;
	case IPPROTO_UDP:
	case IPPROTO_SCTP:
		if (bpf_skb_load_bytes(skb, off, l4, 8))
			return -1;
		break;
	case IPPROTO_ICMP:
		if (bpf_skb_load_bytes(skb, off, l4, 8))
			return -1;
		p->sport = 0;
		p->dport = 0;
		if (l4[0] == ICMP_ECHO)
			__builtin_memcpy(&p->sport, &l4[4], 2);
		else if (l4[0] == ICMP_ECHOREPLY)
			__builtin_memcpy(&p->dport, &l4[4], 2);
		else if (outer && (l4[0] == ICMP_DEST_UNREACH || l4[0] == ICMP_SOURCE_QUENCH ||
				   l4[0] == ICMP_REDIRECT || l4[0] == ICMP_TIME_EXCEEDED ||
				   l4[0] == ICMP_PARAMETERPROB))
			p->icmp_err = 1;
		return 0;
	default:
		p->sport = 0;
		p->dport = 0;
		return 0;
	}
	__builtin_memcpy(&p->sport, &l4[0], 2);
	__builtin_memcpy(&p->dport, &l4[2], 2);
	return 0;
}

/* pol_parse reads what policy needs with bpf_skb_load_bytes, which works on
 * non-linear packets and, unlike bpf_skb_pull_data, leaves the caller's
 * packet pointers valid (the fast path calls this between its own parse
 * and its rewrite). */
static __always_inline enum pol_parsed pol_parse(struct __sk_buff *skb, struct pol_pkt *p)
{
	struct {
		struct ethhdr eth;
		struct iphdr ip;
	} __attribute__((packed)) h;
	struct iphdr inner;
	__u32 off;

	if (bpf_skb_load_bytes(skb, 0, &h.eth, sizeof(h.eth)))
		return POL_PARSED_MALFORMED;
	if (h.eth.h_proto == bpf_htons(ETH_P_IPV6))
		return POL_PARSED_IP6;
	if (h.eth.h_proto != bpf_htons(ETH_P_IP))
		return POL_PARSED_NOT_IP;
	if (bpf_skb_load_bytes(skb, sizeof(h.eth), &h.ip, sizeof(h.ip)))
		return POL_PARSED_MALFORMED;
	if ((h.ip.ver_ihl >> 4) != 4 || (h.ip.ver_ihl & 0x0f) < 5)
		return POL_PARSED_MALFORMED;
	p->saddr = h.ip.saddr;
	p->daddr = h.ip.daddr;
	p->proto = h.ip.protocol;
	p->ip_id = h.ip.id;
	if (h.ip.frag_off & bpf_htons(IP_OFFSET)) {
		p->frag = POL_FRAG_LATER;
		return POL_PARSED_IP4;
	}
	if (h.ip.frag_off & bpf_htons(IP_MF))
		p->frag = POL_FRAG_FIRST;
	off = sizeof(h.eth) + (h.ip.ver_ihl & 0x0f) * 4;
	if (pol_ports(skb, off, p->proto, p, 1))
		return POL_PARSED_MALFORMED;
	if (!p->icmp_err)
		return POL_PARSED_IP4;

	/* An ICMP error quotes the IP header and 8 bytes of the packet that
	 * caused it: the flow it belongs to. */
	off += 8;
	if (bpf_skb_load_bytes(skb, off, &inner, sizeof(inner)))
		return POL_PARSED_MALFORMED;
	if ((inner.ver_ihl & 0x0f) < 5)
		return POL_PARSED_MALFORMED;
	p->saddr = inner.saddr;
	p->daddr = inner.daddr;
	p->proto = inner.protocol;
	p->frag = POL_FRAG_NONE;
	if (inner.frag_off & bpf_htons(IP_OFFSET)) {
		p->sport = 0;
		p->dport = 0;
		return POL_PARSED_IP4;
	}
	off += (inner.ver_ihl & 0x0f) * 4;
	if (pol_ports(skb, off, p->proto, p, 0))
		return POL_PARSED_MALFORMED;
	return POL_PARSED_IP4;
}

static __always_inline int pol_has_ports(__u8 proto)
{
	return proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_SCTP;
}

/* pol_allows decides a new flow: from peer (ingress) or to peer (egress),
 * protocol proto, to server port port (network order). */
static __always_inline int pol_allows(__u32 gen, enum pol_dir dir, __be32 peer,
				      __u8 proto, __be16 port)
{
	struct pol_key k = { .prefixlen = POL_KEY_BITS, .gen = gen };
	const struct pol_value *v;

	k.kind = dir == POL_INGRESS ? POL_KIND_IN4 : POL_KIND_OUT4;
	__builtin_memcpy(k.data, &peer, 4);
	v = pol_lookup(&veni_pol_rules, &k);
	if (!v || !v->id)
		return 0;
	__builtin_memset(&k, 0, sizeof(k));
	k.prefixlen = POL_KEY_BITS;
	k.gen = gen;
	k.kind = POL_KIND_PORTS;
	__builtin_memcpy(k.data, &v->id, 4);
	k.data[4] = proto;
	if (pol_has_ports(proto))
		__builtin_memcpy(&k.data[5], &port, 2);
	return pol_lookup(&veni_pol_rules, &k) != 0;
}

static __always_inline void pol_stat(__u32 ifindex, enum pol_dir dir, int allowed)
{
	struct pol_stats *s = bpf_map_lookup_elem(&veni_pol_stats, &ifindex);

	if (!s)
		return;
	if (allowed)
		s->allowed[dir & 1] += 1;
	else
		s->denied[dir & 1] += 1;
}

static __always_inline enum pol_verdict pol_drop(__u32 ifindex, __u32 gen, enum pol_dir dir,
						 enum pol_reason reason, const struct pol_pkt *p)
{
	struct pol_drop ev = {
		.ifindex = ifindex,
		.gen = gen,
		.dir = dir,
		.reason = reason,
	};

	pol_count(POL_C_DROP + reason);
	pol_stat(ifindex, dir, 0);
	ev.ktime = bpf_ktime_get_ns();
	if (p) {
		ev.saddr = p->saddr;
		ev.daddr = p->daddr;
		ev.sport = p->sport;
		ev.dport = p->dport;
		ev.proto = p->proto;
	}
	if (bpf_ringbuf_output(&veni_pol_drops, &ev, sizeof(ev), 0))
		pol_count(POL_C_EVENT_LOST);
	return POL_DROP;
}

/* The flow's key from the endpoint's side: tdir is the direction of the
 * packet the fields describe (for an ICMP error, of the quoted packet). */
static __always_inline void pol_ct_key(struct ct_key *k, __u32 ifindex, enum pol_dir tdir,
				       const struct pol_pkt *p)
{
	k->ifindex = ifindex;
	if (tdir == POL_INGRESS) {
		k->peer = p->saddr;
		k->port = p->dport;
		k->peer_port = p->sport;
	} else {
		k->peer = p->daddr;
		k->port = p->sport;
		k->peer_port = p->dport;
	}
	k->proto = p->proto;
	k->kind = CT_FLOW;
	k->pad = 0;
}

/* pol_is_svc reports whether addr is in a Service CIDR. */
static __always_inline int pol_is_svc(__be32 addr)
{
	struct pol_svc_key k = { .prefixlen = 32 };

	__builtin_memcpy(k.addr, &addr, 4);
	return pol_lookup(&veni_pol_svc, &k) != 0;
}

#ifdef VENI_POL_IP6
/* veni_policy6.h: a subprogram, not inlined into every path of its
 * callers (BPF calls take five arguments: how packs the direction, bit 0,
 * and from_host, bit 1). */
static __attribute__((noinline)) int pol_check6(struct __sk_buff *skb, __u32 gen, __u32 flags,
					 __u32 ifindex, __u32 how);
#endif

/* pol_check_table is the check of a selected endpoint, whose table is
 * generation gen with flags (enum pol_flag). from_host says that the
 * packet is the node's own (ingress only). defer_svc (pol_from_pod only)
 * defers the egress of flows to a Service CIDR past DNAT (see
 * VENI_MARK_SVC_DEFER). ip6 0 (a constant) leaves the IPv6 check out of a
 * caller that never sees IPv6, so the verifier does not walk it there. */
static __always_inline enum pol_verdict pol_check_table(struct __sk_buff *skb, __u32 gen,
							 __u32 flags, __u32 ifindex,
							 enum pol_dir dir, int from_host,
							 int defer_svc, int ip6)
{
	int deferred = 0;
	struct ct_value nv = {};
	struct pol_pkt p = {};
	struct ct_value *ct;
	struct ct_key ck;
	enum pol_dir tdir, odir;
	__u32 zero = 0, iso;
	void *cts;
	__be16 port;
	int ok;

	iso = flags & (dir == POL_INGRESS ? POL_F_ISOLATED_IN : POL_F_ISOLATED_OUT);

	switch (pol_parse(skb, &p)) {
	case POL_PARSED_IP4:
		break;
	case POL_PARSED_NOT_IP:
		return POL_PASS;
	case POL_PARSED_IP6:
#ifdef VENI_POL_IP6
		if (ip6)
			return pol_check6(skb, gen, flags, ifindex, (dir & 1) | (from_host ? 2 : 0));
#endif
		return iso ? pol_drop(ifindex, gen, dir, POL_R_IPV6, 0) : POL_PASS;
	default:
		return iso ? pol_drop(ifindex, gen, dir, POL_R_MALFORMED, 0) : POL_PASS;
	}
	cts = pol_lookup(&veni_pol_ct, &zero);

	if (p.frag == POL_FRAG_LATER) {
		if (!iso)
			return POL_PASS;
		__builtin_memset(&ck, 0, sizeof(ck));
		ck.ifindex = ifindex;
		ck.peer = dir == POL_INGRESS ? p.saddr : p.daddr;
		ck.port = p.ip_id;
		ck.proto = p.proto;
		ck.kind = CT_FRAG;
		ct = cts ? pol_lookup(cts, &ck) : 0;
		if (ct && ct->gen == gen)
			return POL_PASS;
		return pol_drop(ifindex, gen, dir, POL_R_FRAGMENT, &p);
	}

	tdir = p.icmp_err ? (dir ^ 1) : dir;
	pol_ct_key(&ck, ifindex, tdir, &p);
	ct = cts ? pol_lookup(cts, &ck) : 0;
	/* A SYN opening the flow the other way round than the entry says is
	 * a new connection on a reused tuple: decide it afresh. */
	if (ct && !(p.syn && ct->origin != dir)) {
		deferred = ct->flags & CT_F_DEFERRED;
		if (ct->gen == gen && !(ct->flags & CT_F_DENIED))
			goto pass;
		if (ct->gen == gen) {
			/* Cut under this generation (see the top). */
			if (ct->origin == dir || iso)
				return pol_drop(ifindex, gen, dir, POL_R_CHANGED, &p);
			return POL_PASS;
		}
		/* A flow of an older generation: decide it again as its opener,
		 * from the entry (the packet may be a reply). */
		odir = ct->origin & 1;
		ok = 1;
		if ((flags & (odir == POL_INGRESS ? POL_F_ISOLATED_IN : POL_F_ISOLATED_OUT)) &&
		    !(ct->flags & (CT_F_HOST | CT_F_DEFERRED))) {
			port = odir == POL_INGRESS ? ck.port : ck.peer_port;
			ok = pol_allows(gen, odir, ck.peer, ck.proto, port);
		}
		ct->gen = gen;
		if (!ok) {
			ct->flags |= CT_F_DENIED;
			if (ct->origin == dir || iso)
				return pol_drop(ifindex, gen, dir, POL_R_CHANGED, &p);
			return POL_PASS;
		}
		ct->flags &= ~CT_F_DENIED;
		pol_count(POL_C_ALLOW_RENEWED);
		goto pass;
	}
	if (p.icmp_err)
		return iso ? pol_drop(ifindex, gen, dir, POL_R_RELATED, &p) : POL_PASS;

	/* A new flow, opened by this packet. */
	if (from_host && dir == POL_INGRESS) {
		nv.flags = CT_F_HOST;
		pol_count(POL_C_ALLOW_HOST);
	} else if (defer_svc && iso && dir == POL_EGRESS && pol_is_svc(p.daddr)) {
		/* Decided after DNAT, against the backend. */
		nv.flags = CT_F_DEFERRED;
		deferred = 1;
	} else if (iso && !pol_allows(gen, dir, ck.peer, p.proto, p.dport)) {
		return pol_drop(ifindex, gen, dir, POL_R_POLICY, &p);
	}
	nv.gen = gen;
	nv.origin = dir;
	if (!cts)
		pol_count(POL_C_NO_CT);
	else if (bpf_map_update_elem(cts, &ck, &nv, BPF_ANY))
		pol_count(POL_C_CT_FULL);
	if (deferred) {
		pol_count(POL_C_DEFERRED);
	} else {
		pol_count(POL_C_ALLOW_NEW);
		pol_stat(ifindex, dir, 1);
	}

pass:
	if (defer_svc && deferred && dir == POL_EGRESS)
		skb->mark |= VENI_MARK_SVC_DEFER;
	/* Later fragments carry no ports: remember that the first passed. */
	if (p.frag == POL_FRAG_FIRST && iso && cts) {
		__builtin_memset(&ck, 0, sizeof(ck));
		ck.ifindex = ifindex;
		ck.peer = dir == POL_INGRESS ? p.saddr : p.daddr;
		ck.port = p.ip_id;
		ck.proto = p.proto;
		ck.kind = CT_FRAG;
		__builtin_memset(&nv, 0, sizeof(nv));
		nv.gen = gen;
		nv.origin = dir;
		bpf_map_update_elem(cts, &ck, &nv, BPF_ANY);
	}
	return POL_PASS;
}

/*
 * veni_policy_check decides a packet of the endpoint on host veth ifindex
 * in direction dir: POL_DROP when its policy denies it (counted, and a
 * drop event written), POL_PASS otherwise. An endpoint no policy selects
 * costs one hash lookup. from_host marks a packet the node itself sends
 * (allowed into any pod: kubelet probes). It reads the packet with
 * bpf_skb_load_bytes only, so the caller's packet pointers stay valid.
 */
static __always_inline enum pol_verdict pol_check_ep(struct __sk_buff *skb, __u32 ifindex,
						      enum pol_dir dir, int from_host, int defer_svc,
						      int ip6)
{
	const struct pol_ep *ep = pol_lookup(&veni_pol_eps, &ifindex);
	struct {
		__u32 gen;
		__u32 flags;
	} cur;

	if (!ep)
		return POL_PASS;
	/* One 8-byte load: the pair as one update wrote it. */
	__builtin_memcpy(&cur, ep, sizeof(cur));
	return pol_check_table(skb, cur.gen, cur.flags, ifindex, dir, from_host, defer_svc, ip6);
}

static __always_inline enum pol_verdict veni_policy_check(struct __sk_buff *skb, __u32 ifindex,
							   enum pol_dir dir, int from_host)
{
	return pol_check_ep(skb, ifindex, dir, from_host, 0, 1);
}

/*
 * pol_check_deferred decides, after the host stack's DNAT, the egress that
 * pol_from_pod deferred (VENI_MARK_SVC_DEFER): the source endpoint's,
 * found by the packet's source address, against the translated
 * destination. A packet without the mark costs this one test. The mark
 * is cleared: a later hook does not decide the packet again. A source no
 * longer selected passes, as its packets would at its veth.
 */
static __always_inline enum pol_verdict pol_check_deferred(struct __sk_buff *skb)
{
	struct {
		struct ethhdr eth;
		struct iphdr ip;
	} __attribute__((packed)) h;
	const __u32 *src;
	__be32 saddr;

	if (!(skb->mark & VENI_MARK_SVC_DEFER))
		return POL_PASS;
	skb->mark &= ~VENI_MARK_SVC_DEFER;
	if (bpf_skb_load_bytes(skb, 0, &h, sizeof(h)) || h.eth.h_proto != bpf_htons(ETH_P_IP))
		return POL_PASS;
	saddr = h.ip.saddr;
	src = pol_lookup(&veni_pol_ips, &saddr);
	if (!src)
		return POL_PASS;
	return pol_check_ep(skb, *src, POL_EGRESS, 0, 0, 0); /* IPv4 only: see above */
}

#endif /* VENI_POLICY_H */
