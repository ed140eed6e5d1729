package fastpath

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
)

// DefaultPinRoot is where veni pins its BPF objects. Each node gets its own
// directory below it (NodePinDir).
const DefaultPinRoot = "/sys/fs/bpf/veni"

// NodePinDir returns the pin directory of node under root: nodes that share
// one kernel (the simulated VPC) must not share maps.
func NodePinDir(root, node string) string {
	return filepath.Join(root, node)
}

// Options configure Open.
type Options struct {
	// PinDir holds this node's maps and links. Required. It is created, and
	// when it lies under /sys/fs/bpf and bpffs is not mounted there, bpffs
	// is mounted.
	PinDir string
	// HostStack, when not nil, replaces the pinned host-stack destinations
	// (see SetHostStack). Nil keeps what an earlier Open wrote, so that
	// CNI invocations need not know the node's addresses.
	HostStack *HostStack
	// PodHook is how AttachPod hooks the programs to a pod's host veth:
	// PodHookTC (the default when empty) or PodHookTCX.
	PodHook string
	// MaxPods bounds the pods that can have an endpoint (the endpoint and
	// flow maps' size); 0 means DefaultMaxPods. It applies when the maps
	// are created: pinned maps keep the size they were made with.
	MaxPods int
}

// DefaultMaxPods is the endpoint map's size unless Options.MaxPods says
// otherwise: above what a node's ENIs give out in IP mode. A node in
// prefix mode may hold more (16 pods per ENI slot): its maps are sized
// by MapPods.
const DefaultMaxPods = 1024

// MapPods is the endpoint map size for a node that can hold nodeMaxPods
// pods (ipam.MaxPods), never below DefaultMaxPods. Pinned maps keep the
// size they were made with: a node whose limits grow later (max_eni
// raised) keeps the old size until its pins are torn down.
func MapPods(nodeMaxPods int) int { return max(DefaultMaxPods, nodeMaxPods) }

// flowsPerPod is the size of each pod's flow map, as fastpath.c's inner
// map template declares it (the kernel refuses inner maps that differ).
// One pod remembers at most this many host-stack flows at once; beyond, it
// forgets its own least recently used ones, never another pod's.
const flowsPerPod = 4096

// Pod hooks. ENIs always use TCX links: they are attached once per ENI.
// Pods come and go, and the hook's cost lands on every pod start: on the
// development kernel (6.18, 2 vCPUs) two TCX links on a fresh veth take
// 22 ms (each attach waits for an RCU grace period), a clsact qdisc with two
// direct-action cls_bpf filters 0.5 ms. The programs are the same: TCX_NEXT,
// TCX_PASS, TCX_DROP and TCX_REDIRECT equal TC_ACT_UNSPEC, TC_ACT_OK,
// TC_ACT_SHOT and TC_ACT_REDIRECT.
const (
	PodHookTC  = "tc"  // clsact + cls_bpf filters; they go with the veth
	PodHookTCX = "tcx" // pinned TCX links
)

// HostStack lists destinations that pods reach through the host stack
// rather than the fast path. Until it is set, traffic to the Service CIDR
// leaves through the ENI untranslated, so the daemon (or the first ADD) must
// set it before pods start. Entries of either family go to that family's
// map (an IPv6 Service CIDR, the node's IPv6).
type HostStack struct {
	// ServiceCIDRs are Kubernetes Service ranges; kube-proxy NATs them in
	// the host.
	ServiceCIDRs []netip.Prefix
	// CIDRs are other destinations served by the host, such as node-local
	// DNS (169.254.20.10/32, which link-local handling covers already).
	CIDRs []netip.Prefix
	// NodeAddrs are the node's own addresses (ENI primary IPs).
	NodeAddrs []netip.Addr
}

// Endpoint is what the programs need to know about one pod.
type Endpoint struct {
	IP netip.Addr // the pod's IPv4 address (listings: an IPv6 record's address)
	// IP6 is a dual-stack pod's IPv6 address, recorded beside IP with the
	// same veth, ENI and table (zero: IPv4 only). Listings (Endpoints,
	// Endpoint) return each address as its own Endpoint and leave it zero.
	IP6         netip.Addr
	HostIfindex int              // the pod's host-side veth
	HostMAC     net.HardwareAddr // MAC of the host-side veth (the pod's gateway)
	PodMAC      net.HardwareAddr // MAC of the pod's eth0
	ENIIfindex  int              // the ENI the pod's address belongs to
	ENITable    int              // route table of that ENI
}

func (ep Endpoint) validate() error {
	switch {
	case !ep.IP.Is4():
		return fmt.Errorf("%w: ip %v is not ipv4", ErrInvalidEndpoint, ep.IP)
	case ep.IP6.IsValid() && !is6(ep.IP6):
		return fmt.Errorf("%w: ip6 %v is not ipv6", ErrInvalidEndpoint, ep.IP6)
	case ep.HostIfindex <= 0:
		return fmt.Errorf("%w: no host veth ifindex", ErrInvalidEndpoint)
	case ep.ENIIfindex <= 0:
		return fmt.Errorf("%w: no eni ifindex", ErrInvalidEndpoint)
	case ep.ENITable <= 0:
		return fmt.Errorf("%w: no eni route table", ErrInvalidEndpoint)
	case len(ep.HostMAC) != 6:
		return fmt.Errorf("%w: host mac %q is not ethernet", ErrInvalidEndpoint, ep.HostMAC)
	case len(ep.PodMAC) != 6:
		return fmt.Errorf("%w: pod mac %q is not ethernet", ErrInvalidEndpoint, ep.PodMAC)
	}
	return nil
}

// PlainPod is a pod of this node that runs on the plain datapath although
// the node runs the fast path (PlainPod recorded it): the programs send
// what other pods send it through the host stack.
type PlainPod struct {
	IP          netip.Addr
	HostIfindex int // its host veth
}

// Reasons a destination is on the host stack; values of the LPM map, in
// step with enum host_reason in fastpath.c.
const (
	reasonService  uint32 = 1
	reasonCIDR     uint32 = 2
	reasonNodeAddr uint32 = 3
	reasonPlainPod uint32 = 4
)

func reasonName(r uint32) string {
	switch r {
	case reasonService:
		return "service"
	case reasonCIDR:
		return "cidr"
	case reasonNodeAddr:
		return "node"
	case reasonPlainPod:
		return "plain-pod"
	}
	return "unknown"
}

// is6 reports whether a is an IPv6 address the programs treat as IPv6
// (IPv4-mapped addresses are IPv4).
func is6(a netip.Addr) bool { return a.Is6() && !a.Is4In6() }

// prefixes returns the prefixes of hs, masked, with their reason; IPv4
// ones as IPv4 (IPv4-mapped node addresses unmapped), IPv6 ones as IPv6.
// A prefix listed twice keeps the most specific reason: node address,
// then host CIDR, then Service.
func (hs HostStack) prefixes() map[netip.Prefix]uint32 {
	out := make(map[netip.Prefix]uint32)
	add := func(p netip.Prefix, reason uint32) {
		if !p.IsValid() || p.Addr().Is4In6() {
			return
		}
		out[p.Masked()] = reason
	}
	for _, p := range hs.ServiceCIDRs {
		add(p, reasonService)
	}
	for _, p := range hs.CIDRs {
		add(p, reasonCIDR)
	}
	for _, a := range hs.NodeAddrs {
		if a.IsValid() {
			a = a.Unmap()
			add(netip.PrefixFrom(a, a.BitLen()), reasonNodeAddr)
		}
	}
	return out
}
