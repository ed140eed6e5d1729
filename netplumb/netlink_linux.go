package netplumb

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	"github.com/vishvananda/netlink"
)

// maxDumpAttempts bounds retries of a dump the kernel reported as
// interrupted (NLM_F_DUMP_INTR: the table changed while it was read). Five
// is what containernetworking/plugins pkg/netlinksafe uses.
const maxDumpAttempts = 5

// retryDump runs a netlink dump until it is not interrupted; every dump of
// this package goes through it. Since netlink v1.2 an interrupted dump returns partial results together with
// ErrDumpInterrupted; acting on a partial list could delete or miss a rule,
// so after the last attempt the error is returned rather than the list.
func retryDump[T any](what string, dump func() ([]T, error)) ([]T, error) {
	var (
		out []T
		err error
	)
	for range maxDumpAttempts {
		out, err = dump()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if errors.Is(err, netlink.ErrDumpInterrupted) {
		return nil, fmt.Errorf("%s: %w (the table kept changing during %d dumps)", what, err, maxDumpAttempts)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// linkList is "ip link show".
func linkList(h *netlink.Handle) ([]netlink.Link, error) {
	return retryDump("list links", h.LinkList)
}

// linkByName is "ip link show dev $name". A missing link wraps
// ErrLinkNotFound. LinkByName falls back to a dump on old kernels, so it is
// retried like one.
func linkByName(h *netlink.Handle, name string) (netlink.Link, error) {
	var (
		l   netlink.Link
		err error
	)
	for range maxDumpAttempts {
		l, err = h.LinkByName(name)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if IsLinkNotFound(err) {
		return nil, fmt.Errorf("link %s: %w", name, ErrLinkNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("link %s: %w", name, err)
	}
	return l, nil
}

// addrList is "ip -4 addr show dev $link".
func addrList(h *netlink.Handle, link netlink.Link) ([]netlink.Addr, error) {
	return addrListFamily(h, link, netlink.FAMILY_V4)
}

func addrListFamily(h *netlink.Handle, link netlink.Link, family int) ([]netlink.Addr, error) {
	return retryDump("list addresses of "+link.Attrs().Name, func() ([]netlink.Addr, error) {
		return h.AddrList(link, family)
	})
}

// routeList is "ip -4 route show" restricted by filter and mask
// (netlink.RT_FILTER_*). Without RT_FILTER_TABLE only the main table is
// listed.
func routeList(h *netlink.Handle, filter *netlink.Route, mask uint64) ([]netlink.Route, error) {
	return routeListFamily(h, netlink.FAMILY_V4, filter, mask)
}

// routeListFamily is routeList for family (netlink.FAMILY_V4 or _V6).
func routeListFamily(h *netlink.Handle, family int, filter *netlink.Route, mask uint64) ([]netlink.Route, error) {
	return retryDump("list routes", func() ([]netlink.Route, error) {
		return h.RouteListFiltered(family, filter, mask)
	})
}

// familyOf is the netlink family of an address.
func familyOf(a netip.Addr) int {
	if a.Is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

// ruleListOf is "ip rule show" for the families of the rules in want
// (their Src or Dst): "ip -4 rule show", plus "ip -6 rule show" when one
// is IPv6.
func ruleListOf(h *netlink.Handle, want []*netlink.Rule) ([]netlink.Rule, error) {
	var v4, v6 bool
	for _, r := range want {
		n := r.Src
		if n == nil {
			n = r.Dst
		}
		if n != nil && n.IP.To4() == nil {
			v6 = true
		} else {
			v4 = true
		}
	}
	var out []netlink.Rule
	if v4 {
		rules, err := ruleList(h)
		if err != nil {
			return nil, err
		}
		out = rules
	}
	if v6 {
		rules, err := retryDump("list rules", func() ([]netlink.Rule, error) {
			return h.RuleList(netlink.FAMILY_V6)
		})
		if err != nil {
			return nil, err
		}
		out = append(out, rules...)
	}
	return out, nil
}

// ruleList is "ip -4 rule show".
func ruleList(h *netlink.Handle) ([]netlink.Rule, error) {
	return retryDump("list rules", func() ([]netlink.Rule, error) {
		return h.RuleList(netlink.FAMILY_V4)
	})
}

// neighList is "ip neigh show dev $index" for one family.
func neighList(h *netlink.Handle, linkIndex, family int) ([]netlink.Neigh, error) {
	return retryDump("list neighbours", func() ([]netlink.Neigh, error) {
		return h.NeighList(linkIndex, family)
	})
}

// IsLinkNotFound reports whether err means a link does not exist, whichever
// way the kernel or the netlink library said it (LinkNotFoundError, ENODEV,
// ErrLinkNotFound).
func IsLinkNotFound(err error) bool {
	if err == nil {
		return false
	}
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, ErrLinkNotFound) || errors.Is(err, syscall.ENODEV)
}

// ignoreNotExist drops the errors a delete returns when the object is
// already gone, so teardown stays idempotent.
func ignoreNotExist(err error) error {
	if err == nil || IsLinkNotFound(err) || errors.Is(err, syscall.ESRCH) || errors.Is(err, syscall.ENOENT) {
		return nil
	}
	return err
}
