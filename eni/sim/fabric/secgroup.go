package fabric

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/veni-cni/veni/eni/sim"
)

// Security groups are enforced in the VPC namespace by one nftables table,
// "inet veni_sg" (both families), rebuilt whole (in one nft transaction)
// from each sim.SecurityPolicy:
//
//	chain forward: hook forward
//	    ct state established,related accept   (groups are stateful)
//	    jump from_eni                          (the sender's egress)
//	    jump to_eni                            (the receiver's ingress)
//	chain from_eni:
//	    iifname . meta mark vmap { ve-T . MARK : goto e2_out, ... }   (members)
//	    iifname vmap { ve-A : goto e0_out, ... }
//	chain to_eni:
//	    ip daddr vmap { MEMBER-IP : goto e2_in, ... }   (members; ip6 too)
//	    oifname vmap { ve-B : goto e1_in, ... }
//	chain eN_out: the ENI's egress rules, best priority first, drop before
//	    accept on a tie; accept is "return" (on to the receiver's ingress),
//	    drop is drop; no match returns (egress is open by default) but
//	    for an ENI in enterprise groups, which drops
//	chain eN_in: the ENI's ingress rules the same way (accept accepts);
//	    then "ip saddr @gK accept" and "ip6 saddr @gK_6 accept" for each
//	    normal group K of the ENI (its members reach each other); then drop
//	set gK, gK_6: the IPv4 and IPv6 addresses of group K's members
//
// A rule's peer is of one family: an IPv4 CIDR (SourceCidrIp, DestCidrIp)
// matches IPv4 only, an IPv6 CIDR (Ipv6SourceCidrIp, Ipv6DestCidrIp) IPv6
// only, each /0 included ("meta nfproto"); a group peer matches its
// members at either family, in a line per family (ICMP is IPv4's, ICMPv6
// IPv6's). So an IPv4 rule never opens IPv6 and the reverse, as on ECS.
//
// A trunk member has no link of its own: its traffic rides its trunk's
// link. The trunk programs (trunk_linux.go) pop a member's tag and mark
// its frames with memberMark(VLAN ID), so what a member sends is told
// from what its trunk sends by the mark, and what it receives by its
// addresses; both dispatches come before the trunk link's own, so a
// member is judged by its own groups only, the trunk by its. A goto's
// chain returns to forward, so an accepted egress goes on to ingress.
//
// Rules of all the ENI's groups are merged before sorting (secgroup.go in
// package sim says why). Only forwarded traffic is filtered: what a node
// sends to the VPC itself (OpenAPI, metadata, gateways) is not, as on the
// cloud. Replacing the table keeps conntrack, so a rule change applies to
// new connections only.

// sgTable is the nftables table of the security groups, family inet.
const sgTable = "veni_sg"

// memberMarkBase is the high bits of every member mark; the low 12 bits
// are the VLAN ID.
const memberMarkBase = 0x7e000000

// memberMark is the skb->mark the trunk programs give a member's frames
// (VLAN ID vlan) once its tag is popped. Marks repeat across trunks; the
// security groups match a mark together with the trunk's link.
func memberMark(vlan int) uint32 { return memberMarkBase | uint32(vlan)&0xfff }

// renderSecurityPolicy returns the nft script that replaces the table
// with p. linkName maps an ENI id to its VPC-side link.
func renderSecurityPolicy(p sim.SecurityPolicy, linkName func(string) string) string {
	var b strings.Builder
	// Declaring the table first makes the delete valid when it is absent.
	fmt.Fprintf(&b, "table inet %s\ndelete table inet %s\ntable inet %s {\n", sgTable, sgTable, sgTable)
	setOf := map[string]string{}
	groups := map[string]sim.SecurityGroup{}
	for i, g := range p.Groups {
		name := fmt.Sprintf("g%d", i)
		setOf[g.ID] = name
		groups[g.ID] = g
		for _, v4 := range []bool{true, false} {
			set, typ := name, "ipv4_addr"
			if !v4 {
				set, typ = name+"_6", "ipv6_addr"
			}
			fmt.Fprintf(&b, "\tset %s {\n\t\ttype %s\n\t\tcomment %q\n", set, typ, g.ID)
			elems := addrsOf(g.Members, v4)
			if !v4 && len(g.MemberPrefixes) > 0 {
				// A delegated /80 is one interval element; the cloud never
				// carves one holding a member's address, and auto-merge
				// takes a /80 two of the group's ENIs list.
				b.WriteString("\t\tflags interval\n\t\tauto-merge\n")
				for _, p := range g.MemberPrefixes {
					elems = append(elems, p.Masked().String())
				}
			}
			if len(elems) > 0 {
				fmt.Fprintf(&b, "\t\telements = { %s }\n", strings.Join(elems, ", "))
			}
			b.WriteString("\t}\n")
		}
	}
	var outMap, inMap, memberOut, memberIn, memberIn6 []string
	memberAddr := map[netip.Addr]bool{}
	var chains strings.Builder
	for i, e := range p.ENIs {
		if len(e.Groups) == 0 {
			continue
		}
		out, in := fmt.Sprintf("e%d_out", i), fmt.Sprintf("e%d_in", i)
		if e.Trunk != "" {
			memberOut = append(memberOut, fmt.Sprintf("%q . 0x%08x : goto %s", linkName(e.Trunk), memberMark(e.VLAN), out))
			for _, a := range e.Addrs {
				if a = a.Unmap(); !memberAddr[a] {
					memberAddr[a] = true
					if a.Is4() {
						memberIn = append(memberIn, fmt.Sprintf("%s : goto %s", a, in))
					} else {
						memberIn6 = append(memberIn6, fmt.Sprintf("%s : goto %s", a, in))
					}
				}
			}
		} else {
			link := linkName(e.ENIID)
			outMap = append(outMap, fmt.Sprintf("%q : goto %s", link, out))
			inMap = append(inMap, fmt.Sprintf("%q : goto %s", link, in))
		}
		var egress, ingress []sim.SecurityRule
		for _, id := range e.Groups {
			for _, r := range groups[id].Rules {
				if r.Egress {
					egress = append(egress, r)
				} else {
					ingress = append(ingress, r)
				}
			}
		}
		fmt.Fprintf(&chains, "\tchain %s {\n\t\tcomment %q\n", out, e.ENIID+" egress")
		for _, r := range sortRules(egress) {
			verdict := "return"
			if r.Drop {
				verdict = "drop"
			}
			for _, line := range ruleLines(r, setOf) {
				fmt.Fprintf(&chains, "\t\t%s%s\n", line, verdict)
			}
		}
		if enterpriseOnly(e.Groups, groups) {
			// Enterprise groups deny egress too unless a rule allows it.
			chains.WriteString("\t\tdrop\n")
		}
		fmt.Fprintf(&chains, "\t}\n\tchain %s {\n\t\tcomment %q\n", in, e.ENIID+" ingress")
		for _, r := range sortRules(ingress) {
			verdict := "accept"
			if r.Drop {
				verdict = "drop"
			}
			for _, line := range ruleLines(r, setOf) {
				fmt.Fprintf(&chains, "\t\t%s%s\n", line, verdict)
			}
		}
		for _, id := range e.Groups {
			if g, ok := groups[id]; ok && !g.Enterprise {
				fmt.Fprintf(&chains, "\t\tip saddr @%s accept comment %q\n", setOf[id], "same group "+id)
				fmt.Fprintf(&chains, "\t\tip6 saddr @%s_6 accept comment %q\n", setOf[id], "same group "+id)
			}
		}
		chains.WriteString("\t\tdrop\n\t}\n")
	}
	b.WriteString("\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n")
	b.WriteString("\t\tct state established,related accept\n")
	b.WriteString("\t\tjump from_eni\n\t\tjump to_eni\n\t}\n")
	b.WriteString("\tchain from_eni {\n")
	if len(memberOut) > 0 {
		fmt.Fprintf(&b, "\t\tiifname . meta mark vmap { %s }\n", strings.Join(memberOut, ", "))
	}
	if len(outMap) > 0 {
		fmt.Fprintf(&b, "\t\tiifname vmap { %s }\n", strings.Join(outMap, ", "))
	}
	b.WriteString("\t}\n\tchain to_eni {\n")
	if len(memberIn) > 0 {
		fmt.Fprintf(&b, "\t\tip daddr vmap { %s }\n", strings.Join(memberIn, ", "))
	}
	if len(memberIn6) > 0 {
		fmt.Fprintf(&b, "\t\tip6 daddr vmap { %s }\n", strings.Join(memberIn6, ", "))
	}
	if len(inMap) > 0 {
		fmt.Fprintf(&b, "\t\toifname vmap { %s }\n", strings.Join(inMap, ", "))
	}
	b.WriteString("\t}\n")
	b.WriteString(chains.String())
	b.WriteString("}\n")
	return b.String()
}

// enterpriseOnly reports whether every group of an ENI is an enterprise
// group (ECS keeps one ENI's groups of one type).
func enterpriseOnly(ids []string, groups map[string]sim.SecurityGroup) bool {
	for _, id := range ids {
		if g, ok := groups[id]; !ok || !g.Enterprise {
			return false
		}
	}
	return len(ids) > 0
}

// sortRules orders rules as the cloud evaluates them: priority 1 first,
// and on equal priority drop before accept. The sort is stable, so rules
// otherwise keep the order they were authorized in.
func sortRules(rs []sim.SecurityRule) []sim.SecurityRule {
	rs = slices.Clone(rs)
	slices.SortStableFunc(rs, func(a, b sim.SecurityRule) int {
		if c := cmp.Compare(a.Priority, b.Priority); c != 0 {
			return c
		}
		switch {
		case a.Drop && !b.Drop:
			return -1
		case !a.Drop && b.Drop:
			return 1
		}
		return 0
	})
	return rs
}

// addrsOf returns the addresses of one family among addrs, once each, as
// nft set elements.
func addrsOf(addrs []netip.Addr, v4 bool) []string {
	var out []string
	seen := map[netip.Addr]bool{}
	for _, a := range addrs {
		if a = a.Unmap(); a.Is4() == v4 && !seen[a] {
			seen[a] = true
			out = append(out, a.String())
		}
	}
	return out
}

// ruleLines renders r's match (without verdict, each ending in a space),
// one line per family it covers: a CIDR's family, or both for a group
// peer (its members' addresses of each family), ICMP only IPv4 and
// ICMPv6 only IPv6. A rule whose peer group is not in the policy
// (another VPC's) matches nothing: no line.
func ruleLines(r sim.SecurityRule, setOf map[string]string) []string {
	dir := "saddr"
	if r.Egress {
		dir = "daddr"
	}
	var proto string
	switch r.Protocol {
	case "tcp", "udp":
		if r.PortFrom == r.PortTo {
			proto = fmt.Sprintf("%s dport %d ", r.Protocol, r.PortFrom)
		} else {
			proto = fmt.Sprintf("%s dport %d-%d ", r.Protocol, r.PortFrom, r.PortTo)
		}
	case "icmp", "icmpv6":
		proto = "meta l4proto " + r.Protocol + " "
	}
	families := []bool{true, false} // IPv4, IPv6
	switch {
	case r.Protocol == "icmp":
		families = []bool{true}
	case r.Protocol == "icmpv6":
		families = []bool{false}
	}
	var out []string
	for _, v4 := range families {
		ip, set, nfproto := "ip", "", "ipv4"
		if !v4 {
			ip, nfproto = "ip6", "ipv6"
		}
		var peer string
		switch {
		case r.PeerGroup != "":
			name, ok := setOf[r.PeerGroup]
			if !ok {
				return nil
			}
			if set = name; !v4 {
				set += "_6"
			}
			peer = fmt.Sprintf("%s %s @%s ", ip, dir, set)
		case r.PeerCIDR.IsValid():
			if r.PeerCIDR.Addr().Unmap().Is4() != v4 {
				continue
			}
			if r.PeerCIDR.Bits() > 0 {
				peer = fmt.Sprintf("%s %s %s ", ip, dir, r.PeerCIDR.Masked())
			} else {
				peer = "meta nfproto " + nfproto + " "
			}
		default:
			peer = "meta nfproto " + nfproto + " "
		}
		out = append(out, peer+proto)
	}
	return out
}
