package datapath

import (
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/ebpf/fastpath"
	"github.com/veni-cni/veni/internal/testutil"
	"github.com/veni-cni/veni/netplumb"
	"github.com/veni-cni/veni/store"
)

// podNode is a node namespace with an "ENI" and pods' host veths (veth
// pairs whose other ends stay in the node: no traffic, only records), and
// a pin directory under the real pin root, unique to the test and torn
// down at cleanup.
type podNode struct {
	path  string
	h     *netlink.Handle
	facts store.NodeInfo
	cfg   config.Config
	eni   netplumb.ENILink
	// maxPods is what the node can hold, as the CNI passes it (0: below
	// the default map size).
	maxPods int
}

func mustPodNode(tb testing.TB) *podNode {
	tb.Helper()
	testutil.RequireRoot(tb)
	if err := fastpath.Supported(); err != nil {
		tb.Skipf("no fast path on this kernel: %v", err)
	}
	name, nsh := testutil.NewNetNS(tb)
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(h.Close)
	var b [6]byte
	_, _ = rand.Read(b[:])
	n := &podNode{path: filepath.Join("/run/netns", name), h: h, cfg: config.DefaultConfig()}
	n.cfg.Datapath = config.DatapathEBPF
	n.facts = store.NodeInfo{InstanceID: "i-dptest-" + hex.EncodeToString(b[:])}
	pinDir, err := PinDir(n.facts.InstanceID)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		n.do(tb, func() error { return fastpath.Teardown(pinDir) })
	})
	eni := n.mustVeth(tb, "eni0")
	n.eni = netplumb.ENILink{Name: "eni0", Index: eni.Host.Index, Table: 1001, MAC: eni.Host.MAC}
	return n
}

// do runs fn in the node's namespace, where the fast path resolves
// ifindexes.
func (n *podNode) do(tb testing.TB, fn func() error) {
	tb.Helper()
	if err := ns.WithNetNSPath(n.path, func(ns.NetNS) error { return fn() }); err != nil {
		tb.Fatal(err)
	}
}

// mustVeth makes a veth pair as SetupPod's result would describe it.
func (n *podNode) mustVeth(tb testing.TB, name string) netplumb.PodResult {
	tb.Helper()
	if err := n.h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: name + "p"}); err != nil {
		tb.Fatalf("add veth %s: %v", name, err)
	}
	var res netplumb.PodResult
	for i, nm := range []string{name, name + "p"} {
		l, err := n.h.LinkByName(nm)
		if err != nil {
			tb.Fatal(err)
		}
		if err := n.h.LinkSetUp(l); err != nil {
			tb.Fatal(err)
		}
		itf := netplumb.Interface{Name: nm, Index: l.Attrs().Index, MAC: l.Attrs().HardwareAddr}
		if i == 0 {
			res.Host = itf
		} else {
			res.Pod = itf
		}
	}
	return res
}

func (n *podNode) attach(tb testing.TB, pod Pod) Attach {
	tb.Helper()
	var a Attach
	n.do(tb, func() (err error) {
		a, err = AttachPod(n.cfg, n.facts, nil, n.maxPods, pod)
		return err
	})
	return a
}

func (n *podNode) endpoint(tb testing.TB, ip netip.Addr) (fastpath.Endpoint, bool) {
	tb.Helper()
	pinDir, _ := PinDir(n.facts.InstanceID)
	dp, err := fastpath.Open(fastpath.Options{PinDir: pinDir})
	if err != nil {
		tb.Fatal(err)
	}
	defer dp.Close()
	ep, ok, err := dp.Endpoint(ip)
	if err != nil {
		tb.Fatal(err)
	}
	return ep, ok
}

// A release that comes after the pod's address went to a new pod must
// leave the new pod's endpoint alone: DetachPod matches the host veth, and
// an IP-only detach stripped the new pod (defect 1).
func TestDetachPod_StaleLeavesNewer(t *testing.T) {
	n := mustPodNode(t)
	ip := netip.MustParseAddr("10.77.0.5")
	oldLinks := n.mustVeth(t, "vhold")
	if a := n.attach(t, Pod{IP: ip, Links: oldLinks, ENI: n.eni}); !a.Fast {
		t.Fatalf("AttachPod old = %+v, want the fast path", a)
	}
	// The new pod gets the address; the old one's veth is still there
	// (the release runs its steps in any order).
	newLinks := n.mustVeth(t, "vhnew")
	if a := n.attach(t, Pod{IP: ip, Links: newLinks, ENI: n.eni}); !a.Fast {
		t.Fatalf("AttachPod new = %+v, want the fast path", a)
	}
	steps := []struct {
		name     string
		before   func()
		ifindex  int
		wantHost int // 0: the endpoint is gone
	}{
		{"old pod by its veth", func() {}, oldLinks.Host.Index, newLinks.Host.Index},
		{"old pod, veth deleted, unknown", func() {
			l, _ := n.h.LinkByName("vhold")
			_ = n.h.LinkDel(l)
		}, 0, newLinks.Host.Index},
		{"new pod by its veth", func() {}, newLinks.Host.Index, 0},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			st.before()
			n.do(t, func() error { return DetachPod(n.facts.InstanceID, ip, st.ifindex) })
			ep, ok := n.endpoint(t, ip)
			switch {
			case st.wantHost == 0 && ok:
				t.Fatalf("endpoint %+v survived its own pod's release", ep)
			case st.wantHost != 0 && (!ok || ep.HostIfindex != st.wantHost):
				t.Fatalf("endpoint after a stale release: %+v (present %v), want it on ifindex %d", ep, ok, st.wantHost)
			}
		})
	}
}

// A full endpoint map does not fail the ADD: the pod stays on the plain
// datapath, recorded as a plain pod, says why, checks fine, and its
// release removes the record (defect 13).
func TestAttachPod_FullMapFallsBack(t *testing.T) {
	n := mustPodNode(t)
	pinDir, _ := PinDir(n.facts.InstanceID)
	// Maps are sized when they are made: a node whose maps hold one pod.
	tiny, err := fastpath.Open(fastpath.Options{PinDir: pinDir, MaxPods: 1})
	if err != nil {
		t.Fatal(err)
	}
	tiny.Close()

	first := Pod{IP: netip.MustParseAddr("10.77.0.11"), Links: n.mustVeth(t, "vhfirst"), ENI: n.eni}
	second := Pod{IP: netip.MustParseAddr("10.77.0.12"), Links: n.mustVeth(t, "vhsecond"), ENI: n.eni}
	if a := n.attach(t, first); !a.Fast || a.Fallback {
		t.Fatalf("AttachPod first = %+v, want the fast path", a)
	}
	a := n.attach(t, second)
	if a.Fast || !a.Fallback || !strings.Contains(a.Reason, "full") {
		t.Fatalf("AttachPod second = %+v, want a fallback saying the map is full", a)
	}
	dp, err := fastpath.Open(fastpath.Options{PinDir: pinDir})
	if err != nil {
		t.Fatal(err)
	}
	defer dp.Close()
	if pp, err := dp.PlainPods(); err != nil || len(pp) != 1 || pp[0].IP != second.IP {
		t.Fatalf("plain pods = %+v, %v; want %s", pp, err, second.IP)
	}
	for _, p := range []Pod{first, second} {
		if err := CheckPod(n.cfg, n.facts.InstanceID, p); err != nil {
			t.Errorf("CheckPod %s: %v", p.IP, err)
		}
	}
	n.do(t, func() error { return DetachPod(n.facts.InstanceID, second.IP, second.Links.Host.Index) })
	if pp, err := dp.PlainPods(); err != nil || len(pp) != 0 {
		t.Fatalf("plain pods after release = %+v, %v", pp, err)
	}
	if err := CheckPod(n.cfg, n.facts.InstanceID, second); err == nil || !strings.Contains(err.Error(), "no endpoint") {
		t.Fatalf("CheckPod after release = %v, want no endpoint", err)
	}
}

func TestAttachPod_PlainNodeDoesNothing(t *testing.T) {
	n := mustPodNode(t)
	n.cfg.Datapath = config.DatapathPlain
	if a := n.attach(t, Pod{IP: netip.MustParseAddr("10.77.0.21"), Links: n.mustVeth(t, "vhplain"), ENI: n.eni}); a.Fast || a.Fallback {
		t.Fatalf("AttachPod on a plain node = %+v, want nothing", a)
	}
}

// Ensure the ADD that makes the fast path's maps sizes them for what the
// node can hold: a prefix-mode node of 7 secondary ENIs with 29 /28s
// each may hold 3,248 pods, more than the default map; a small node gets
// the default.
func TestAttachPod_SizesMapsForTheNode(t *testing.T) {
	for _, tc := range []struct {
		nodeMaxPods, want int
	}{
		{nodeMaxPods: 7 * 29 * 16, want: 3248},
		{nodeMaxPods: 10, want: fastpath.DefaultMaxPods},
	} {
		n := mustPodNode(t)
		n.maxPods = tc.nodeMaxPods
		pod := Pod{IP: netip.MustParseAddr("10.77.0.21"), Links: n.mustVeth(t, "vhsize"), ENI: n.eni}
		if a := n.attach(t, pod); !a.Fast {
			t.Fatalf("AttachPod = %+v, want the fast path", a)
		}
		pinDir, _ := PinDir(n.facts.InstanceID)
		dp, err := fastpath.Open(fastpath.Options{PinDir: pinDir})
		if err != nil {
			t.Fatal(err)
		}
		got := dp.MaxPods()
		dp.Close()
		if got != tc.want {
			t.Errorf("node of %d pods: endpoint map holds %d, want %d", tc.nodeMaxPods, got, tc.want)
		}
	}
}

// A dual-stack pod gets an endpoint for each address on its one veth,
// checks fine, and its release by the IPv4 address (what the release
// knows) removes both; a pod whose maps are full is a plain pod at both
// addresses.
func TestAttachPod_DualStack(t *testing.T) {
	n := mustPodNode(t)
	n.cfg.IPStack = config.IPStackDual
	pinDir, _ := PinDir(n.facts.InstanceID)
	tiny, err := fastpath.Open(fastpath.Options{PinDir: pinDir, MaxPods: 1})
	if err != nil {
		t.Fatal(err)
	}
	tiny.Close()
	first := Pod{IP: netip.MustParseAddr("10.77.0.31"), IP6: netip.MustParseAddr("fd00:77::31"), Links: n.mustVeth(t, "vhds1"), ENI: n.eni}
	second := Pod{IP: netip.MustParseAddr("10.77.0.32"), IP6: netip.MustParseAddr("fd00:77::32"), Links: n.mustVeth(t, "vhds2"), ENI: n.eni}
	if a := n.attach(t, first); !a.Fast {
		t.Fatalf("AttachPod = %+v, want the fast path", a)
	}
	for _, ip := range []netip.Addr{first.IP, first.IP6} {
		if ep, ok := n.endpoint(t, ip); !ok || ep.HostIfindex != first.Links.Host.Index {
			t.Fatalf("endpoint of %s = %+v (present %v), want it on the pod's veth", ip, ep, ok)
		}
	}
	if err := CheckPod(n.cfg, n.facts.InstanceID, first); err != nil {
		t.Errorf("CheckPod: %v", err)
	}
	if a := n.attach(t, second); a.Fast || !a.Fallback {
		t.Fatalf("AttachPod into full maps = %+v, want a fallback", a)
	}
	dp, err := fastpath.Open(fastpath.Options{PinDir: pinDir})
	if err != nil {
		t.Fatal(err)
	}
	defer dp.Close()
	if pp, err := dp.PlainPods(); err != nil || len(pp) != 2 || pp[0].IP != second.IP || pp[1].IP != second.IP6 {
		t.Fatalf("plain pods = %+v, %v; want both of %s's addresses", pp, err, second.IP)
	}
	if err := CheckPod(n.cfg, n.facts.InstanceID, second); err != nil {
		t.Errorf("CheckPod of the plain pod: %v", err)
	}
	for _, p := range []Pod{first, second} {
		n.do(t, func() error { return DetachPod(n.facts.InstanceID, p.IP, p.Links.Host.Index) })
	}
	if eps, err := dp.Endpoints(); err != nil || len(eps) != 0 {
		t.Errorf("endpoints after release = %+v, %v; want none", eps, err)
	}
	if pp, err := dp.PlainPods(); err != nil || len(pp) != 0 {
		t.Errorf("plain pods after release = %+v, %v; want none", pp, err)
	}
}
