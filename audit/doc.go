// Package audit checks veni's invariants across the store, this node's
// links and the cloud, and reports every violation it finds:
//
//   - an IP is held by at most one owner, and every allocation's IP and ENI
//     exist (the store's own Check);
//   - every held IP is assigned to its ENI in the cloud, and every ENI in the
//     store is attached to this instance;
//   - no ENI veni created for this instance is unknown to the store (leak);
//   - every bound allocation has a live owner and its pod plumbing in place;
//   - every ready ENI has its link on the node;
//   - every trunk member rides a trunk of the store with a VLAN ID of its
//     own, the cloud says the same (Type Member, its trunk, DeviceIndex),
//     it is held for a pod exactly while an allocation holds its address,
//     and a bound member pod's address is tagged with that VLAN ID.
//
// It changes nothing: it is what `veni ipam verify` and the end-to-end tests
// run, and what an operator trusts at 3 a.m. It must not hold the store open
// across a netlink or a cloud call.
package audit
