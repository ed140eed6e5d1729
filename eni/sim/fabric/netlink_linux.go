package fabric

import (
	"errors"

	"github.com/vishvananda/netlink"
)

// dumpAttempts bounds retries of a netlink dump the kernel interrupted
// because the table changed under it (NLM_F_DUMP_INTR); the cloud's
// goroutines may be adding links while another lists them.
const dumpAttempts = 5

func listLinks(h *netlink.Handle) (links []netlink.Link, err error) {
	for range dumpAttempts {
		if links, err = h.LinkList(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			return links, err
		}
	}
	return links, err
}

func listRoutes(h *netlink.Handle, filter *netlink.Route, mask uint64) (routes []netlink.Route, err error) {
	for range dumpAttempts {
		if routes, err = h.RouteListFiltered(netlink.FAMILY_V4, filter, mask); !errors.Is(err, netlink.ErrDumpInterrupted) {
			return routes, err
		}
	}
	return routes, err
}
