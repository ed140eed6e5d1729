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
// Not implemented: IPv6 and dual stack (ip_stack other than ipv4 is
// accepted but only IPv4 is allocated), prefix delegation, trunk and
// exclusive ENIs, and creating ENIs just to reach min_eni (min_eni only
// keeps ENIs from being deleted).
package ipam
