// Package trunkbpf is the simulated VPC's handling of an ENI trunk's
// 802.1Q frames: a tc program pair (trunk.c, built by bpf2go; the
// generated trunk_bpfel/bpfeb files are committed and `make generate`
// rebuilds them) on the trunk's VPC-side veth, and the two maps the
// fabric writes: the trunk's members by VLAN ID, and every member
// address with the VLAN ID of its member.
//
// From the node (tc ingress) a tagged frame passes only when its VLAN ID
// is a member's and its source is one of that member's addresses; it
// leaves the program untagged and marked with the member's mark. An
// untagged frame from a member's address is dropped, as the real VPC
// drops member traffic that lost its tag. Toward the node (tc egress) a
// frame to a member's address is tagged with the member's VLAN ID.
//
// Lifetime: a Trunk owns its programs and maps. The filters Attach
// installs hold the programs (and so the maps) for as long as the link
// lives; deleting the link removes them. Close releases this process's
// handles: after it the maps can no longer be changed, so close a Trunk
// only after its link is gone or its filters are removed. Nothing is
// pinned.
//
// This package belongs to the simulator: it imports nothing of veni
// outside eni/sim, so it cannot share a bug with the node-side code it is
// used to test.
package trunkbpf
