package fastpath

import (
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/veni-cni/veni/internal/testutil"
)

// vethFilters lists the names of the bpf filters on the host veth.
func vethFilters(tb testing.TB, n *testNode, host netlink.Link) []string {
	tb.Helper()
	var names []string
	for _, parent := range []uint32{netlink.HANDLE_MIN_INGRESS, netlink.HANDLE_MIN_EGRESS} {
		filters, err := n.h.FilterList(host, parent)
		if err != nil {
			continue
		}
		for _, f := range filters {
			if bf, ok := f.(*netlink.BpfFilter); ok {
				names = append(names, bf.Name)
			}
		}
	}
	slices.Sort(names)
	return names
}

// Ensure both pod hooks attach the two pod programs and DetachPod removes
// what each one made: filters for tc, link pins for tcx.
func TestAttachPod_Hooks(t *testing.T) {
	testutil.SkipOnOldKernel(t, "6.6", "TCX")
	for _, hook := range []string{PodHookTC, PodHookTCX} {
		t.Run(hook, func(t *testing.T) {
			n := mustTestNode(t)
			dir := mustPinDir(t)
			d := mustOpen(t, Options{PinDir: dir, PodHook: hook})
			pod := n.mustPod(t, "vh"+hook, netip.MustParseAddr("10.9.0.5"))
			mustInNetNS(t, n.ns, func() error { return d.AttachPod(n.endpoint(pod)) })

			from, to := podLinkNames(pod.ip)
			_, pinErr := os.Stat(d.linkPath(from))
			filters := vethFilters(t, n, pod.host)
			switch hook {
			case PodHookTC:
				if want := []string{"veni-from_pod", "veni-to_pod"}; !slices.Equal(filters, want) {
					t.Fatalf("filters %v, want %v", filters, want)
				}
				if pinErr == nil {
					t.Fatal("tc hook pinned a link")
				}
			case PodHookTCX:
				if len(filters) != 0 {
					t.Fatalf("tcx hook left tc filters %v", filters)
				}
				if pinErr != nil {
					t.Fatalf("tcx link not pinned: %v", pinErr)
				}
			}

			mustInNetNS(t, n.ns, func() error { return d.DetachPod(pod.ip) })
			if got := vethFilters(t, n, pod.host); len(got) != 0 {
				t.Fatalf("filters after DetachPod: %v", got)
			}
			for _, name := range []string{from, to} {
				if _, err := os.Stat(d.linkPath(name)); err == nil {
					t.Fatalf("link pin %s after DetachPod", name)
				}
			}
		})
	}
}

// Ensure a foreign filter on the veth survives DetachPod.
func TestDetachPod_LeavesForeignFilters(t *testing.T) {
	n := mustTestNode(t)
	d := mustOpen(t, Options{PinDir: mustPinDir(t)})
	pod := n.mustPod(t, "vhforeign", netip.MustParseAddr("10.9.0.6"))
	mustInNetNS(t, n.ns, func() error { return d.AttachPod(n.endpoint(pod)) })
	foreign := &netlink.BpfFilter{
		FilterAttrs:  netlink.FilterAttrs{LinkIndex: pod.host.Attrs().Index, Parent: netlink.HANDLE_MIN_INGRESS, Handle: 7, Protocol: 3, Priority: 7},
		Fd:           d.objs.FromPod.FD(),
		Name:         "someone-else",
		DirectAction: true,
	}
	if err := n.h.FilterAdd(foreign); err != nil {
		t.Fatal(err)
	}
	mustInNetNS(t, n.ns, func() error { return d.DetachPod(pod.ip) })
	if got := strings.Join(vethFilters(t, n, pod.host), ","); got != "someone-else" {
		t.Fatalf("filters after DetachPod: %q, want only someone-else", got)
	}
}

func TestOpen_PodHookInvalid(t *testing.T) {
	testutil.RequireRoot(t)
	if _, err := Open(Options{PinDir: mustPinDir(t), PodHook: "xdp"}); err == nil || !strings.Contains(err.Error(), "pod hook") {
		t.Fatalf("err %v, want an invalid pod hook error", err)
	}
}

// Ensure Teardown unhooks pods hooked through tc: their filters hold the
// programs without any pin, and would keep redirecting after a node turned
// the fast path off.
func TestTeardown_RemovesPodFilters(t *testing.T) {
	n := mustTestNode(t)
	dir := mustPinDir(t)
	d := mustOpen(t, Options{PinDir: dir})
	pod := n.mustPod(t, "vhteardown", netip.MustParseAddr("10.9.0.7"))
	mustInNetNS(t, n.ns, func() error { return d.AttachPod(n.endpoint(pod)) })
	if got := vethFilters(t, n, pod.host); len(got) != 2 {
		t.Fatalf("filters after AttachPod: %v", got)
	}
	mustInNetNS(t, n.ns, func() error { return Teardown(dir) })
	if got := vethFilters(t, n, pod.host); len(got) != 0 {
		t.Fatalf("filters after Teardown: %v", got)
	}
}
