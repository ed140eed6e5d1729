//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The simulated VPC's side of an ENI trunk: what the cloud's SDN does with
 * the frames of a trunk ENI, on the trunk's VPC-side veth.
 *
 *   from_node  tc ingress (frames the node sends). A tagged frame's VLAN ID
 *              must be a member's, and its source address one of that
 *              member's; the tag is popped and skb->mark set to the
 *              member's mark, so the security groups judge it as the
 *              member's. Anything else tagged is dropped: an unknown VLAN
 *              ID, an 802.1ad tag, a source of another member or of none
 *              (link-local included), a frame that is none of IPv4, IPv6
 *              and ARP. An untagged
 *              frame whose source is a member's address is dropped too:
 *              the VPC requires member traffic to carry its tag. Other
 *              untagged frames (the trunk's own addresses) pass.
 *   to_node    tc egress (frames the VPC delivers). A frame to a member's
 *              address gets the member's 802.1Q tag.
 *
 * The kernel has already moved a received tag into skb->vlan_tci by the
 * time tc ingress runs (skb_vlan_untag); the VPC namespace has no 8021q
 * device, so a frame still carrying that tag after tc would be dropped as
 * PACKET_OTHERHOST: hence the pop. "Source" and "destination" are the IPv4
 * or IPv6 header's, or an ARP packet's sender and target address, so a
 * member can resolve its gateway through the proxy ARP of the trunk link.
 *
 * The fabric writes both maps (eni/sim/fabric/trunkbpf/trunk_linux.go).
 */
#include "trunk_uapi.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char __license[] SEC("license") = "Dual BSD/GPL";

/* One member on this trunk, by VLAN ID. */
struct member {
	__u32 mark; /* set on the member's frames after the pop */
};

/* An address: IPv6, or IPv4 as ::ffff:a.b.c.d. */
struct addr {
	__u8 b[16];
};

/* Keep in step with the Stat constants in trunk_linux.go. */
enum stat {
	STAT_TAGGED_IN,       /* tagged frames accepted from a member */
	STAT_DROP_VLAN,       /* tagged, VLAN ID of no member (or not 802.1Q) */
	STAT_DROP_SOURCE,     /* tagged, source not an address of that member */
	STAT_DROP_UNTAGGED,   /* untagged, source is a member's address */
	STAT_TAGGED_OUT,      /* frames to a member, tagged on delivery */
	STAT_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u16); /* VLAN ID */
	__type(value, struct member);
	__uint(max_entries, 4096);
} members SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct addr);
	__type(value, __u16); /* the VLAN ID of the member holding it */
	__uint(max_entries, 16384);
} member_addrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32); /* enum stat */
	__type(value, __u64);
	__uint(max_entries, STAT_MAX);
} stats SEC(".maps");

/* Keeps enum stat in the BTF for bpf2go's -type stat. */
const enum stat *unused_stat __attribute__((unused));

static __always_inline void count(enum stat stat)
{
	__u32 key = stat;
	__u64 *n = bpf_map_lookup_elem(&stats, &key);
	if (n)
		*n += 1;
}

/* Offsets from the Ethernet header of the source and destination of the
 * frame's IPv4, IPv6 or ARP (Ethernet/IPv4) packet. */
#define IP4_SADDR (ETH_HLEN + 12)
#define IP4_DADDR (ETH_HLEN + 16)
#define IP6_SADDR (ETH_HLEN + 8)
#define IP6_DADDR (ETH_HLEN + 24)
#define ARP_SPA (ETH_HLEN + 14)
#define ARP_TPA (ETH_HLEN + 24)

/* load_addr reads the frame's source (dst == 0) or destination address
 * into a. It returns 0, or -1 for a frame that is none of IPv4, IPv6 or
 * ARP, or too short. skb->protocol is the ethertype inside the tag. */
static __always_inline int load_addr(struct __sk_buff *skb, int dst, struct addr *a)
{
	__builtin_memset(a, 0, sizeof(*a));
	switch (skb->protocol) {
	case bpf_htons(ETH_P_IP):
		a->b[10] = 0xff;
		a->b[11] = 0xff;
		return bpf_skb_load_bytes(skb, dst ? IP4_DADDR : IP4_SADDR, &a->b[12], 4) ? -1 : 0;
	case bpf_htons(ETH_P_ARP):
		a->b[10] = 0xff;
		a->b[11] = 0xff;
		return bpf_skb_load_bytes(skb, dst ? ARP_TPA : ARP_SPA, &a->b[12], 4) ? -1 : 0;
	case bpf_htons(ETH_P_IPV6):
		return bpf_skb_load_bytes(skb, dst ? IP6_DADDR : IP6_SADDR, a->b, 16) ? -1 : 0;
	}
	return -1;
}

SEC("tc")
int from_node(struct __sk_buff *skb)
{
	struct addr a;

	if (!skb->vlan_present) {
		if (load_addr(skb, 0, &a) == 0 && bpf_map_lookup_elem(&member_addrs, &a)) {
			count(STAT_DROP_UNTAGGED);
			return TC_ACT_SHOT;
		}
		return TC_ACT_OK;
	}
	__u16 vid = skb->vlan_tci & 0x0fff;
	struct member *m = bpf_map_lookup_elem(&members, &vid);
	if (!m || skb->vlan_proto != bpf_htons(ETH_P_8021Q)) {
		count(STAT_DROP_VLAN);
		return TC_ACT_SHOT;
	}
	__u32 mark = m->mark;
	if (load_addr(skb, 0, &a) != 0) {
		count(STAT_DROP_SOURCE);
		return TC_ACT_SHOT;
	}
	__u16 *owner = bpf_map_lookup_elem(&member_addrs, &a);
	if (!owner || *owner != vid) {
		count(STAT_DROP_SOURCE);
		return TC_ACT_SHOT;
	}
	if (bpf_skb_vlan_pop(skb))
		return TC_ACT_SHOT;
	skb->mark = mark;
	count(STAT_TAGGED_IN);
	return TC_ACT_OK;
}

SEC("tc")
int to_node(struct __sk_buff *skb)
{
	struct addr a;

	if (load_addr(skb, 1, &a) != 0)
		return TC_ACT_OK;
	__u16 *vid = bpf_map_lookup_elem(&member_addrs, &a);
	if (!vid)
		return TC_ACT_OK;
	if (bpf_skb_vlan_push(skb, bpf_htons(ETH_P_8021Q), *vid))
		return TC_ACT_SHOT;
	count(STAT_TAGGED_OUT);
	return TC_ACT_OK;
}
