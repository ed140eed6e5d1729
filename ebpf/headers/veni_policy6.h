/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * veni's NetworkPolicy check for IPv6, the twin of veni_policy.h's IPv4
 * check (read that file's comment first). Both objects include it, after
 * veni_policy.h and with VENI_POL_IP6 defined: the policy programs
 * (ebpf/enforce, policy.c) on a pod's host veth, and the fast path
 * (fastpath.c), which redirects a dual-stack pod's IPv6 into a pod with
 * bpf_redirect_peer and so asks the destination's ingress itself
 * (veni_policy_check6). Both declare veni_pol_ct6, pinned by name.
 *
 * The same tables decide: the peer's longest prefix under IN6/OUT6 gives
 * a port set, looked up as for IPv4. What differs:
 *
 *   parsing  the fixed header, then up to POL_IP6_MAX_EXT extension
 *            headers (hop-by-hop, routing, destination options, fragment,
 *            AH) to the upper-layer header: TCP, UDP and SCTP give ports,
 *            ICMPv6 echo its id, anything else is a flow of its protocol
 *            without ports (ESP, no next header). A chain longer than
 *            that, or truncated, is malformed: dropped in an isolated
 *            direction, passed otherwise, as a truncated IPv4 header.
 *   fragments a first fragment (offset 0, M set) is decided as its flow
 *            and remembered by {peer, identification}; later fragments
 *            (offset > 0, no upper-layer header) pass when their first
 *            passed under the current generation, as for IPv4.
 *   ICMPv6   errors (destination unreachable, packet too big, time
 *            exceeded, parameter problem) are decided as the flow of the
 *            packet they quote, so a packet too big about an allowed
 *            connection reaches its endpoint (path MTU discovery works).
 *            Neighbour discovery (router and neighbour solicitation and
 *            advertisement, redirect) passes untracked, never decided by
 *            policy, when it is what a receiver accepts (hop limit 255,
 *            RFC 4861) and cannot leave the link (a link-local source or
 *            destination, or link-scope multicast: the host forwards
 *            neither): the pod's default route is fe80::1, whose
 *            neighbour entry is permanent, but the host still resolves
 *            and probes the pod's addresses.
 *   tracking veni_pol_ct6, an LRU of ct6_key made by Go beside the IPv4
 *            table (Options.Flows6), with the IPv4 table's value and
 *            rules (origin, generation, denied, host).
 *   drops    events are struct pol_drop6: pol_drop with zero IPv4
 *            addresses, then both IPv6 addresses; Go tells them by size.
 *
 *   Services an egress-isolated endpoint's new flow to an IPv6 Service
 *            CIDR (veni_pol_svc6) is deferred past DNAT as for IPv4
 *            (VENI_MARK_SVC_DEFER, veni_policy.h): pol_check_deferred6
 *            finds the source endpoint by its IPv6 (veni_pol_ips6) and
 *            decides the flow against the backend.
 */
#ifndef VENI_POLICY6_H
#define VENI_POLICY6_H

#include "veni_policy.h"

/* linux/in6.h, linux/icmpv6.h, linux/socket.h */
#define AF_INET6 10
#define IPPROTO_HOPOPTS 0
#define IPPROTO_ROUTING 43
#define IPPROTO_FRAGMENT 44
#define IPPROTO_AH 51
#define IPPROTO_ICMPV6 58
#define IPPROTO_DSTOPTS 60
#define ICMPV6_DEST_UNREACH 1
#define ICMPV6_PKT_TOOBIG 2
#define ICMPV6_TIME_EXCEED 3
#define ICMPV6_PARAMPROB 4
#define ICMPV6_ECHO_REQUEST 128
#define ICMPV6_ECHO_REPLY 129
#define NDISC_ROUTER_SOLICITATION 133
#define NDISC_REDIRECT 137

#define POL_IP6_MAX_EXT 6

/* linux/ipv6.h, the version, class and label as one word. */
struct pol_ip6hdr {
	__be32 vtc_flow;
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u8 saddr[16];
	__u8 daddr[16];
};

/* An IPv6 flow from the endpoint's point of view (struct ct_key's twin).
 * CT_FRAG: port and peer_port hold the fragment identification. */
struct ct6_key {
	__u32 ifindex;
	__u8 peer[16];
	__be16 port;
	__be16 peer_port;
	__u8 proto;
	__u8 kind; /* enum ct_kind */
	__u16 pad;
};

/* A dropped IPv6 packet: base's addresses are zero. */
struct pol_drop6 {
	struct pol_drop base;
	__u8 saddr[16];
	__u8 daddr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__type(key, __u32);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct {
		__uint(type, BPF_MAP_TYPE_LRU_HASH);
		__type(key, struct ct6_key);
		__type(value, struct ct_value);
		__uint(max_entries, 1); /* Go sizes it (Options.Flows6) */
	});
} veni_pol_ct6 SEC(".maps");

/* The IPv6 Service CIDRs (Go writes them; value unused). */
struct pol_svc6_key {
	__u32 prefixlen;
	__u8 addr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct pol_svc6_key);
	__type(value, __u32);
	__uint(max_entries, VENI_POL_MAX_SVC);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} veni_pol_svc6 SEC(".maps");

/* An IPv6 address, as a map key or value. */
struct pol_in6 {
	__u8 addr[16];
};

/* A selected endpoint's IPv6 address -> its host veth ifindex: veni_pol_ips
 * for IPv6, read by the checks deferred past DNAT. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct pol_in6);
	__type(value, __u32);
	__uint(max_entries, VENI_POL_MAX_ENDPOINTS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} veni_pol_ips6 SEC(".maps");

/* Its reverse, host veth ifindex -> the endpoint's IPv6 address: only Go
 * reads it, to find what to forget when the endpoint goes or changes
 * (struct pol_ep records the IPv4 alone, and the fast path shares it). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct pol_in6);
	__uint(max_entries, VENI_POL_MAX_ENDPOINTS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} veni_pol_ep_ip6 SEC(".maps");

const struct ct6_key *unused_ct6_key __attribute__((unused));
const struct pol_svc6_key *unused_pol_svc6_key __attribute__((unused));
const struct pol_drop6 *unused_pol_drop6 __attribute__((unused));

struct pol_pkt6 {
	__u8 saddr[16];
	__u8 daddr[16];
	__be16 sport; /* ICMPv6 echo request: the id; echo reply: 0 */
	__be16 dport; /* ICMPv6 echo request: 0; echo reply: the id */
	__be32 frag_id;
	__u8 proto;
	__u8 syn;
	__u8 icmp_err; /* the fields describe the quoted packet */
	__u8 frag;     /* enum pol_frag */
	__u8 nd;       /* neighbour discovery confined to the link */
};

static __always_inline int pol_ip6_is_ext(__u8 nh)
{
	return nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_FRAGMENT ||
	       nh == IPPROTO_AH || nh == IPPROTO_DSTOPTS;
}

/* One extension header of a walk (bpf_loop's state). ret: -2 while
 * walking, then 0 (upper layer reached), 1 (a later fragment), -1
 * (truncated). */
struct pol_ext6 {
	struct __sk_buff *skb;
	__u32 off;
	__be32 id;
	__u8 nh;
	__u8 mf;
	__s8 ret;
};

static long pol_ext6_step(__u32 i, void *data)
{
	struct pol_ext6 *x = data;
	struct {
		__u8 nh;
		__u8 len;
		__be16 frag_off;
		__be32 id;
	} h;

	switch (x->nh) {
	case IPPROTO_HOPOPTS:
	case IPPROTO_ROUTING:
	case IPPROTO_DSTOPTS:
		if (bpf_skb_load_bytes(x->skb, x->off, &h, 2))
			goto truncated;
		x->nh = h.nh;
		x->off += ((__u32)h.len + 1) * 8;
		return 0;
	case IPPROTO_AH:
		if (bpf_skb_load_bytes(x->skb, x->off, &h, 2))
			goto truncated;
		x->nh = h.nh;
		x->off += ((__u32)h.len + 2) * 4;
		return 0;
	case IPPROTO_FRAGMENT:
		if (bpf_skb_load_bytes(x->skb, x->off, &h, 8))
			goto truncated;
		x->nh = h.nh;
		x->off += 8;
		x->id = h.id;
		if (h.frag_off & bpf_htons(0xFFF8)) {
			x->ret = 1;
			return 1;
		}
		if (h.frag_off & bpf_htons(1))
			x->mf = 1;
		return 0;
	default:
		x->ret = 0;
		return 1;
	}
truncated:
	x->ret = -1;
	return 1;
}

/* pol_ip6_ext walks the extension headers from *off, whose type is *nh, to
 * the upper-layer header: 0 when it is reached (*nh, *off), 1 at a later
 * fragment's fragment header (*nh its next header), -1 when truncated or
 * longer than POL_IP6_MAX_EXT. A fragment header sets *mf (offset 0, more
 * to come) and *id. The walk is a bpf_loop (kernel 5.17): the verifier
 * checks one step rather than each unrolled one. */
static __always_inline int pol_ip6_ext(struct __sk_buff *skb, __u32 *off, __u8 *nh, __u8 *mf,
				       __be32 *id)
{
	struct pol_ext6 x = { .skb = skb, .off = *off, .nh = *nh, .mf = *mf, .id = *id, .ret = -2 };

	bpf_loop(POL_IP6_MAX_EXT + 1, pol_ext6_step, &x, 0);
	*off = x.off;
	*nh = x.nh;
	*mf = x.mf;
	*id = x.id;
	return x.ret == -2 ? -1 : x.ret;
}

/* pol_ports6 reads the ports (or echo id) of protocol proto at off. */
static __always_inline int pol_ports6(struct __sk_buff *skb, __u32 off, __u8 proto,
				      struct pol_pkt6 *p, int outer)
{
	__u8 l4[14];

	switch (proto) {
	case IPPROTO_TCP:
		if (outer) {
			if (bpf_skb_load_bytes(skb, off, l4, 14))
				return -1;
			p->syn = (l4[13] & 0x12) == 0x02;
		} else if (bpf_skb_load_bytes(skb, off, l4, 8)) {
			return -1;
		}
		break;
	case IPPROTO_UDP:
	case IPPROTO_SCTP:
		if (bpf_skb_load_bytes(skb, off, l4, 8))
			return -1;
		break;
	case IPPROTO_ICMPV6:
		if (bpf_skb_load_bytes(skb, off, l4, 8))
			return -1;
		p->sport = 0;
		p->dport = 0;
		if (l4[0] == ICMPV6_ECHO_REQUEST)
			__builtin_memcpy(&p->sport, &l4[4], 2);
		else if (l4[0] == ICMPV6_ECHO_REPLY)
			__builtin_memcpy(&p->dport, &l4[4], 2);
		else if (outer && l4[0] >= ICMPV6_DEST_UNREACH && l4[0] <= ICMPV6_PARAMPROB)
			p->icmp_err = 1;
		else if (outer && l4[0] >= NDISC_ROUTER_SOLICITATION && l4[0] <= NDISC_REDIRECT)
			p->nd = 1;
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

/* fe80::/10 */
static __always_inline int pol_ip6_linklocal(const __u8 *a)
{
	return a[0] == 0xfe && (a[1] & 0xc0) == 0x80;
}

/* ff0X:: with link scope (ff02::1, solicited-node ff02::1:ffXX:XXXX) */
static __always_inline int pol_ip6_mc_link(const __u8 *a)
{
	return a[0] == 0xff && (a[1] & 0x0f) == 0x02;
}

/* pol_parse6 fills p (zeroed by the caller) from the packet: an enum
 * pol_parsed. A global function, so that its caller continues from one
 * state with p's fields unknown rather than from each combination of the
 * constants the parse writes (which made loading the programs four times
 * slower than without IPv6). */
__attribute__((noinline)) int pol_parse6(struct __sk_buff *skb, struct pol_pkt6 *p)
{
	struct pol_ip6hdr ip;
	__u32 off = sizeof(struct ethhdr);
	__be32 id = 0;
	__u8 nh, mf = 0;
	int r;

	if (!p)
		return POL_PARSED_MALFORMED;
	if (bpf_skb_load_bytes(skb, off, &ip, sizeof(ip)))
		return POL_PARSED_MALFORMED;
	if ((ip.vtc_flow & bpf_htonl(0xF0000000)) != bpf_htonl(0x60000000))
		return POL_PARSED_MALFORMED;
	__builtin_memcpy(p->saddr, ip.saddr, 16);
	__builtin_memcpy(p->daddr, ip.daddr, 16);
	off += sizeof(ip);
	nh = ip.nexthdr;
	r = pol_ip6_ext(skb, &off, &nh, &mf, &id);
	if (r < 0)
		return POL_PARSED_MALFORMED;
	p->proto = nh;
	p->frag_id = id;
	if (r == 1) {
		p->frag = POL_FRAG_LATER;
		return POL_PARSED_IP6;
	}
	if (mf)
		p->frag = POL_FRAG_FIRST;
	if (pol_ports6(skb, off, nh, p, 1))
		return POL_PARSED_MALFORMED;
	if (p->nd) {
		/* Otherwise an ICMPv6 flow like any other, decided by policy. */
		p->nd = ip.hop_limit == 255 && !p->frag &&
			(pol_ip6_linklocal(ip.saddr) || pol_ip6_linklocal(ip.daddr) ||
			 pol_ip6_mc_link(ip.daddr));
		return POL_PARSED_IP6;
	}
	if (!p->icmp_err)
		return POL_PARSED_IP6;

	/* An ICMPv6 error quotes as much of the packet that caused it as
	 * fits: its flow. */
	off += 8;
	if (bpf_skb_load_bytes(skb, off, &ip, sizeof(ip)))
		return POL_PARSED_MALFORMED;
	if ((ip.vtc_flow & bpf_htonl(0xF0000000)) != bpf_htonl(0x60000000))
		return POL_PARSED_MALFORMED;
	__builtin_memcpy(p->saddr, ip.saddr, 16);
	__builtin_memcpy(p->daddr, ip.daddr, 16);
	p->frag = POL_FRAG_NONE;
	off += sizeof(ip);
	nh = ip.nexthdr;
	mf = 0;
	r = pol_ip6_ext(skb, &off, &nh, &mf, &id);
	if (r < 0)
		return POL_PARSED_MALFORMED;
	p->proto = nh;
	if (r == 1) {
		p->sport = 0;
		p->dport = 0;
		return POL_PARSED_IP6;
	}
	if (pol_ports6(skb, off, nh, p, 0))
		return POL_PARSED_MALFORMED;
	return POL_PARSED_IP6;
}

/* pol_allows6 is pol_allows for an IPv6 peer. */
static __always_inline int pol_allows6(__u32 gen, enum pol_dir dir, const __u8 *peer, __u8 proto,
				       __be16 port)
{
	struct pol_key k = { .prefixlen = POL_KEY_BITS, .gen = gen };
	const struct pol_value *v;

	k.kind = dir == POL_INGRESS ? POL_KIND_IN6 : POL_KIND_OUT6;
	__builtin_memcpy(k.data, peer, 16);
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

/* pol_drop6 is pol_drop for an IPv6 packet. The event is written in
 * place in the ring buffer (no copy on the stack, which the IPv6 check
 * cannot spare). */
static __always_inline enum pol_verdict pol_drop6(__u32 ifindex, __u32 gen, enum pol_dir dir,
						  enum pol_reason reason, const struct pol_pkt6 *p)
{
	struct pol_drop6 *ev;

	pol_count(POL_C_DROP + reason);
	pol_stat(ifindex, dir, 0);
	ev = bpf_ringbuf_reserve(&veni_pol_drops, sizeof(*ev), 0);
	if (!ev) {
		pol_count(POL_C_EVENT_LOST);
		return POL_DROP;
	}
	__builtin_memset(ev, 0, sizeof(*ev));
	ev->base.ktime = bpf_ktime_get_ns();
	ev->base.ifindex = ifindex;
	ev->base.gen = gen;
	ev->base.dir = dir;
	ev->base.reason = reason;
	if (p) {
		__builtin_memcpy(ev->saddr, p->saddr, 16);
		__builtin_memcpy(ev->daddr, p->daddr, 16);
		ev->base.sport = p->sport;
		ev->base.dport = p->dport;
		ev->base.proto = p->proto;
	}
	bpf_ringbuf_submit(ev, 0);
	return POL_DROP;
}

static __always_inline void pol_ct6_key(struct ct6_key *k, __u32 ifindex, enum pol_dir tdir,
					const struct pol_pkt6 *p)
{
	k->ifindex = ifindex;
	if (tdir == POL_INGRESS) {
		__builtin_memcpy(k->peer, p->saddr, 16);
		k->port = p->dport;
		k->peer_port = p->sport;
	} else {
		__builtin_memcpy(k->peer, p->daddr, 16);
		k->port = p->sport;
		k->peer_port = p->dport;
	}
	k->proto = p->proto;
	k->kind = CT_FLOW;
	k->pad = 0;
}

static __always_inline void pol_frag6_key(struct ct6_key *k, __u32 ifindex, enum pol_dir dir,
					  const struct pol_pkt6 *p)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->ifindex = ifindex;
	__builtin_memcpy(k->peer, dir == POL_INGRESS ? p->saddr : p->daddr, 16);
	__builtin_memcpy(&k->port, &p->frag_id, 4);
	k->kind = CT_FRAG;
}

/* pol_is_svc6 reports whether addr is in an IPv6 Service CIDR. A
 * subprogram: its key does not weigh on pol_check6's stack, whose calls
 * nest at the verifier's limit of 512 bytes. */
static __attribute__((noinline)) int pol_is_svc6(const __u8 *addr)
{
	struct pol_svc6_key k = { .prefixlen = 128 };

	__builtin_memcpy(k.addr, addr, 16);
	return pol_lookup(&veni_pol_svc6, &k) != 0;
}

/* How pol_check6 is asked (its argument how). */
enum pol_how6 {
	POL_HOW6_EGRESS = 1,   /* the direction, enum pol_dir: bit 0 */
	POL_HOW6_HOST = 2,     /* from_host */
	POL_HOW6_DEFERRED = 4, /* the check of an egress deferred past DNAT */
};

/* pol_check6 is pol_check_table for an IPv6 packet: POL_PASS or POL_DROP.
 * how is the direction (bit 0), from_host (bit 1) and POL_HOW6_DEFERRED.
 * An egress is pol_from_pod's (its flows to a Service are deferred: the
 * fast path asks about IPv6 ingress only) unless POL_HOW6_DEFERRED says it is
 * pol_check_deferred6's, which decides them. A subprogram rather than inlined, and its
 * parse a global function, so that the verifier walks the IPv6 check
 * once per call rather than once per caller state and parse outcome:
 * loading the programs (a node's first policy, an upgrade) takes ~45 ms
 * instead of ~125 ms (~30 ms without IPv6). */
static __attribute__((noinline)) int pol_check6(struct __sk_buff *skb, __u32 gen, __u32 flags,
					 __u32 ifindex, __u32 how)
{
	enum pol_dir dir = how & 1;
	int from_host = how & 2;
	struct ct_value nv = {}; /* nv.flags: CT_F_DEFERRED marks the packet */
	struct pol_pkt6 p = {};
	struct ct_value *ct;
	struct ct6_key ck;
	enum pol_dir tdir, odir;
	__u32 zero = 0, iso;
	void *cts;
	__be16 port;
	int ok;

	iso = flags & (dir == POL_INGRESS ? POL_F_ISOLATED_IN : POL_F_ISOLATED_OUT);
	if (pol_parse6(skb, &p) != POL_PARSED_IP6)
		return iso ? pol_drop6(ifindex, gen, dir, POL_R_MALFORMED, 0) : POL_PASS;
	if (p.nd)
		return POL_PASS;
	cts = pol_lookup(&veni_pol_ct6, &zero);

	if (p.frag == POL_FRAG_LATER) {
		if (!iso)
			return POL_PASS;
		pol_frag6_key(&ck, ifindex, dir, &p);
		ct = cts ? pol_lookup(cts, &ck) : 0;
		if (ct && ct->gen == gen)
			return POL_PASS;
		return pol_drop6(ifindex, gen, dir, POL_R_FRAGMENT, &p);
	}

	tdir = p.icmp_err ? (dir ^ 1) : dir;
	pol_ct6_key(&ck, ifindex, tdir, &p);
	ct = cts ? pol_lookup(cts, &ck) : 0;
	if (ct && !(p.syn && ct->origin != dir)) {
		nv.flags = ct->flags & CT_F_DEFERRED;
		if (ct->gen == gen && !(ct->flags & CT_F_DENIED))
			goto pass;
		if (ct->gen == gen) {
			if (ct->origin == dir || iso)
				return pol_drop6(ifindex, gen, dir, POL_R_CHANGED, &p);
			return POL_PASS;
		}
		odir = ct->origin & 1;
		ok = 1;
		if ((flags & (odir == POL_INGRESS ? POL_F_ISOLATED_IN : POL_F_ISOLATED_OUT)) &&
		    !(ct->flags & (CT_F_HOST | CT_F_DEFERRED))) {
			port = odir == POL_INGRESS ? ck.port : ck.peer_port;
			ok = pol_allows6(gen, odir, ck.peer, ck.proto, port);
		}
		ct->gen = gen;
		if (!ok) {
			ct->flags |= CT_F_DENIED;
			if (ct->origin == dir || iso)
				return pol_drop6(ifindex, gen, dir, POL_R_CHANGED, &p);
			return POL_PASS;
		}
		ct->flags &= ~CT_F_DENIED;
		pol_count(POL_C_ALLOW_RENEWED);
		goto pass;
	}
	if (p.icmp_err)
		return iso ? pol_drop6(ifindex, gen, dir, POL_R_RELATED, &p) : POL_PASS;

	if (from_host && dir == POL_INGRESS) {
		nv.flags = CT_F_HOST;
		pol_count(POL_C_ALLOW_HOST);
	} else if (!(how & POL_HOW6_DEFERRED) && iso && dir == POL_EGRESS && pol_is_svc6(p.daddr)) {
		/* Decided after DNAT, against the backend. */
		nv.flags = CT_F_DEFERRED;
	} else if (iso && !pol_allows6(gen, dir, ck.peer, p.proto, p.dport)) {
		return pol_drop6(ifindex, gen, dir, POL_R_POLICY, &p);
	}
	nv.gen = gen;
	nv.origin = dir;
	if (!cts)
		pol_count(POL_C_NO_CT);
	else if (bpf_map_update_elem(cts, &ck, &nv, BPF_ANY))
		pol_count(POL_C_CT_FULL);
	if (nv.flags & CT_F_DEFERRED) {
		pol_count(POL_C_DEFERRED);
	} else {
		pol_count(POL_C_ALLOW_NEW);
		pol_stat(ifindex, dir, 1);
	}

pass:
	if ((nv.flags & CT_F_DEFERRED) && !(how & POL_HOW6_DEFERRED) && dir == POL_EGRESS)
		skb->mark |= VENI_MARK_SVC_DEFER;
	if (p.frag == POL_FRAG_FIRST && iso && cts) {
		pol_frag6_key(&ck, ifindex, dir, &p);
		__builtin_memset(&nv, 0, sizeof(nv));
		nv.gen = gen;
		nv.origin = dir;
		bpf_map_update_elem(cts, &ck, &nv, BPF_ANY);
	}
	return POL_PASS;
}

/* veni_policy_check6 is veni_policy_check for a packet the caller knows
 * is IPv6 (the fast path's IPv6 copy): it goes straight to the IPv6
 * check, without the IPv4 check's locals on the stack. */
static __always_inline enum pol_verdict veni_policy_check6(struct __sk_buff *skb, __u32 ifindex,
							    enum pol_dir dir, int from_host)
{
	const struct pol_ep *ep = pol_lookup(&veni_pol_eps, &ifindex);
	struct {
		__u32 gen;
		__u32 flags;
	} cur;

	if (!ep)
		return POL_PASS;
	/* One 8-byte load, as pol_check_ep. */
	__builtin_memcpy(&cur, ep, sizeof(cur));
	return pol_check6(skb, cur.gen, cur.flags, ifindex, (dir & 1) | (from_host ? 2 : 0));
}

/* pol_check_deferred6 is pol_check_deferred's IPv6 twin (the caller
 * cleared the mark): the source endpoint, found by the packet's source
 * address, decides its deferred egress against the translated
 * destination; a source no longer selected passes. */
static __always_inline enum pol_verdict pol_check_deferred6(struct __sk_buff *skb)
{
	struct pol_in6 src;
	const struct pol_ep *ep;
	const __u32 *ifindex;
	struct {
		__u32 gen;
		__u32 flags;
	} cur;
	__u32 idx;

	/* Only the source address: the stack is pol_check6's. */
	if (bpf_skb_load_bytes(skb, sizeof(struct ethhdr) + __builtin_offsetof(struct pol_ip6hdr, saddr),
			       src.addr, sizeof(src.addr)))
		return POL_PASS;
	ifindex = pol_lookup(&veni_pol_ips6, &src);
	if (!ifindex)
		return POL_PASS;
	idx = *ifindex;
	ep = pol_lookup(&veni_pol_eps, &idx);
	if (!ep)
		return POL_PASS;
	__builtin_memcpy(&cur, ep, sizeof(cur)); /* as pol_check_ep */
	return pol_check6(skb, cur.gen, cur.flags, idx, POL_EGRESS | POL_HOW6_DEFERRED);
}

/* pol_check_deferred_any is pol_check_deferred (veni_policy.h, IPv4) for
 * either family: the hooks after DNAT call it. */
static __always_inline enum pol_verdict pol_check_deferred_any(struct __sk_buff *skb)
{
	__be16 proto;

	if (!(skb->mark & VENI_MARK_SVC_DEFER))
		return POL_PASS;
	if (bpf_skb_load_bytes(skb, __builtin_offsetof(struct ethhdr, h_proto), &proto, sizeof(proto)) ||
	    proto != bpf_htons(ETH_P_IPV6))
		return pol_check_deferred(skb);
	skb->mark &= ~VENI_MARK_SVC_DEFER;
	return pol_check_deferred6(skb);
}

#endif /* VENI_POLICY6_H */
