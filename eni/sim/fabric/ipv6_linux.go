package fabric

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// IPv6 in the VPC namespace. Routing and neighbours work as for IPv4 (a
// /128 route and a permanent neighbour entry per assigned address, see
// setAddresses); three things differ because IPv6 has no rp_filter and no
// proxy_arp that answers for whatever is routed elsewhere:
//
//   - Anti-spoofing is policy routing. For every address assigned to an
//     ENI, the rule "from ADDR iif ve-XXXX lookup main" (priority
//     ruleSrcPriority) lets the ENI's packets from that source be routed;
//     below it one rule, "not iif lo blackhole" (ruleDropPriority), drops
//     every other packet that arrived from a link and would be forwarded.
//     The kernel's own rule 0 (lookup local) comes first, so neighbour
//     discovery, router solicitations, link-local and anything addressed
//     to the VPC itself (its gateways) still reach the VPC, and packets
//     the VPC sends itself have iif lo. One more rule routes link-local
//     sources (a node's unicast neighbour probes for proxied peers pass
//     through ip6_forward, which hands them to proxy NDP and never
//     forwards a link-local source).
//   - Neighbour discovery is answered by proxy NDP: each IPv6 ENI's VPC
//     link has proxy entries for its vSwitch's IPv6 gateway and for every
//     IPv6 address assigned to another ENI in the same /64, so a node that
//     puts an address/64 on its NIC reaches the gateway and its same-subnet
//     peers with no special route, as proxy ARP does for IPv4. A proxy
//     entry also joins the solicited-node group, so multicast solicitations
//     arrive. The gateway itself is a /128 on the VPC's lo, so it answers
//     pings like the IPv4 gateway.
//   - A VPC link has IPv6 only when its vSwitch has (disable_ipv6 stays 1
//     on the others, so their IPv6 packets die at the link).

const (
	// ruleSrcPriority is the priority of the per-address "from ADDR iif
	// LINK lookup main" rules.
	ruleSrcPriority = 31000
	// ruleDropPriority is the priority of the one "not iif lo blackhole"
	// rule, below every source rule and above the main table's rule.
	ruleDropPriority = 32000
)

// eni6 is the fabric's IPv6 view of an attached ENI.
type eni6 struct {
	cidr     netip.Prefix   // the vSwitch's IPv6 /64; invalid without IPv6
	gw       netip.Addr     // the vSwitch's IPv6 gateway
	addrs    []netip.Addr   // assigned IPv6 addresses
	prefixes []netip.Prefix // delegated /80s (prefix6_linux.go)
}

// hostBits is the prefix length of a single address of a's family.
func hostBits(a netip.Addr) int { return a.BitLen() }

// hostNet is a as a one-address net.IPNet (/32 or /128).
func hostNet(a netip.Addr) *net.IPNet {
	a = a.Unmap()
	return prefixNet(netip.PrefixFrom(a, hostBits(a)))
}

func family(a netip.Addr) int {
	if a.Unmap().Is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

func split6(ips []netip.Addr) []netip.Addr {
	var v6 []netip.Addr
	for _, ip := range ips {
		if !ip.Unmap().Is4() {
			v6 = append(v6, ip)
		}
	}
	return v6
}

// dropRule is the VPC's "not iif lo blackhole" IPv6 rule.
func dropRule() *netlink.Rule {
	r := netlink.NewRule()
	r.Family = netlink.FAMILY_V6
	r.Priority = ruleDropPriority
	r.IifName = "lo"
	r.Invert = true
	r.Type = unix.RTN_BLACKHOLE
	return r
}

// sourceRule lets the VPC forward packets from src (an address, or a /80)
// arriving on link.
func sourceRule(linkName string, src netip.Prefix) *netlink.Rule {
	r := netlink.NewRule()
	r.Family = netlink.FAMILY_V6
	r.Priority = ruleSrcPriority
	r.IifName = linkName
	r.Src = prefixNet(src)
	r.Table = unix.RT_TABLE_MAIN
	return r
}

// setupIPv6 configures the VPC namespace for IPv6 forwarding with
// anti-spoofing. Links created later copy conf/default: IPv6 off (a link
// turns it on when its vSwitch has IPv6), no DAD (a proxied answer needs a
// usable link-local source at once).
//
// Equivalent to:
//
//	sysctl net.ipv6.conf.all.forwarding=1 net.ipv6.conf.all.proxy_ndp=1 ...
//	ip -n <sim>-vpc -6 rule add not iif lo blackhole priority 32000
//	ip -n <sim>-vpc -6 rule add from fe80::/10 lookup main priority 31000
func (f *Fabric) setupIPv6() error {
	err := writeSysctls(NetNSPath(f.VPCNetNS()), []sysctl{
		{"net/ipv6/conf/default/disable_ipv6", "1"},
		{"net/ipv6/conf/default/accept_dad", "0"},
		{"net/ipv6/conf/default/accept_ra", "0"},
		{"net/ipv6/conf/default/autoconf", "0"},
		{"net/ipv6/conf/all/forwarding", "1"},
		{"net/ipv6/conf/all/proxy_ndp", "1"},
	})
	if err != nil {
		return fmt.Errorf("configure ipv6 in %s: %w", f.VPCNetNS(), err)
	}
	if err := f.vpc.RuleAdd(dropRule()); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("ipv6 anti-spoofing rule in %s: %w", f.VPCNetNS(), err)
	}
	// A node's unicast neighbour probe for a proxied peer may come from
	// its link-local address and is routed like traffic to the peer before
	// ip6_forward hands it to proxy NDP; without this rule the drop rule
	// would eat it. Link-local sources are never forwarded (the kernel
	// drops them in ip6_forward), so this lets nothing else through.
	ll := netlink.NewRule()
	ll.Family = netlink.FAMILY_V6
	ll.Priority = ruleSrcPriority
	ll.Src = &net.IPNet{IP: net.ParseIP("fe80::"), Mask: net.CIDRMask(10, 128)}
	ll.Table = unix.RT_TABLE_MAIN
	if err := f.vpc.RuleAdd(ll); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("ipv6 link-local rule in %s: %w", f.VPCNetNS(), err)
	}
	return nil
}

// enableLinkIPv6 turns IPv6 on for an ENI's VPC link whose vSwitch has it.
func (f *Fabric) enableLinkIPv6(name string) error {
	return writeSysctls(NetNSPath(f.VPCNetNS()), []sysctl{
		{"net/ipv6/neigh/" + name + "/proxy_delay", "0"},
		{"net/ipv6/conf/" + name + "/proxy_ndp", "1"},
		{"net/ipv6/conf/" + name + "/disable_ipv6", "0"},
	})
}

// setIPv6 applies an ENI's IPv6 address set beyond its routes and
// neighbours: its source rules, then the proxy entries of every IPv6 link
// of its /64 when the set changed (others answer for its new addresses).
func (f *Fabric) setIPv6(eniID string, link netlink.Link, v6 []netip.Addr) error {
	st := f.enis6[eniID]
	if st == nil {
		st = &eni6{}
		f.enis6[eniID] = st
	}
	if err := f.setSourceRules(link.Attrs().Name, v6, st.prefixes); err != nil {
		return err
	}
	if slices.Equal(st.addrs, v6) {
		return nil
	}
	st.addrs = slices.Clone(v6)
	return f.syncProxies(st.cidr)
}

// forgetIPv6 drops a detached ENI's source rules (rules name their iif
// and outlive the link) and its addresses from its peers' proxy entries.
func (f *Fabric) forgetIPv6(eniID string) error {
	err := f.setSourceRules(LinkName(eniID), nil, nil)
	st := f.enis6[eniID]
	delete(f.enis6, eniID)
	if st != nil {
		err = errors.Join(err, f.syncProxies(st.cidr))
	}
	return err
}

// setSourceRules makes link's source rules exactly one per address of v6
// and one per /80 of prefixes.
//
// Equivalent to: ip -n <sim>-vpc -6 rule add from ADDR iif ve-XXXX lookup main priority 31000
func (f *Fabric) setSourceRules(linkName string, v6 []netip.Addr, prefixes []netip.Prefix) error {
	rules, err := listRules6(f.vpc)
	if err != nil {
		return err
	}
	want := map[netip.Prefix]bool{}
	for _, a := range v6 {
		want[netip.PrefixFrom(a, 128)] = true
	}
	for _, p := range prefixes {
		want[p.Masked()] = true
	}
	for _, r := range rules {
		if r.Priority != ruleSrcPriority || r.IifName != linkName || r.Src == nil {
			continue
		}
		a, ok := netip.AddrFromSlice(r.Src.IP)
		ones, _ := r.Src.Mask.Size()
		if p := netip.PrefixFrom(a, ones); ok && want[p] {
			delete(want, p)
			continue
		}
		if err := f.vpc.RuleDel(&r); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("delete rule from %s iif %s: %w", r.Src, linkName, err)
		}
	}
	for a := range want {
		if err := f.vpc.RuleAdd(sourceRule(linkName, a)); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("rule from %s iif %s: %w", a, linkName, err)
		}
	}
	return nil
}

// syncProxies sets the proxy NDP entries of every attached ENI of the /64
// cidr: its gateway and every address of the other ENIs in it.
//
// Equivalent to: ip -n <sim>-vpc -6 neigh add proxy ADDR dev ve-XXXX
func (f *Fabric) syncProxies(cidr netip.Prefix) error {
	if !cidr.IsValid() {
		return nil
	}
	var errs []error
	for id, st := range f.enis6 {
		if st.cidr != cidr {
			continue
		}
		want := map[netip.Addr]bool{}
		if st.gw.IsValid() {
			want[st.gw] = true
		}
		for other, o := range f.enis6 {
			if other == id {
				continue
			}
			for _, a := range o.addrs {
				if cidr.Contains(a) {
					want[a] = true
				}
			}
		}
		for _, a := range st.addrs {
			delete(want, a) // never answer for an ENI's own address on its link
		}
		errs = append(errs, f.setProxies(id, want))
	}
	return errors.Join(errs...)
}

func (f *Fabric) setProxies(eniID string, want map[netip.Addr]bool) error {
	link, err := f.eniLink(eniID)
	if errors.As(err, &netlink.LinkNotFoundError{}) {
		return nil
	}
	if err != nil {
		return err
	}
	idx := link.Attrs().Index
	have, err := retryDump("list proxy neighbours", func() ([]netlink.Neigh, error) {
		return f.vpc.NeighProxyList(idx, netlink.FAMILY_V6)
	})
	if err != nil {
		return fmt.Errorf("%s: %w", link.Attrs().Name, err)
	}
	for _, n := range have {
		if n.LinkIndex != idx {
			continue // older kernels ignore the dump's ifindex
		}
		a, ok := netip.AddrFromSlice(n.IP)
		if ok && want[a] {
			delete(want, a)
			continue
		}
		if err := f.vpc.NeighDel(&n); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("delete proxy %s dev %s: %w", n.IP, link.Attrs().Name, err)
		}
	}
	for a := range want {
		n := &netlink.Neigh{LinkIndex: idx, Family: netlink.FAMILY_V6, Flags: netlink.NTF_PROXY, IP: a.AsSlice()}
		if err := f.vpc.NeighSet(n); err != nil {
			return fmt.Errorf("proxy %s dev %s: %w", a, link.Attrs().Name, err)
		}
	}
	return nil
}

func listRules6(h *netlink.Handle) ([]netlink.Rule, error) {
	return retryDump("list rules", func() ([]netlink.Rule, error) {
		return h.RuleList(netlink.FAMILY_V6)
	})
}
