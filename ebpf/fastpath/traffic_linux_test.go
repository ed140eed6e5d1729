package fastpath

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/veni-cni/veni/internal/testutil"
)

func mustCounters(tb testing.TB, d *Datapath) Counters {
	tb.Helper()
	c, err := d.Counters()
	if err != nil {
		tb.Fatalf("counters: %v", err)
	}
	return c
}

// tcxPrograms counts the programs attached to ifindex in the node.
func (n *testNode) tcxPrograms(tb testing.TB, ifindex int, at ebpf.AttachType) int {
	tb.Helper()
	var count int
	mustInNetNS(tb, n.ns, func() error {
		res, err := link.QueryPrograms(link.QueryOptions{Target: ifindex, Attach: at})
		if err != nil {
			return err
		}
		count = len(res.Programs)
		return nil
	})
	return count
}

// TestDatapath_Traffic sends real packets between pods, the node and a VPC
// namespace, and proves with the counters which path each took, with pods
// hooked both ways. Subtests run in order on one topology.
func TestDatapath_Traffic(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.SkipOnOldKernel(t, "6.8", "tcx and bpf_fib_lookup with a table id")
	if err := Supported(); err != nil {
		t.Fatalf("kernel >= 6.8 but: %v", err)
	}
	for _, hook := range []string{PodHookTC, PodHookTCX} {
		t.Run(hook, func(t *testing.T) { testDatapathTraffic(t, hook) })
	}
}

func testDatapathTraffic(t *testing.T, hook string) {

	n := mustTestNode(t)
	podA := n.mustPod(t, "vetha", netip.MustParseAddr("10.99.0.21"))
	podB := n.mustPod(t, "vethb", netip.MustParseAddr("10.99.0.22"))

	dir := mustPinDir(t)
	d := mustOpen(t, Options{PinDir: dir, PodHook: hook, HostStack: &HostStack{
		ServiceCIDRs: []netip.Prefix{serviceCIDR},
		NodeAddrs:    []netip.Addr{nodeIP},
	}})
	mustInNetNS(t, n.ns, func() error {
		return errors.Join(
			d.AttachPod(n.endpoint(podA)),
			d.AttachPod(n.endpoint(podB)),
			d.AttachENI(n.eni.Attrs().Index),
		)
	})

	mustServeUDPEcho(t, podB.ns, netip.AddrPortFrom(podB.ip, 7))
	mustServeTCPEcho(t, podB.ns, netip.AddrPortFrom(podB.ip, 8080))
	mustServeUDPEcho(t, n.vpc, netip.AddrPortFrom(remoteIP, 7))
	mustServeUDPEcho(t, n.vpc, netip.AddrPortFrom(onLinkIP, 7))
	mustServeUDPEcho(t, n.ns, netip.AddrPortFrom(nodeIP, 7))

	t.Run("pod to pod redirects into the peer", func(t *testing.T) {
		before := mustCounters(t, d)
		mustExchange(t, podA.ns, "udp4", netip.AddrPortFrom(podB.ip, 7))
		after := mustCounters(t, d)
		// The request from A and the echo from B both skip the host.
		if got := after.FromPod.RedirectPeer - before.FromPod.RedirectPeer; got < 2 {
			t.Errorf("FromPod.RedirectPeer grew by %d, want >= 2 (%+v)", got, after.FromPod)
		}
	})

	vpcCases := []struct {
		name string
		dst  netip.Addr
	}{
		{"pod to vpc via the gateway", remoteIP},
		{"pod to vpc on link", onLinkIP},
	}
	for _, tc := range vpcCases {
		t.Run(tc.name, func(t *testing.T) {
			before := mustCounters(t, d)
			mustExchange(t, podA.ns, "udp4", netip.AddrPortFrom(tc.dst, 7))
			after := mustCounters(t, d)
			if got := after.FromPod.RedirectNeigh - before.FromPod.RedirectNeigh; got < 1 {
				t.Errorf("FromPod.RedirectNeigh grew by %d, want >= 1 (%+v)", got, after.FromPod)
			}
			if got := after.FromENI.RedirectPeer - before.FromENI.RedirectPeer; got < 1 {
				t.Errorf("FromENI.RedirectPeer grew by %d, want >= 1 (%+v)", got, after.FromENI)
			}
		})
	}

	t.Run("bulk tcp to the vpc stays on the fast path", func(t *testing.T) {
		// veth hands TCP large GSO segments; their IP length is far above
		// the MTU, which must not fail the FIB lookup.
		sink := netip.AddrPortFrom(remoteIP, 9000)
		mustServeTCPSink(t, n.vpc, sink)
		before := mustCounters(t, d)
		mustSend(t, podA.ns, sink, 0, 4<<20)
		after := mustCounters(t, d)
		if got := after.FromPod.FIBFragNeeded - before.FromPod.FIBFragNeeded; got != 0 {
			t.Errorf("FromPod.FIBFragNeeded grew by %d during a bulk transfer, want 0 (%+v)", got, after.FromPod)
		}
		if got := after.FromPod.RedirectNeigh - before.FromPod.RedirectNeigh; got < 10 {
			t.Errorf("FromPod.RedirectNeigh grew by %d, want the transfer's segments (%+v)", got, after.FromPod)
		}
	})

	t.Run("a new connection from a remembered port takes the fast path", func(t *testing.T) {
		// A flow that went through the host left its client end in the
		// map; a later connection from the same port is a new flow.
		const port = 40123
		key := fastpathFlowKey{Addr: podA.ip.As4(), Port: htons(port), Proto: 6}
		if err := mustPodFlows(t, d, podA.ip).Put(key, uint32(1)); err != nil {
			t.Fatal(err)
		}
		before := mustCounters(t, d)
		mustSend(t, podA.ns, netip.AddrPortFrom(podB.ip, 8080), port, 1<<10)
		after := mustCounters(t, d)
		if got := after.FromPod.PassHostFlow - before.FromPod.PassHostFlow; got != 0 {
			t.Errorf("FromPod.PassHostFlow grew by %d: the stale entry sent the new flow through the host (%+v)", got, after.FromPod)
		}
		time.Sleep(300 * time.Millisecond) // let the connection's teardown pass
	})

	t.Run("node address goes through the host stack", func(t *testing.T) {
		before := mustCounters(t, d)
		mustExchange(t, podA.ns, "udp4", netip.AddrPortFrom(nodeIP, 7))
		after := mustCounters(t, d)
		if got := after.FromPod.PassNodeAddr - before.FromPod.PassNodeAddr; got < 1 {
			t.Errorf("FromPod.PassNodeAddr grew by %d, want >= 1 (%+v)", got, after.FromPod)
		}
	})

	t.Run("service goes through the host stack and its dnat", func(t *testing.T) {
		n.mustNft(t, `table ip vtest {
	chain pre {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr `+serviceIP.String()+` tcp dport 80 counter dnat to `+podB.ip.String()+`:8080
	}
}
`)
		before := mustCounters(t, d)
		// A connected TCP socket: the handshake only completes if B's
		// answers went back through conntrack to be un-NATed.
		mustExchange(t, podA.ns, "tcp4", netip.AddrPortFrom(serviceIP, 80))
		after := mustCounters(t, d)
		if got := after.FromPod.PassService - before.FromPod.PassService; got < 1 {
			t.Errorf("FromPod.PassService grew by %d, want >= 1 (%+v)", got, after.FromPod)
		}
		if got := after.FromPod.PassHostFlow - before.FromPod.PassHostFlow; got < 1 {
			t.Errorf("FromPod.PassHostFlow grew by %d, want >= 1: B's replies skipped conntrack (%+v)", got, after.FromPod)
		}
		m := regexp.MustCompile(`counter packets (\d+)`).FindStringSubmatch(n.nftList(t, "list", "chain", "ip", "vtest", "pre"))
		if m == nil {
			t.Fatal("no counter in the dnat rule")
		}
		if hits, _ := strconv.Atoi(m[1]); hits < 1 {
			t.Errorf("dnat rule hit %d times, want >= 1", hits)
		}
	})

	t.Run("a nated flow does not take the backend port off the fast path", func(t *testing.T) {
		// B's port 8080 just served a Service connection through the
		// host; a direct connection to it must still be redirected.
		before := mustCounters(t, d)
		mustExchange(t, podA.ns, "tcp4", netip.AddrPortFrom(podB.ip, 8080))
		after := mustCounters(t, d)
		if got := after.FromPod.PassHostFlow - before.FromPod.PassHostFlow; got != 0 {
			t.Errorf("FromPod.PassHostFlow grew by %d on a direct connection, want 0 (%+v)", got, after.FromPod)
		}
		if got := after.FromPod.RedirectPeer - before.FromPod.RedirectPeer; got < 4 {
			t.Errorf("FromPod.RedirectPeer grew by %d, want the whole exchange (>= 4) (%+v)", got, after.FromPod)
		}
		// Let the connection's last FIN and ACKs pass, so they do not
		// count in the next subtest's counters.
		time.Sleep(300 * time.Millisecond)
	})

	t.Run("detach pod falls back to the host stack", func(t *testing.T) {
		if err := d.DetachPod(podA.ip); err != nil {
			t.Fatalf("detach: %v", err)
		}
		if _, ok, err := d.Endpoint(podA.ip); err != nil || ok {
			t.Fatalf("endpoint of %s after detach: present=%v err=%v", podA.ip, ok, err)
		}
		from, to := podLinkNames(podA.ip)
		for _, name := range []string{from, to} {
			if _, err := os.Stat(filepath.Join(dir, linksDir, name)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("link pin %s after detach: %v", name, err)
			}
		}
		if got := n.tcxPrograms(t, podA.host.Attrs().Index, ebpf.AttachTCXIngress); got != 0 {
			t.Errorf("%d programs still on %s ingress", got, podA.host.Attrs().Name)
		}
		if err := d.DetachPod(podA.ip); err != nil {
			t.Errorf("second detach: %v", err)
		}

		before := mustCounters(t, d)
		mustExchange(t, podA.ns, "udp4", netip.AddrPortFrom(remoteIP, 7))
		after := mustCounters(t, d)
		if got := after.FromPod.RedirectNeigh - before.FromPod.RedirectNeigh; got != 0 {
			t.Errorf("FromPod.RedirectNeigh grew by %d after detach, want 0", got)
		}
		if got := after.FromENI.PassNotLocal - before.FromENI.PassNotLocal; got < 1 {
			t.Errorf("FromENI.PassNotLocal grew by %d, want >= 1 (%+v)", got, after.FromENI)
		}
	})

	t.Run("teardown detaches everything", func(t *testing.T) {
		if pins := pinsUnder(t, dir); len(pins) == 0 {
			t.Fatal("nothing pinned before teardown")
		}
		if err := Teardown(dir); err != nil {
			t.Fatalf("teardown: %v", err)
		}
		if pins := pinsUnder(t, dir); len(pins) != 0 {
			t.Errorf("pins left after teardown: %v", pins)
		}
		hooks := []struct {
			ifindex int
			at      ebpf.AttachType
		}{
			{podB.host.Attrs().Index, ebpf.AttachTCXIngress},
			{podB.host.Attrs().Index, ebpf.AttachTCXEgress},
			{n.eni.Attrs().Index, ebpf.AttachTCXIngress},
		}
		for _, h := range hooks {
			if got := n.tcxPrograms(t, h.ifindex, h.at); got != 0 {
				t.Errorf("%d programs still attached to ifindex %d (%v)", got, h.ifindex, h.at)
			}
		}
		// The plain datapath still carries pod to pod.
		mustExchange(t, podA.ns, "udp4", netip.AddrPortFrom(podB.ip, 7))
	})
}
