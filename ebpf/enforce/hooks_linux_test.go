package enforce

import (
	"net/netip"
	"os"
	"slices"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"

	"github.com/veni-cni/veni/ebpf/fastpath"
	"github.com/veni-cni/veni/internal/testutil"
)

// vethFilters lists the names of the bpf filters on link's ingress and
// egress, in the order tc runs them (by priority).
func vethFilters(tb testing.TB, h *netlink.Handle, l netlink.Link) (ingress, egress []string) {
	tb.Helper()
	list := func(parent uint32) []string {
		fs, err := h.FilterList(l, parent)
		if err != nil {
			return nil
		}
		slices.SortFunc(fs, func(a, b netlink.Filter) int { return int(a.Attrs().Priority) - int(b.Attrs().Priority) })
		var out []string
		for _, f := range fs {
			if bf, ok := f.(*netlink.BpfFilter); ok {
				out = append(out, bf.Name)
			}
		}
		return out
	}
	return list(netlink.HANDLE_MIN_INGRESS), list(netlink.HANDLE_MIN_EGRESS)
}

// tcxOrder lists the programs TCX runs on ifindex (in the node's
// namespace) at, first to last.
func tcxOrder(tb testing.TB, n *trafficNode, ifindex int, at ebpf.AttachType) []ebpf.ProgramID {
	tb.Helper()
	var r *link.QueryResult
	mustInNetNS(tb, n.ns, func() (err error) {
		r, err = link.QueryPrograms(link.QueryOptions{Target: ifindex, Attach: at})
		return err
	})
	var out []ebpf.ProgramID
	for _, p := range r.Programs {
		out = append(out, p.ID)
	}
	return out
}

func progID(tb testing.TB, p *ebpf.Program) ebpf.ProgramID {
	tb.Helper()
	info, err := p.Info()
	if err != nil {
		tb.Fatal(err)
	}
	id, ok := info.ID()
	if !ok {
		tb.Fatal("no program id")
	}
	return id
}

// TestAttachEndpoint_BeforeFastPath: whichever is attached first, the
// policy programs run before the fast path's on both hooks (tc priority 1
// before 2; TCX head before tail), attaching again changes nothing, the
// endpoint is listed as hooked, and Teardown takes the policy hooks off
// and leaves the fast path's.
func TestAttachEndpoint_BeforeFastPath(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.SkipOnOldKernel(t, "6.6", "TCX")
	for _, hook := range []string{fastpath.PodHookTC, fastpath.PodHookTCX} {
		t.Run(hook, func(t *testing.T) {
			n := mustTrafficNode(t)
			p := n.mustPod(t, "vp", netip.MustParseAddr("10.77.1.1"))
			dir := mustPinDir(t)
			d, err := fastpath.Open(fastpath.Options{PinDir: dir, PodHook: hook})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { d.Close() })
			e := mustOpen(t, Options{PinDir: dir, PodHook: hook})
			mustInNetNS(t, n.ns, func() error { return d.AttachPod(n.fastpathEndpoint(p)) })
			for range 2 {
				mustInNetNS(t, n.ns, func() error { return e.AttachEndpoint(p.key()) })
			}
			ifindex := p.host.Attrs().Index
			switch hook {
			case fastpath.PodHookTC:
				in, out := vethFilters(t, n.h, p.host)
				if want := []string{"venipol-from_pod", "veni-from_pod"}; !slices.Equal(in, want) {
					t.Errorf("ingress filters %v, want %v", in, want)
				}
				if want := []string{"venipol-to_pod", "veni-to_pod"}; !slices.Equal(out, want) {
					t.Errorf("egress filters %v, want %v", out, want)
				}
			case fastpath.PodHookTCX:
				for _, c := range []struct {
					at  ebpf.AttachType
					pol *ebpf.Program
				}{{ebpf.AttachTCXIngress, e.objs.PolFromPod}, {ebpf.AttachTCXEgress, e.objs.PolToPod}} {
					order := tcxOrder(t, n, ifindex, c.at)
					if len(order) != 2 || order[0] != progID(t, c.pol) {
						t.Errorf("%s: programs %v, want 2 with the policy's (%d) first", c.at, order, progID(t, c.pol))
					}
				}
			}
			got := mustEndpoint(t, e, ifindex)
			if !got.Hooked || got.Selected || got.IP != p.ip {
				t.Errorf("endpoint %+v, want hooked, unselected, ip %s", got, p.ip)
			}

			mustInNetNS(t, n.ns, func() error { return Teardown(dir) })
			switch hook {
			case fastpath.PodHookTC:
				in, out := vethFilters(t, n.h, p.host)
				if !slices.Equal(in, []string{"veni-from_pod"}) || !slices.Equal(out, []string{"veni-to_pod"}) {
					t.Errorf("after Teardown: filters %v / %v, want the fast path's alone", in, out)
				}
			case fastpath.PodHookTCX:
				for _, at := range []ebpf.AttachType{ebpf.AttachTCXIngress, ebpf.AttachTCXEgress} {
					if order := tcxOrder(t, n, ifindex, at); len(order) != 1 {
						t.Errorf("after Teardown: %s programs %v, want the fast path's alone", at, order)
					}
				}
			}
			if _, err := os.Stat(e.progPath("pol_from_pod")); err == nil {
				t.Error("policy program pin survived Teardown")
			}
		})
	}
}
