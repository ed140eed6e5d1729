package fastpath

import (
	"net/netip"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// pinnedLinkID returns the id of the link pinned as name, or 0.
func pinnedLinkID(tb testing.TB, d *Datapath, name string) link.ID {
	tb.Helper()
	l, err := link.LoadPinnedLink(filepath.Join(d.PinDir(), linksDir, name), nil)
	if err != nil {
		return 0
	}
	defer l.Close()
	info, err := l.Info()
	if err != nil {
		tb.Fatalf("link info %s: %v", name, err)
	}
	return info.ID
}

// Every CNI ADD calls AttachENI with its own Open: the second call must
// keep the first attachment, and a stale one must be replaced.
func TestDatapath_AttachENI_Idempotent(t *testing.T) {
	n := mustTestNode(t)
	dir := mustPinDir(t)
	eni := n.eni.Attrs().Index
	name := eniLinkName(eni)

	first := mustOpen(t, Options{PinDir: dir})
	mustInNetNS(t, n.ns, func() error { return first.AttachENI(eni) })
	id := pinnedLinkID(t, first, name)
	if id == 0 {
		t.Fatal("no link pinned after AttachENI")
	}

	steps := []struct {
		name    string
		prepare func(d *Datapath) error
		same    bool
	}{
		{"same program from another Open is kept", func(*Datapath) error { return nil }, true},
		{"a different program is replaced", func(d *Datapath) error {
			return inNetNS(n.ns, func() error {
				return d.attach(d.objs.FromPod, eni, ebpf.AttachTCXIngress, name)
			})
		}, false},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			d := mustOpen(t, Options{PinDir: dir})
			if err := step.prepare(d); err != nil {
				t.Fatal(err)
			}
			before := pinnedLinkID(t, d, name)
			mustInNetNS(t, n.ns, func() error { return d.AttachENI(eni) })
			after := pinnedLinkID(t, d, name)
			if (before == after) != step.same {
				t.Errorf("link id %d → %d, want same=%v", before, after, step.same)
			}
			ok, err := d.attachedAs(d.objs.FromEni, eni, name)
			if err != nil || !ok {
				t.Errorf("after AttachENI: attachedAs = %v, %v; want true", ok, err)
			}
		})
	}
	if got, err := first.ENIs(); err != nil || !slices.Equal(got, []int{eni}) {
		t.Errorf("ENIs() = %v, %v; want [%d]", got, err, eni)
	}
	if err := first.DetachENI(eni); err != nil {
		t.Fatal(err)
	}
	if got, err := first.ENIs(); err != nil || len(got) != 0 {
		t.Errorf("ENIs() after DetachENI = %v, %v; want none", got, err)
	}
}

func TestDatapath_Endpoints_Sorted(t *testing.T) {
	n := mustTestNode(t)
	d := mustOpen(t, Options{PinDir: mustPinDir(t)})
	ips := []netip.Addr{netip.MustParseAddr("10.99.0.31"), netip.MustParseAddr("10.99.0.7")}
	for i, ip := range ips {
		p := n.mustPod(t, "vh"+string(rune('a'+i)), ip)
		mustInNetNS(t, n.ns, func() error { return d.AttachPod(n.endpoint(p)) })
	}
	eps, err := d.Endpoints()
	if err != nil {
		t.Fatal(err)
	}
	var got []netip.Addr
	for _, ep := range eps {
		got = append(got, ep.IP)
		if ep.ENITable != eniTable || ep.ENIIfindex != n.eni.Attrs().Index || len(ep.PodMAC) != 6 {
			t.Errorf("endpoint %+v lacks what AttachPod recorded", ep)
		}
	}
	if want := []netip.Addr{ips[1], ips[0]}; !slices.Equal(got, want) {
		t.Errorf("Endpoints() IPs = %v, want %v", got, want)
	}
	if err := d.DetachPod(ips[0]); err != nil {
		t.Fatal(err)
	}
	if eps, _ := d.Endpoints(); len(eps) != 1 || eps[0].IP != ips[1] {
		t.Errorf("Endpoints() after DetachPod = %+v, want only %s", eps, ips[1])
	}
}
