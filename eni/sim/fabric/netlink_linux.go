package fabric

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
)

// maxDumpAttempts bounds retries of a dump the kernel reported as
// interrupted (NLM_F_DUMP_INTR: the table changed while it was read), as
// containernetworking/plugins' netlinksafe does.
const maxDumpAttempts = 5

// retryDump runs a netlink dump until it is not interrupted. The cloud's
// goroutines may add links while another lists them. Since netlink v1.2 an
// interrupted dump returns partial results with ErrDumpInterrupted; acting
// on a partial list could miss a link or route, so the error wins after the
// last attempt. The fabric keeps its own copy rather than borrow veni's
// (package netplumb): the simulator must not depend on the code it tests.
func retryDump[T any](what string, dump func() ([]T, error)) ([]T, error) {
	var (
		out []T
		err error
	)
	for range maxDumpAttempts {
		if out, err = dump(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

func listLinks(h *netlink.Handle) ([]netlink.Link, error) {
	return retryDump("list links", h.LinkList)
}

// listRoutes lists the routes of both families that match filter.
func listRoutes(h *netlink.Handle, filter *netlink.Route, mask uint64) ([]netlink.Route, error) {
	var out []netlink.Route
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rs, err := retryDump("list routes", func() ([]netlink.Route, error) {
			return h.RouteListFiltered(fam, filter, mask)
		})
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
	}
	return out, nil
}

// listNeighs lists the neighbour entries of both families on a link.
func listNeighs(h *netlink.Handle, linkIndex int) ([]netlink.Neigh, error) {
	var out []netlink.Neigh
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		ns, err := retryDump("list neighbours", func() ([]netlink.Neigh, error) {
			return h.NeighList(linkIndex, fam)
		})
		if err != nil {
			return nil, err
		}
		out = append(out, ns...)
	}
	return out, nil
}
