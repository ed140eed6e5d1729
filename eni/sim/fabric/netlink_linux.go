package fabric

import (
	"github.com/vishvananda/netlink"

	"github.com/veni-cni/veni/netplumb"
)

// The cloud's goroutines may add links while another lists them; dumps go
// through netplumb.RetryDump, which retries interrupted ones.

func listLinks(h *netlink.Handle) ([]netlink.Link, error) {
	return netplumb.RetryDump("list links", h.LinkList)
}

func listRoutes(h *netlink.Handle, filter *netlink.Route, mask uint64) ([]netlink.Route, error) {
	return netplumb.RetryDump("list routes", func() ([]netlink.Route, error) {
		return h.RouteListFiltered(netlink.FAMILY_V4, filter, mask)
	})
}
