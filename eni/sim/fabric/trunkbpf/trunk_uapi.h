/* SPDX-License-Identifier: (GPL-2.0-only WITH Linux-syscall-note) OR BSD-2-Clause */
/*
 * The few kernel UAPI definitions the trunk programs use, copied from
 * include/uapi/linux/{bpf,if_ether,pkt_cls}.h of Linux 6.18. The simulator
 * keeps its own copy rather than include veni's ebpf/headers: it must not
 * depend on the code it tests. <linux/bpf.h> itself is not used because it
 * pulls in <asm/types.h>, which clang -target bpf does not find on Debian.
 * Layouts here are ABI: they never change in the kernel.
 */
#ifndef TRUNK_UAPI_H
#define TRUNK_UAPI_H

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef signed int __s32;
typedef signed long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;

/* linux/bpf.h */
enum bpf_map_type {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
};

/* The leading fields of struct __sk_buff, the only ones the programs
 * read or write; the verifier checks accesses by offset. */
struct __sk_buff {
	__u32 len;
	__u32 pkt_type;
	__u32 mark;
	__u32 queue_mapping;
	__u32 protocol;
	__u32 vlan_present;
	__u32 vlan_tci;
	__u32 vlan_proto;
};

/* linux/pkt_cls.h */
#define TC_ACT_OK 0
#define TC_ACT_SHOT 2

/* linux/if_ether.h */
#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define ETH_P_ARP 0x0806
#define ETH_P_8021Q 0x8100
#define ETH_P_IPV6 0x86DD

#endif
