// Package ipam decides which IP a pod gets and keeps the node's pool of
// secondary IPs and ENIs the right size. It is pure logic over the store
// (package store) and the cloud (eni.Client); it runs in the CNI plugin and
// in the daemon alike, and they coordinate only through the store.
//
// The CNI ADD's warm path is two short store transactions and no cloud
// call: Reserve (a free IP on a ready ENI, held for the ContainerID and
// IfName), then, once the pod is plumbed, Commit. A failed ADD and every DEL
// call Release, which is idempotent. When the pool is empty, Allocate runs
// the cold path: Refill, under the store's allocator lease, assigns IPs to
// ENIs with room or creates, attaches and records a new ENI, while other
// processes wait on the store and give up with ErrTryAgainLater. Answers
// that retrying will not fix soon (vSwitch out of addresses, quota reached)
// become a back-off recorded in the store with an event, so they are visible
// and never retried in a hot loop.
//
// The daemon calls Reconcile on a timer (pool between min_pool_size and
// max_pool_size, idle reclaim, deleting empty ENIs veni created, store ↔
// cloud sync) and GC for reservations whose owner died; the CNI GC verb
// calls GCValid.
//
// Rules: no store transaction stays open across a cloud call or a wait;
// the instance's primary ENI and ENIs veni did not create (no creator=veni
// tag for this instance) are never deleted and their IPs never released;
// an ENI's IPs are handed out only after Node.WaitLink says the node sees
// its link. This package must not touch netlink: the datapath is netplumb's.
//
// Prefix mode (enable_ip_prefix, prefix.go): the cloud unit is a delegated
// /28; each of its 16 addresses is an ordinary IP record tagged with its
// prefix, so everything above holds unchanged, and a prefix goes back to
// the cloud only when all its addresses are free and idle. The store keeps
// the node's mode; the other one is refused (ErrModeMismatch).
//
// Dual stack (ip_stack dual, dual.go): an allocation holds an IPv4 and an
// IPv6 of one ENI, taken, bound and freed in the same transactions; the
// pool counts pairs. The store keeps the node's stack (ErrStackMismatch).
//
// Dual stack in prefix mode (prefix6.go): each ENI also gets one IPv6 /80
// (with its create, or one AssignIpv6Addresses call; it takes one IPv6
// slot). A /80 cannot be recorded address by address: a pod's IPv6 is the
// lowest free address of its IPv4's ENI's /80, and its IP record is made
// in the Reserve transaction that takes the pod's IPv4, then kept (free
// after release) for the next pod. Pairs, release, GC, stickiness and the
// store's half-stack check are the ones above; an ENI offers as many pods
// as free IPv4; the /80 goes back to the cloud only with its ENI. A cloud
// sync keeps a /80's records (the cloud lists the /80, not its
// addresses), and after a lost store the host's pods' /80 addresses are
// recovered with their IPv4.
//
// IPv6 only (ip_stack ipv6): an allocation's IP is its one IPv6 (IP6 is
// zero; store.Allocation.Families splits them for the datapath); the pool
// is the IPv4 one run on IPv6 addresses (AssignIpv6Addresses, a new ENI
// with Ipv6AddressCount and no secondary IPv4, EniIpv6AddressQuantity per
// ENI), so reservation, release, GC, reclaim and recovery are the same.
// In prefix mode (prefix6.go) an ENI is created with one /80 and nothing
// else; it still carries EniIpv6AddressQuantity pods, whose addresses are
// records of the /80 made ahead by grow (no cloud call), and a pod gets
// its ENI's lowest free one; a full pool grows by a new ENI with its /80.
//
// Exclusive ENI mode (exclusive_eni_type eniOnly, exclusive.go): every pod
// gets an ENI of its own (store.ENIExclusive, Pod naming it) whose primary
// address is an ordinary IP record, so reservation, Commit, release, GC and
// the store check are the ones above; AllocateExclusive takes a warm ENI of
// the pod's security groups or creates one under the allocator lease,
// recording the pod as owner before the attach; a release makes the ENI
// warm again (no cloud call) and Reconcile keeps min_pool_size to
// max_pool_size warm ENIs (exclusive_pool.go). The store keeps the node's
// ENI mode (ErrModeMismatch).
//
// Trunking (enable_eni_trunking, trunk.go): the node's first ENI is its
// trunk, a shared ENI like the others; AllocateMember gives a pod a member
// ENI of its own on the trunk (warm: an idle member; cold: created and
// attached through the trunk under the allocator lease).
//
// Exclusive ENIs and members belong to one pod each (store.ENI.Dedicated):
// the shared pool never hands out, counts, reclaims, syncs or deletes one
// (usable and readyENIs skip both; snapshot and countFree leave members
// out, which ride the trunk outside the ENI slots), and one
// function, releaseDedicated, makes either idle again when its pod's
// allocation goes.
//
// Fixed IPs (a PodNetworking's allocationType Fixed, fixed.go): a
// dedicated ENI marked store.ENI.Fixed stays its pod's when the pod goes
// (releaseDedicated keeps it, Reconcile parks it in the cloud after
// fixed_eni_hold: tagged with its release time, detached), and the pod's
// next ADD on any node of the zone takes it back (AllocateMember and
// AllocateExclusive look it up by tag and attach it); its parker deletes
// it at its release time.
//
// Not implemented: giving an idle /80 back to the cloud while its ENI
// stays, and creating ENIs just to reach min_eni (min_eni only keeps ENIs
// from being deleted).
package ipam
