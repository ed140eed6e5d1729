package fastpath

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// Endpoints returns every recorded endpoint, sorted by IP (IPv4 first): a
// dual-stack pod's IPv6 is an Endpoint of its own, with the same veth. The
// daemon compares them with the store to remove pods whose DEL never came.
func (d *Datapath) Endpoints() ([]Endpoint, error) {
	var out []Endpoint
	for _, f := range d.families() {
		var val fastpathEndpoint
		key := make([]byte, f.endpoints.KeySize())
		iter := f.endpoints.Iterate()
		for iter.Next(&key, &val) {
			out = append(out, endpointFrom(addrFrom(key), val))
		}
		if err := iter.Err(); err != nil {
			return nil, fmt.Errorf("list endpoints: %w", err)
		}
	}
	slices.SortFunc(out, func(a, b Endpoint) int { return a.IP.Compare(b.IP) })
	return out, nil
}

// FlowMaps returns the addresses (both families) that have a flow map,
// sorted: those of the pods and those a released pod left for the
// address's next pod.
func (d *Datapath) FlowMaps() ([]netip.Addr, error) {
	var out []netip.Addr
	for _, f := range d.families() {
		var inner *ebpf.Map
		key := make([]byte, f.flows.KeySize())
		iter := f.flows.Iterate()
		for iter.Next(&key, &inner) {
			inner.Close()
			out = append(out, addrFrom(key))
		}
		if err := iter.Err(); err != nil {
			return nil, fmt.Errorf("list flow maps: %w", err)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out, nil
}

// ENIs returns the ifindexes of the ENIs whose attachment is pinned,
// sorted, including attachments whose link has since disappeared.
func (d *Datapath) ENIs() ([]int, error) {
	entries, err := os.ReadDir(d.linkPath(""))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list pinned links: %w", err)
	}
	var out []int
	for _, e := range entries {
		s, ok := strings.CutPrefix(e.Name(), "eni-")
		if !ok {
			continue
		}
		if i, err := strconv.Atoi(s); err == nil {
			out = append(out, i)
		}
	}
	slices.Sort(out)
	return out, nil
}

// attachedAs reports whether the link pinned as name is attached to
// ifindex and runs a program with the same instructions as prog. Each Open
// loads a new copy of the programs, so they are compared by tag (the hash
// the kernel computes with map references blanked), not by id.
func (d *Datapath) attachedAs(prog *ebpf.Program, ifindex int, name string) (bool, error) {
	l, err := link.LoadPinnedLink(d.linkPath(name), nil)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("load pinned link %s: %w", name, err)
	}
	defer l.Close()
	info, err := l.Info()
	if err != nil {
		return false, fmt.Errorf("link info %s: %w", name, err)
	}
	// A link whose device is gone reports no ifindex.
	if tcx := info.TCX(); tcx == nil || int(tcx.Ifindex) != ifindex {
		return false, nil
	}
	pinned, err := ebpf.NewProgramFromID(info.Program)
	if err != nil {
		return false, fmt.Errorf("program of link %s: %w", name, err)
	}
	defer pinned.Close()
	have, err := pinned.Info()
	if err != nil {
		return false, fmt.Errorf("program info of link %s: %w", name, err)
	}
	want, err := prog.Info()
	if err != nil {
		return false, fmt.Errorf("program info: %w", err)
	}
	return have.Tag != "" && have.Tag == want.Tag, nil
}
