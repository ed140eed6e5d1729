package daemon

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/ebpf/datapath"
	"github.com/veni-cni/veni/ebpf/fastpath"
	"github.com/veni-cni/veni/internal/testutil"
	"github.com/veni-cni/veni/node"
	"github.com/veni-cni/veni/store"
)

// mustFastDaemon returns a daemon over a fresh store, its node's instance
// id unique to the test so its pin dir (under the real pin root, where the
// daemon looks) is the test's alone and torn down at cleanup.
func mustFastDaemon(tb testing.TB, mode string) (*Daemon, string) {
	tb.Helper()
	testutil.RequireRoot(tb)
	if err := fastpath.Supported(); err != nil {
		testutil.Skipf(tb, "no fast path on this kernel: %v", err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	id := "i-daemontest-" + hex.EncodeToString(b[:])
	pinDir, err := datapath.PinDir(id)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := fastpath.Teardown(pinDir); err != nil {
			tb.Errorf("teardown %s: %v", pinDir, err)
		}
	})
	cfg := config.DefaultConfig()
	cfg.Datapath = mode
	env := &node.Env{Config: cfg, Store: store.File{Path: filepath.Join(tb.TempDir(), "veni.db")}}
	d := New(env, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	tb.Cleanup(d.stopFastPath)
	return d, id
}

// mustVeth creates a veth pair in h's namespace and returns the endpoint a
// pod behind its first end would have.
func mustVeth(tb testing.TB, h *netlink.Handle, name string, ip netip.Addr) fastpath.Endpoint {
	tb.Helper()
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: name + "p"}); err != nil {
		tb.Fatalf("add veth %s: %v", name, err)
	}
	host, err := h.LinkByName(name)
	if err != nil {
		tb.Fatal(err)
	}
	peer, err := h.LinkByName(name + "p")
	if err != nil {
		tb.Fatal(err)
	}
	return fastpath.Endpoint{
		IP: ip, HostIfindex: host.Attrs().Index, HostMAC: host.Attrs().HardwareAddr,
		PodMAC: peer.Attrs().HardwareAddr, ENIIfindex: peer.Attrs().Index, ENITable: 1001,
	}
}

// mustBind records ip as bound to a pod in the store.
func mustBind(tb testing.TB, db store.File, ip netip.Addr) {
	tb.Helper()
	key := store.NewOwnerKey("c-"+ip.String(), "eth0")
	err := db.Update(func(tx *store.WriteTx) error {
		if err := tx.PutENI(store.ENI{ID: "eni-1", MAC: "02:00:00:00:00:01", State: store.ENIReady}); err != nil {
			return err
		}
		if err := tx.PutIP(store.IP{Addr: ip, ENIID: "eni-1", State: store.IPBound, Owner: key}); err != nil {
			return err
		}
		return tx.PutAllocation(store.Allocation{ContainerID: "c-" + ip.String(), IfName: "eth0", IP: ip, ENIID: "eni-1", State: store.IPBound})
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// hooked reports whether the pod's veth still carries the fast path's
// ingress program: a veni filter (the default tc hook) or a pinned TCX link
// (fastpath names it pod-<ip with dots as underscores>-from).
func hooked(tb testing.TB, h *netlink.Handle, dir string, ep fastpath.Endpoint) bool {
	tb.Helper()
	if _, err := os.Stat(filepath.Join(dir, "links", "pod-"+strings.ReplaceAll(ep.IP.String(), ".", "_")+"-from")); err == nil {
		return true
	}
	l, err := h.LinkByIndex(ep.HostIfindex)
	if err != nil {
		return false
	}
	filters, err := h.FilterList(l, netlink.HANDLE_MIN_INGRESS)
	if err != nil {
		return false
	}
	for _, f := range filters {
		if bf, ok := f.(*netlink.BpfFilter); ok && strings.HasPrefix(bf.Name, "veni-") {
			return true
		}
	}
	return false
}

// A pod whose DEL never came loses its endpoint in the GC pass and at
// shutdown; a live pod keeps its endpoint and pins when the daemon stops.
func TestDaemon_PruneEndpoints_KeepsLivePods(t *testing.T) {
	d, id := mustFastDaemon(t, config.DatapathEBPF)
	d.startFastPath(id)
	if d.fast.dp == nil || !d.fast.decision.EBPF() {
		t.Fatalf("startFastPath: decision %+v, datapath open %v", d.fast.decision, d.fast.dp != nil)
	}
	nsName, nsh := testutil.NewNetNS(t)
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	live, gone := netip.MustParseAddr("10.77.0.5"), netip.MustParseAddr("10.77.0.6")
	mustBind(t, d.env.Store, live)
	eps := make(map[netip.Addr]fastpath.Endpoint)
	for i, ip := range []netip.Addr{live, gone} {
		ep := mustVeth(t, h, "vh"+string(rune('a'+i)), ip)
		eps[ip] = ep
		err := ns.WithNetNSPath(filepath.Join("/run/netns", nsName), func(ns.NetNS) error { return d.fast.dp.AttachPod(ep) })
		if err != nil {
			t.Fatalf("attach %s: %v", ip, err)
		}
	}
	pinDir := d.fast.pinDir

	// The daemon lives in its node's namespace, where the veths are.
	inNode := func(fn func()) {
		if err := ns.WithNetNSPath(filepath.Join("/run/netns", nsName), func(ns.NetNS) error { fn(); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	inNode(d.pruneEndpoints)
	left, err := d.fast.dp.Endpoints()
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || left[0].IP != live {
		t.Fatalf("endpoints after prune = %+v, want only %s", left, live)
	}
	if !hooked(t, h, pinDir, eps[live]) || hooked(t, h, pinDir, eps[gone]) {
		t.Errorf("hooks after prune: live %v (want true), gone %v (want false)", hooked(t, h, pinDir, eps[live]), hooked(t, h, pinDir, eps[gone]))
	}
	// The gone pod's address is not the node's (not in the store): its
	// flow map goes too; the live pod's stays.
	if fm, err := d.fast.dp.FlowMaps(); err != nil || len(fm) != 1 || fm[0] != live {
		t.Errorf("flow maps after prune = %v (%v), want only %s", fm, err, live)
	}

	inNode(d.stopFastPath)
	if d.fast.dp != nil {
		t.Error("stopFastPath kept the datapath open")
	}
	if !hooked(t, h, pinDir, eps[live]) {
		t.Error("stopFastPath unhooked a live pod")
	}
}

func TestDaemon_StartFastPath(t *testing.T) {
	cases := []struct {
		name     string
		mode     string
		wantOpen bool
		wantPins bool
	}{
		{"ebpf opens and keeps the pins", config.DatapathEBPF, true, true},
		{"auto on a capable kernel is ebpf", config.DatapathAuto, true, true},
		{"plain removes an earlier run's pins", config.DatapathPlain, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, id := mustFastDaemon(t, tc.mode)
			pinDir, _ := datapath.PinDir(id)
			earlier, err := fastpath.Open(fastpath.Options{PinDir: pinDir})
			if err != nil {
				t.Fatal(err)
			}
			earlier.Close()

			d.startFastPath(id)
			if (d.fast.dp != nil) != tc.wantOpen {
				t.Errorf("datapath open = %v, want %v (decision %+v)", d.fast.dp != nil, tc.wantOpen, d.fast.decision)
			}
			_, err = os.Stat(pinDir)
			if exists := !errors.Is(err, fs.ErrNotExist); exists != tc.wantPins {
				t.Errorf("pin dir exists = %v, want %v", exists, tc.wantPins)
			}
		})
	}
}

// Maps an older veni pinned with another layout are torn down and made
// afresh at start, instead of keeping every pod of the node on the plain
// datapath.
func TestDaemon_StartFastPath_ReplacesIncompatiblePins(t *testing.T) {
	d, id := mustFastDaemon(t, config.DatapathEBPF)
	pinDir, _ := datapath.PinDir(id)
	if err := os.MkdirAll(pinDir, 0o700); err != nil {
		t.Fatal(err)
	}
	// veni_hoststack as it was: a u32 reason per prefix.
	old, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.LPMTrie, KeySize: 8, ValueSize: 4, MaxEntries: 256, Flags: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if err := old.Pin(filepath.Join(pinDir, "veni_hoststack")); err != nil {
		t.Fatal(err)
	}
	if _, err := fastpath.Open(fastpath.Options{PinDir: pinDir}); !errors.Is(err, ebpf.ErrMapIncompatible) {
		t.Fatalf("Open over the old pin = %v, want ErrMapIncompatible", err)
	}
	d.startFastPath(id)
	if d.fast.dp == nil {
		t.Fatal("startFastPath left the fast path closed over incompatible pins")
	}
}
