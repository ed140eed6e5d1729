package fastpath

// Counters are the programs' packet counts since their maps were created,
// summed over CPUs. They prove which path traffic took. The hooks count
// IPv4 and whatever is not IP (ARP); IPv6 counts the IPv6 packets.
type Counters struct {
	FromPod HookCounters `json:"from_pod"` // tcx ingress of the pods' host veths
	ToPod   HookCounters `json:"to_pod"`   // tcx egress of the pods' host veths (host stack to pod)
	FromENI HookCounters `json:"from_eni"` // tcx ingress of the ENIs

	IPv6 FamilyCounters `json:"ipv6"`
}

// FamilyCounters are one address family's counts, by hook (as Counters').
type FamilyCounters struct {
	FromPod HookCounters `json:"from_pod"`
	ToPod   HookCounters `json:"to_pod"`
	FromENI HookCounters `json:"from_eni"`
}

// HookCounters count the outcomes of one program. Pass* and FIB* packets
// went to the host stack, each for the reason in its name.
type HookCounters struct {
	Packets       uint64 `json:"packets"`        // every packet the program saw
	RedirectPeer  uint64 `json:"redirect_peer"`  // sent straight into a pod of this node
	RedirectNeigh uint64 `json:"redirect_neigh"` // sent straight out of the pod's ENI

	PassNotIP      uint64 `json:"pass_not_ip"`      // ARP and anything else that is not IP
	PassMalformed  uint64 `json:"pass_malformed"`   // truncated or odd headers
	PassFragment   uint64 `json:"pass_fragment"`    // IP fragments
	PassProto      uint64 `json:"pass_proto"`       // not TCP, UDP or ICMP echo (IPv6: or an extension header first)
	PassSpecial    uint64 `json:"pass_special"`     // link-local, loopback, multicast, broadcast
	PassService    uint64 `json:"pass_service"`     // Service CIDR
	PassHostCIDR   uint64 `json:"pass_host_cidr"`   // configured host-stack CIDR
	PassNodeAddr   uint64 `json:"pass_node_addr"`   // an address of the node
	PassHostFlow   uint64 `json:"pass_host_flow"`   // reply of a flow the host stack carried (NAT)
	PassUnknownSrc uint64 `json:"pass_unknown_src"` // source is not the endpoint of this veth
	PassNotLocal   uint64 `json:"pass_not_local"`   // destination is not a pod of this node
	PassTTL        uint64 `json:"pass_ttl"`         // TTL (IPv6: hop limit) would expire

	FIBNotForwarded       uint64 `json:"fib_not_forwarded"`       // no route in the ENI table, or a local address
	FIBDrop               uint64 `json:"fib_drop"`                // blackhole, unreachable or prohibit route
	FIBFragNeeded         uint64 `json:"fib_frag_needed"`         // larger than the route's MTU
	FIBForwardingDisabled uint64 `json:"fib_forwarding_disabled"` // forwarding is off on the host veth
	FIBOtherDevice        uint64 `json:"fib_other_device"`        // the ENI table routes out of another device
	FIBError              uint64 `json:"fib_error"`               // any other lookup failure

	FlowsTracked uint64 `json:"flows_tracked"` // host-stack flows remembered
	FlowNoMap    uint64 `json:"flow_no_map"`   // a flow to remember, but the pod has no flow map

	DropSpoofed  uint64 `json:"drop_spoofed"`   // dropped: the source is another local pod's address
	PassPlainPod uint64 `json:"pass_plain_pod"` // the destination is a local pod on the plain datapath
	DropPolicy   uint64 `json:"drop_policy"`    // dropped: the destination pod's ingress policy denies it
}
