// Package vlan tags trunk members' traffic: on the node's trunk ENI, a
// packet from a member pod's address leaves 802.1Q-tagged with the
// member's VLAN ID (its Attachment.DeviceIndex), and a tagged frame
// arriving is untagged and kept only when it is for the member of that
// VLAN ID. It is Terway's vlan_strip_type "filter" (u32 + act_vlan) done
// with bpf_skb_vlan_push and bpf_skb_vlan_pop, core helpers that need
// neither act_vlan nor the 8021q module, which many kernels (the
// development kernel included) lack.
//
// Two programs (vlan.c, compiled by bpf2go; the objects are committed)
// attach to the trunk with TCX links: untag at the head of ingress, before
// the fast path and the policy programs (a frame still tagged after tc
// ingress is dropped by a kernel without 8021q), tag at the tail of
// egress, after them, so the fast path's bpf_redirect_neigh to the trunk
// and the host stack's routing are both tagged. One hash map, address →
// VLAN ID, says who is a member; pods that are not (the trunk's shared
// pods) pass untouched.
//
// Lifetimes: the map, the counters and the two links are pinned in the
// directory given to Open (one per node, beside the fast path's pins and
// not among them, so that turning the fast path off keeps members
// tagged), so they outlive the process that made them; Teardown ("veni
// cleanup") removes them; a Tagger holds file descriptors
// until Close. Only the CNI ADD adds a member (before the pod's link is
// up, so its first packet is tagged) and only podnet.Release forgets one.
//
// This package touches bpffs and TCX only: no netlink, no store, no cloud.
package vlan
