//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * veni VLAN tagger: carries trunk members' traffic on the trunk ENI tagged
 * 802.1Q with each member's VLAN ID (its Attachment.DeviceIndex), what
 * Terway does with act_vlan or an 8021q sub-interface, neither of which
 * every kernel has. Both programs sit on the trunk ENI:
 *
 *   tag    tcx egress: a packet whose source address is a member's leaves
 *          tagged with the member's VLAN ID (bpf_skb_vlan_push)
 *   untag  tcx ingress, first: a tagged frame is popped (bpf_skb_vlan_pop)
 *          and kept only when its destination is the member of that VLAN
 *          ID; an untagged frame for a member's address is dropped (the
 *          VPC tags every frame to a member, so an untagged one is forged)
 *
 * Without 8021q the core drops a frame that still carries a tag after tc
 * ingress (PACKET_OTHERHOST), so untag must run before any program that
 * could redirect the frame: it is attached at the head of the hook.
 * Everything else returns TCX_NEXT, untouched.
 */
#include "veni_uapi.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char __license[] SEC("license") = "Dual BSD/GPL";

#define ETH_P_8021Q 0x8100
#define VLAN_VID_MASK 0x0fff

/* A member's address: IPv4 as ::ffff:a.b.c.d, IPv6 as is (netip.Addr.As16). */
struct member_key {
	__u32 addr[4];
};

/* Keep in step with Counters in vlan_linux.go. */
enum counter {
	CNT_TAGGED,           /* member packets pushed with their VLAN ID */
	CNT_UNTAGGED,         /* tagged frames popped and kept */
	CNT_DROP_WRONG_VLAN,  /* tagged, but not for the member of that VLAN ID */
	CNT_DROP_NOT_TAGGED,  /* untagged frame for a member's address */
	CNT_DROP_PUSH_FAILED, /* bpf_skb_vlan_push failed */
	CNT_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct member_key);
	__type(value, __u32); /* VLAN ID */
	__uint(max_entries, 4096);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} veni_vlan_members SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, CNT_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} veni_vlan_counters SEC(".maps");

static __always_inline void count(__u32 c)
{
	__u64 *v = bpf_map_lookup_elem(&veni_vlan_counters, &c);
	if (v)
		(*v)++;
}

struct ipv6hdr_addrs {
	__u32 ver_tc_flow;
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u32 saddr[4];
	__u32 daddr[4];
};

/* member_of finds the member owning the packet's source (src != 0) or
 * destination address; 0 when the packet is not IP or the address is no
 * member's. */
static __always_inline __u32 member_of(struct __sk_buff *skb, int src)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct member_key key = {};

	if ((void *)(eth + 1) > data_end)
		return 0;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > data_end)
			return 0;
		key.addr[2] = bpf_htonl(0x0000ffff);
		key.addr[3] = src ? ip->saddr : ip->daddr;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr_addrs *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > data_end)
			return 0;
		if (src)
			__builtin_memcpy(key.addr, ip6->saddr, sizeof(key.addr));
		else
			__builtin_memcpy(key.addr, ip6->daddr, sizeof(key.addr));
	} else {
		return 0;
	}
	__u32 *vid = bpf_map_lookup_elem(&veni_vlan_members, &key);
	return vid ? *vid : 0;
}

SEC("tc")
int tag(struct __sk_buff *skb)
{
	if (skb->vlan_present)
		return TCX_NEXT;
	__u32 vid = member_of(skb, 1);
	if (!vid)
		return TCX_NEXT;
	if (bpf_skb_vlan_push(skb, bpf_htons(ETH_P_8021Q), vid & VLAN_VID_MASK)) {
		count(CNT_DROP_PUSH_FAILED);
		return TC_ACT_SHOT; /* untagged it would be dropped by the VPC anyway */
	}
	count(CNT_TAGGED);
	return TCX_NEXT;
}

SEC("tc")
int untag(struct __sk_buff *skb)
{
	/* The core moves an in-band tag to the skb (skb_vlan_untag) before tc
	 * ingress runs, so vlan_present is every tagged frame. */
	if (!skb->vlan_present) {
		if (member_of(skb, 0)) {
			count(CNT_DROP_NOT_TAGGED);
			return TC_ACT_SHOT;
		}
		return TCX_NEXT;
	}
	__u32 vid = skb->vlan_tci & VLAN_VID_MASK;
	if (bpf_skb_vlan_pop(skb))
		return TC_ACT_SHOT;
	if (member_of(skb, 0) != vid || !vid) {
		count(CNT_DROP_WRONG_VLAN);
		return TC_ACT_SHOT;
	}
	count(CNT_UNTAGGED);
	return TCX_NEXT;
}
