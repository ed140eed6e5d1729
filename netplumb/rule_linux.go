package netplumb

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// podRules are the two rules SetupPod installs for a pod address:
//
//	ip rule add to $ip/32 lookup main prio 512
//	ip rule add from $ip/32 lookup $table prio 2048
//
// (for an IPv6, the same with ip -6 and /128).
func podRules(ip netip.Addr, table int) []*netlink.Rule {
	host := prefixToIPNet(netip.PrefixFrom(ip, ip.BitLen()))
	to := netlink.NewRule()
	to.Priority = PrioToPod
	to.Dst = host
	to.Table = unix.RT_TABLE_MAIN
	from := netlink.NewRule()
	from.Priority = PrioFromPod
	from.Src = host
	from.Table = table
	return []*netlink.Rule{to, from}
}

// sameSelector reports whether two rules select the same packets (same
// priority, source and destination), whatever table they point at.
func sameSelector(a, b *netlink.Rule) bool {
	return a.Priority == b.Priority && ipNetEqual(a.Src, b.Src) && ipNetEqual(a.Dst, b.Dst)
}

func ipNetEqual(a, b *net.IPNet) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.String() == b.String()
}

// ensureRule adds want unless a rule with the same selector and table is
// among rules (the caller's dump: one per ADD, however many rules it
// ensures, since the dump grows with the node's pods), and reports whether
// it added one. A rule with the same selector but another table is stale
// (the address moved to another ENI) and is replaced: the kernel has no rule
// replace, and two such rules would make the older one win.
func ensureRule(h *netlink.Handle, rules []netlink.Rule, want *netlink.Rule) (added bool, err error) {
	for i := range rules {
		r := &rules[i]
		if !sameSelector(r, want) {
			continue
		}
		if r.Table == want.Table {
			return false, nil
		}
		if err := ignoreNotExist(h.RuleDel(selectorRule(r, r.Table))); err != nil {
			return false, fmt.Errorf("delete stale rule %s: %w", ruleString(r), err)
		}
	}
	if err := h.RuleAdd(want); err != nil {
		return false, fmt.Errorf("add rule %s: %w", ruleString(want), err)
	}
	return true, nil
}

// deleteRules removes every rule with the selectors of want, whichever
// table they point at (the ENI may be gone and its table with it).
func deleteRules(h *netlink.Handle, want []*netlink.Rule) error {
	rules, err := ruleListOf(h, want)
	if err != nil {
		return err
	}
	for i := range rules {
		r := &rules[i]
		for _, w := range want {
			if !sameSelector(r, w) {
				continue
			}
			if err := ignoreNotExist(h.RuleDel(selectorRule(r, r.Table))); err != nil {
				return fmt.Errorf("delete rule %s: %w", ruleString(r), err)
			}
		}
	}
	return nil
}

// findRule reports whether a rule with want's selector and table exists.
func findRule(h *netlink.Handle, want *netlink.Rule) (bool, error) {
	rules, err := ruleListOf(h, []*netlink.Rule{want})
	if err != nil {
		return false, err
	}
	for i := range rules {
		if sameSelector(&rules[i], want) && rules[i].Table == want.Table {
			return true, nil
		}
	}
	return false, nil
}

// selectorRule rebuilds a dumped rule from the fields veni sets. Deleting
// the dumped value itself would send back every attribute the kernel
// reported, some with values RuleDel encodes differently.
func selectorRule(r *netlink.Rule, table int) *netlink.Rule {
	d := netlink.NewRule()
	d.Priority = r.Priority
	d.Src = r.Src
	d.Dst = r.Dst
	d.Table = table
	return d
}

func ruleString(r *netlink.Rule) string {
	s := fmt.Sprintf("prio %d", r.Priority)
	if r.Src != nil {
		s += " from " + r.Src.String()
	}
	if r.Dst != nil {
		s += " to " + r.Dst.String()
	}
	return s + fmt.Sprintf(" lookup %d", r.Table)
}
