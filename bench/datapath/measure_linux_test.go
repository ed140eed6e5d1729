package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/veni-cni/veni/internal/testutil"
)

// hop is client -> router -> server, each a namespace the test creates:
// 10.199.92.2 -- 10.199.92.1 | 10.199.93.1 -- 10.199.93.2.
type hop struct {
	client, router, server string // namespace paths
	serverIP               netip.Addr
}

func mustHop(tb testing.TB) hop {
	tb.Helper()
	cName, c := testutil.NewNetNS(tb)
	rName, r := testutil.NewNetNS(tb)
	sName, s := testutil.NewNetNS(tb)
	mustVeth(tb, c, "eth0", "10.199.92.2/24", r, "to-c", "10.199.92.1/24")
	mustVeth(tb, s, "eth0", "10.199.93.2/24", r, "to-s", "10.199.93.1/24")
	mustDefaultRoute(tb, c, "10.199.92.1")
	mustDefaultRoute(tb, s, "10.199.93.1")
	path := func(name string) string { return filepath.Join("/run/netns", name) }
	if out, err := exec.Command("ip", "netns", "exec", rName, "sysctl", "-qw", "net.ipv4.ip_forward=1").CombinedOutput(); err != nil {
		tb.Fatalf("enable forwarding: %v: %s", err, out)
	}
	return hop{client: path(cName), router: path(rName), server: path(sName), serverIP: netip.MustParseAddr("10.199.93.2")}
}

// mustVeth links namespaces a and b with a veth pair, addressed and up.
func mustVeth(tb testing.TB, a netns.NsHandle, aName, aAddr string, b netns.NsHandle, bName, bAddr string) {
	tb.Helper()
	ha, err := netlink.NewHandleAt(a)
	if err != nil {
		tb.Fatal(err)
	}
	defer ha.Close()
	hb, err := netlink.NewHandleAt(b)
	if err != nil {
		tb.Fatal(err)
	}
	defer hb.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: aName}, PeerName: bName, PeerNamespace: netlink.NsFd(b)}
	if err := ha.LinkAdd(veth); err != nil {
		tb.Fatalf("add veth %s/%s: %v", aName, bName, err)
	}
	for _, side := range []struct {
		h          *netlink.Handle
		name, addr string
	}{{ha, aName, aAddr}, {hb, bName, bAddr}, {ha, "lo", ""}, {hb, "lo", ""}} {
		l, err := side.h.LinkByName(side.name)
		if err != nil {
			tb.Fatal(err)
		}
		if side.addr != "" {
			a, _ := netlink.ParseAddr(side.addr)
			if err := side.h.AddrAdd(l, a); err != nil {
				tb.Fatal(err)
			}
		}
		if err := side.h.LinkSetUp(l); err != nil {
			tb.Fatal(err)
		}
	}
}

func mustDefaultRoute(tb testing.TB, n netns.NsHandle, gw string) {
	tb.Helper()
	h, err := netlink.NewHandleAt(n)
	if err != nil {
		tb.Fatal(err)
	}
	defer h.Close()
	if err := h.RouteAdd(&netlink.Route{Gw: net.ParseIP(gw)}); err != nil {
		tb.Fatalf("default route via %s: %v", gw, err)
	}
}

func requireTools(tb testing.TB, tools ...string) {
	tb.Helper()
	for _, t := range tools {
		if _, err := exec.LookPath(t); err != nil {
			testutil.Skipf(tb, "%s not installed", t)
		}
	}
}

func TestMeasure_RoutedHop(t *testing.T) {
	testutil.RequireRoot(t)
	requireTools(t, "iperf3", "sockperf", "ip")
	h := mustHop(t)
	t.Setenv(envRunMain, "1") // for the connrate processes measure starts
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := measure(ctx, measureOptions{
		Scenario: "a", Row: "hop", ClientNetNS: h.client, ServerNetNS: h.server, ServerIP: h.serverIP,
		NodeNetNS: []string{h.router}, Duration: time.Second, RRCPU: 0,
		Ports: ports{Iperf3: 5201, Sockperf: 11111, Connrate: 7000},
	})
	if err != nil {
		t.Fatalf("measure: %v", err)
	}
	if s.TCP1 <= 0 || s.TCP4 <= 0 || s.P50 <= 0 || s.P99 < s.P50 || s.ConnPerSec <= 0 {
		t.Errorf("implausible sample %+v", s)
	}
	// Everything crossed the router's IP stack: iperf3 alone sends
	// thousands of packets.
	if s.Forwarded < 1000 {
		t.Errorf("router forwarded %d packets, want the benchmark's traffic", s.Forwarded)
	}
	// measure kills what it started: nothing listens any more.
	for _, port := range []int{5201, 11111, 7000} {
		b, err := readIn(h.server, "net/tcp")
		if err != nil {
			t.Fatal(err)
		}
		if listensOn(b, port) {
			t.Errorf("port %d still listening after measure", port)
		}
	}
}

func TestMeasure_ServerNotListening(t *testing.T) {
	testutil.RequireRoot(t)
	h := mustHop(t)
	// A server that dies before listening (a port taken, an address the
	// namespace lacks) must fail the measurement at once, not after the
	// readiness timeout.
	start := time.Now()
	_, err := startServer(context.Background(), h.server, -1, 11111, "sh", "-c", "exit 3")
	if !errors.Is(err, errNotReady) {
		t.Fatalf("err = %v, want errNotReady", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %s to notice the exit", took)
	}
}

func TestListensOn(t *testing.T) {
	table := []byte(`  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 020AC70A:1B58 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 ffff 100 0 0 10 0
   1: 020AC70A:1451 020AC70A:9C40 01 00000000:00000000 00:00000000 00000000     0        0 2 1 ffff 20 4 30 10 -1
`)
	tests := []struct {
		port int
		want bool
	}{
		{7000, true},  // 0x1B58, LISTEN
		{5201, false}, // 0x1451 is only an established connection
		{0x58, false}, // ":0058", not the last digits of 1B58
	}
	for _, tt := range tests {
		if got := listensOn(table, tt.port); got != tt.want {
			t.Errorf("listensOn(%d) = %v, want %v", tt.port, got, tt.want)
		}
	}
}

func TestStartIn_CPU(t *testing.T) {
	testutil.RequireRoot(t)
	name, _ := testutil.NewNetNS(t)
	tests := []struct {
		name string
		cpu  int
		want string // Cpus_allowed_list of the child
	}{
		{"bound", 0, "0"},
		{"free", -1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command("sleep", "30")
			if err := startIn(filepath.Join("/run/netns", name), tt.cpu, cmd); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = killGroup(cmd.Process.Pid); _ = cmd.Wait() })
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
			if err != nil {
				t.Fatal(err)
			}
			var got string
			for _, line := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
					got = strings.TrimSpace(v)
				}
			}
			if tt.want != "" && got != tt.want {
				t.Errorf("child allowed on cpus %q, want %q", got, tt.want)
			}
			// The forking thread went back to every CPU: the next child
			// is free again.
			if tt.want == "" && got != fmt.Sprintf("0-%d", runtime.NumCPU()-1) && runtime.NumCPU() > 1 {
				t.Errorf("unbound child allowed on cpus %q, want all", got)
			}
		})
	}
}
