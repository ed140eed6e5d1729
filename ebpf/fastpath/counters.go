package fastpath

// Counters are the programs' packet counts since their maps were created,
// summed over CPUs. They prove which path traffic took.
type Counters struct {
	FromPod HookCounters // tcx ingress of the pods' host veths
	ToPod   HookCounters // tcx egress of the pods' host veths (host stack to pod)
	FromENI HookCounters // tcx ingress of the ENIs
}

// HookCounters count the outcomes of one program. Pass* and FIB* packets
// went to the host stack, each for the reason in its name.
type HookCounters struct {
	Packets       uint64 // every packet the program saw
	RedirectPeer  uint64 // sent straight into a pod of this node
	RedirectNeigh uint64 // sent straight out of the pod's ENI

	PassNotIPv4    uint64 // ARP, IPv6, ...
	PassMalformed  uint64 // truncated or odd headers
	PassFragment   uint64 // IP fragments
	PassProto      uint64 // not TCP, UDP or ICMP echo
	PassSpecial    uint64 // link-local, loopback, multicast, broadcast
	PassService    uint64 // Service CIDR
	PassHostCIDR   uint64 // configured host-stack CIDR
	PassNodeAddr   uint64 // an address of the node
	PassHostFlow   uint64 // reply of a flow the host stack carried (NAT)
	PassUnknownSrc uint64 // source is not the endpoint of this veth
	PassNotLocal   uint64 // destination is not a pod of this node
	PassTTL        uint64 // TTL would expire

	FIBNotForwarded       uint64 // no route in the ENI table, or a local address
	FIBDrop               uint64 // blackhole, unreachable or prohibit route
	FIBFragNeeded         uint64 // larger than the route's MTU
	FIBForwardingDisabled uint64 // forwarding is off on the host veth
	FIBOtherDevice        uint64 // the ENI table routes out of another device
	FIBError              uint64 // any other lookup failure

	FlowsTracked uint64 // host-stack flows remembered
}
