package podpolicy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/ebpf/datapath"
	"github.com/veni-cni/veni/ebpf/enforce"
	"github.com/veni-cni/veni/ebpf/fastpath"
	"github.com/veni-cni/veni/internal/testutil"
)

var gatewayIP = netip.MustParseAddr("169.254.1.1")

// birthNode is a node namespace whose pods are namespaces behind veths
// routed by the node, as veni plumbs them.
type birthNode struct {
	orig, node netns.NsHandle
	h          *netlink.Handle
}

// newNS makes a namespace and returns to the one the thread was in.
func newNS(tb testing.TB, back netns.NsHandle) netns.NsHandle {
	tb.Helper()
	ns, err := netns.New()
	if err != nil {
		tb.Fatal(err)
	}
	if err := netns.Set(back); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ns.Close() })
	return ns
}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// pod creates a pod namespace with address ip behind host veth name, both
// ends down, and returns its endpoint and a function bringing it up (the
// rest of SetupPod).
func (n *birthNode) pod(tb testing.TB, name string, ip netip.Addr) (netns.NsHandle, Endpoint, func()) {
	tb.Helper()
	podNS := newNS(tb, n.node)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(podNS))}
	must(tb, n.h.LinkAdd(veth))
	host, err := n.h.LinkByName(name)
	must(tb, err)
	up := func() {
		ph, err := netlink.NewHandleAt(podNS)
		must(tb, err)
		defer ph.Close()
		eth0, err := ph.LinkByName("eth0")
		must(tb, err)
		must(tb, ph.AddrAdd(eth0, &netlink.Addr{IPNet: &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(32, 32)}}))
		must(tb, ph.LinkSetUp(eth0))
		must(tb, ph.NeighSet(&netlink.Neigh{LinkIndex: eth0.Attrs().Index, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT,
			IP: gatewayIP.AsSlice(), HardwareAddr: host.Attrs().HardwareAddr}))
		must(tb, ph.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Dst: &net.IPNet{IP: gatewayIP.AsSlice(), Mask: net.CIDRMask(32, 32)}, Scope: netlink.SCOPE_LINK}))
		must(tb, ph.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: gatewayIP.AsSlice()}))
		must(tb, n.h.LinkSetUp(host))
		must(tb, n.h.RouteAdd(&netlink.Route{LinkIndex: host.Attrs().Index, Dst: &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(32, 32)}, Scope: netlink.SCOPE_LINK}))
		// The pod's gateway is answered by the host veth.
		must(tb, os.WriteFile("/proc/sys/net/ipv4/conf/"+name+"/proxy_arp", []byte("1"), 0o644))
	}
	return podNS, Endpoint{Ifindex: host.Attrs().Index, IP: ip}, up
}

// inNS runs fn on this (locked) thread inside ns.
func (n *birthNode) inNS(tb testing.TB, ns netns.NsHandle, fn func()) {
	tb.Helper()
	must(tb, netns.Set(ns))
	defer func() { must(tb, netns.Set(n.node)) }()
	fn()
}

func (n *birthNode) listen(tb testing.TB, ns netns.NsHandle, addr string) {
	tb.Helper()
	n.inNS(tb, ns, func() {
		l, err := net.Listen("tcp", addr)
		must(tb, err)
		tb.Cleanup(func() { l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
	})
}

// connects reports whether a TCP connection from ns to addr is accepted.
func (n *birthNode) connects(tb testing.TB, ns netns.NsHandle, addr string) bool {
	tb.Helper()
	ok := false
	n.inNS(tb, ns, func() {
		c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
		if err == nil {
			c.Close()
			ok = true
		}
	})
	return ok
}

// Ensure a pod is born with its policy in the real eBPF enforcer: the ADD's
// plan, installed before the pod's link is up, decides its very first
// connections (allowed peer and port pass; another peer, another port, a
// fail-closed pod do not), and the daemon's pass then keeps it.
func TestBirth_RealEnforcer(t *testing.T) {
	testutil.RequireRoot(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	must(t, err)
	defer orig.Close()
	nodeNS := newNS(t, orig)
	must(t, netns.Set(nodeNS))
	defer func() { must(t, netns.Set(orig)) }()
	h, err := netlink.NewHandle()
	must(t, err)
	defer h.Close()
	lo, err := h.LinkByName("lo")
	must(t, err)
	must(t, h.LinkSetUp(lo))
	must(t, os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644))
	n := &birthNode{orig: orig, node: nodeNS, h: h}

	instance := fmt.Sprintf("i-birthtest-%d", os.Getpid())
	pinDir, err := datapath.PinDir(instance)
	must(t, err)
	t.Cleanup(func() {
		if err := enforce.Teardown(pinDir); err != nil {
			t.Errorf("teardown %s: %v", pinDir, err)
		}
		if err := fastpath.Teardown(pinDir); err != nil {
			t.Errorf("fast path teardown %s: %v", pinDir, err)
		}
		if _, err := os.Stat(pinDir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("pin dir %s left", pinDir)
		}
	})

	db, dir := testStore(t), t.TempDir()
	writeFile(t, dir, "pods.yaml", podsYAML+`---
apiVersion: v1
kind: Pod
metadata: {name: stranger, namespace: shop, labels: {app: other}}
spec: {containers: [{name: c}]}
`)
	writeFile(t, dir, "web-allow.yaml", allowHTTP)
	clientKey := reserve(t, db, "shop", "client", "10.0.0.10")
	webKey := reserve(t, db, "shop", "web", "10.0.0.11")
	strangerKey := reserve(t, db, "shop", "stranger", "10.0.0.12")
	cfg := config.DefaultConfig()
	var opened []NodeKernel
	s := NewSyncer(SyncOptions{DB: db, Enabled: true, ManifestDir: dir, Node: "node-a",
		OpenKernel: func(needed bool) (Kernel, error) {
			open := OpenNodeKernelIfUsed
			if needed {
				open = OpenNodeKernel
			}
			k, err := open(cfg, instance)
			if err == nil {
				opened = append(opened, k)
			}
			return k, err
		}})
	t.Cleanup(func() {
		for _, k := range opened {
			k.Close()
		}
	})
	mustPass(t, s) // records; nothing bound, so no kernel yet
	if len(opened) != 0 {
		t.Fatal("the daemon opened the enforcer with no bound endpoint")
	}

	// The ADDs: plan in the read transaction, install before link up.
	add := func(name string, key string, ip string) (netns.NsHandle, Endpoint) {
		podNS, ep, up := n.pod(t, "h-"+name, netip.MustParseAddr(ip))
		plan := planFor(t, db, "shop", name)
		if plan.NeedsKernel() {
			k, err := OpenNodeKernel(cfg, instance)
			must(t, err)
			must(t, plan.Install(k, ep))
			k.Close()
		}
		up()
		return podNS, ep
	}
	clientNS, clientEP := add("client", string(clientKey), "10.0.0.10")
	webNS, webEP := add("web", string(webKey), "10.0.0.11")
	strangerNS, strangerEP := add("stranger", string(strangerKey), "10.0.0.12")
	n.listen(t, webNS, "10.0.0.11:8080")
	n.listen(t, webNS, "10.0.0.11:9090")
	n.listen(t, clientNS, "10.0.0.10:8080")

	check := func(when string) {
		t.Helper()
		for _, c := range []struct {
			name string
			from netns.NsHandle
			to   string
			want bool
		}{
			{"client → web:8080 (allowed by name)", clientNS, "10.0.0.11:8080", true},
			{"client → web:9090 (another port)", clientNS, "10.0.0.11:9090", false},
			{"stranger → web:8080 (not a client)", strangerNS, "10.0.0.11:8080", false},
			{"stranger → client:8080 (client not isolated)", strangerNS, "10.0.0.10:8080", true},
		} {
			got := n.connects(t, c.from, c.to)
			// An allowed flow gets two more tries: a SYN lost to a
			// loaded machine is not policy's verdict. A denied one has
			// one (retries would only pass the time).
			for try := 1; c.want && !got && try < 3; try++ {
				t.Logf("%s: %s: try %d did not connect", when, c.name, try)
				got = n.connects(t, c.from, c.to)
			}
			if got != c.want {
				t.Errorf("%s: %s connects %t, want %t", when, c.name, got, c.want)
			}
		}
	}
	check("at birth")

	// The daemon sees them bound and takes over.
	bind(t, db, clientKey, clientEP.Ifindex)
	bind(t, db, webKey, webEP.Ifindex)
	bind(t, db, strangerKey, strangerEP.Ifindex)
	rep := mustPass(t, s)
	if rep.Applied != 3 {
		t.Errorf("daemon pass %+v: want all 3 endpoints applied once", rep)
	}
	drops, err := OpenDrops(db, cfg, instance)
	must(t, err)
	defer drops.Close()
	check("after the daemon's pass")
	// "veni policy drops": the stranger's dial shows, with web's name.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var seen []string
	for found := false; !found; {
		d, err := drops.Next(ctx)
		if err != nil {
			t.Fatalf("no drop of stranger → web:8080 on web's endpoint (%v); saw %q", err, seen)
		}
		seen = append(seen, d.String())
		found = d.Pod == "shop/web" && d.Src.Addr() == netip.MustParseAddr("10.0.0.12") && d.Dst.Port() == 8080 &&
			d.Direction == enforce.Ingress && d.Reason == enforce.ReasonPolicy
	}

	// A pod nobody knows in a namespace with policies: closed.
	unknownNS, unknownEP, up := n.pod(t, "h-unknown", netip.MustParseAddr("10.0.0.13"))
	plan := planFor(t, db, "shop", "unknown")
	if plan.From != FromFailClosed {
		t.Fatalf("unknown pod plan %s", plan.From)
	}
	k, err := OpenNodeKernel(cfg, instance)
	must(t, err)
	must(t, plan.Install(k, unknownEP))
	k.Close()
	up()
	n.listen(t, unknownNS, "10.0.0.13:8080")
	if n.connects(t, clientNS, "10.0.0.13:8080") {
		t.Error("a fail-closed pod accepted a connection")
	}
	if n.connects(t, unknownNS, "10.0.0.10:8080") {
		t.Error("a fail-closed pod connected out")
	}

	// Policy deleted: the daemon opens web within its pass.
	must(t, os.Remove(dir+"/web-allow.yaml"))
	mustPass(t, s)
	if !n.connects(t, clientNS, "10.0.0.11:9090") || !n.connects(t, strangerNS, "10.0.0.11:8080") {
		t.Error("web still isolated after its policy was deleted")
	}
}
