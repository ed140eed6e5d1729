package netplumb

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

func TestFindLinkByMAC_Appears(t *testing.T) {
	tests := []struct {
		name    string
		delay   time.Duration // -1: never attached
		timeout time.Duration
		wantErr error
	}{
		{name: "already there", delay: 0, timeout: time.Second},
		{name: "appears after 300ms", delay: 300 * time.Millisecond, timeout: 3 * time.Second},
		{name: "never appears", delay: -1, timeout: 400 * time.Millisecond, wantErr: ErrLinkNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			topo := mustTopology(t)
			attached := make(chan error, 1)
			switch {
			case tt.delay == 0:
				attached <- topo.addENILink(vpcENIName, "eth1", eniMAC)
			case tt.delay > 0:
				go func() {
					time.Sleep(tt.delay)
					attached <- topo.addENILink(vpcENIName, "eth1", eniMAC)
				}()
			default:
				close(attached)
			}
			ctx, cancel := context.WithTimeout(t.Context(), tt.timeout)
			defer cancel()
			start := time.Now()
			l, err := FindLinkByMAC(ctx, topo.nodeH, eniMAC)
			if aerr := <-attached; aerr != nil {
				t.Fatalf("attach: %v", aerr)
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("FindLinkByMAC = %v, want %v and a deadline", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("FindLinkByMAC: %v", err)
			}
			if l.Attrs().Name != "eth1" {
				t.Fatalf("found %s, want eth1", l.Attrs().Name)
			}
			if tt.delay > 0 && time.Since(start) < tt.delay {
				t.Fatalf("found after %v, before the link existed", time.Since(start))
			}
		})
	}
}

func TestEnsureENI_TableAndRoutes(t *testing.T) {
	tests := []struct {
		name  string
		table int
	}{
		{name: "store table", table: 1001},
		{name: "high table", table: 1 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			topo := mustTopology(t)
			topo.mustENI(t)
			cfg := topo.eniConfig()
			cfg.Table = tt.table

			var eni ENILink
			for i := range 2 { // the second run must change nothing
				var err error
				eni, err = EnsureENI(t.Context(), cfg)
				if err != nil {
					t.Fatalf("EnsureENI run %d: %v", i, err)
				}
			}
			l, err := linkByName(topo.nodeH, "eth1")
			if err != nil {
				t.Fatal(err)
			}
			want := ENILink{Name: "eth1", Index: l.Attrs().Index, Table: tt.table, MAC: eniMAC, MTU: 1400, NetNS: topo.node, VSwitchCIDR: eniCIDR, Gateway: eniGW}
			if fmt.Sprint(eni) != fmt.Sprint(want) {
				t.Fatalf("EnsureENI = %+v, want %+v", eni, want)
			}
			looked, err := LookupENI(t.Context(), cfg)
			if err != nil || fmt.Sprint(looked) != fmt.Sprint(want) {
				t.Fatalf("LookupENI = %+v, %v; want %+v", looked, err, want)
			}
			if byAlt, err := topo.nodeH.LinkByName(eniAltName(eniMAC)); err != nil || byAlt.Attrs().Index != l.Attrs().Index {
				t.Fatalf("link by alternative name %s: %v %v (the next EnsureENI would dump every link)", eniAltName(eniMAC), byAlt, err)
			}
			if l.Attrs().Flags&net.FlagUp == 0 || l.Attrs().MTU != 1400 {
				t.Fatalf("eth1 flags %v mtu %d, want up and 1400", l.Attrs().Flags, l.Attrs().MTU)
			}
			addrs, err := addrList(topo.nodeH, l)
			if err != nil {
				t.Fatal(err)
			}
			if len(addrs) != 0 {
				t.Fatalf("eth1 has addresses %v, want none", addrs)
			}

			got := tableRoutes(t, topo.nodeH, eni.Table)
			wantRoutes := []string{
				"0.0.0.0/0 via 10.0.1.253 dev " + strconv.Itoa(eni.Index) + " scope 0",
				"10.0.1.0/24 dev " + strconv.Itoa(eni.Index) + " scope " + strconv.Itoa(int(netlink.SCOPE_LINK)),
			}
			if !equalStrings(got, wantRoutes) {
				t.Fatalf("table %d routes = %q, want %q", eni.Table, got, wantRoutes)
			}
			main := tableRoutes(t, topo.nodeH, 254)
			for _, r := range main {
				if r == wantRoutes[1] {
					t.Fatalf("main table routes the vswitch through the ENI: %q", main)
				}
			}

			for key, want := range map[string]string{
				"net/ipv4/conf/eth1/rp_filter":    "0",
				"net/ipv4/conf/eth1/arp_ignore":   "1",
				"net/ipv4/conf/eth1/arp_announce": "2",
				"net/ipv4/conf/eth1/proxy_arp":    "0",
			} {
				var got string
				err := inNetNS(topo.node, func() error {
					var err error
					got, err = Sysctl(key)
					return err
				})
				if err != nil || got != want {
					t.Fatalf("%s = %q (%v), want %q", key, got, err, want)
				}
			}
		})
	}
}

// A re-attached ENI comes back with a new ifindex. Its table is the
// caller's (the store's), so the rules of pods plumbed before still point
// at the table EnsureENI fills again, and their traffic flows without a new
// ADD. (With tables derived from the ifindex, the rules pointed at an empty
// table and the pod lost its egress.)
func TestEnsureENI_ReattachedKeepsTable(t *testing.T) {
	topo := mustTopology(t)
	topo.mustENI(t)
	first := topo.mustEnsureENI(t)
	cfg, _ := topo.mustPod(t, first, "aaaa", podA)
	mustEchoServer(t, topo.vpc, behindVPC)
	mustRoundTrip(t, cfg.ContainerNetNS, podA, behindVPC)

	// Detach and attach again: the VPC side goes, and with it the link.
	old, err := linkByName(topo.vpcH, vpcENIName)
	mustNoErr(t, err)
	mustNoErr(t, topo.vpcH.LinkDel(old))
	topo.mustENI(t)
	topo.mustAssign(t, podA)
	again := topo.mustEnsureENI(t)
	if again.Index == first.Index {
		t.Fatalf("re-attached eni kept ifindex %d; the test needs a new one", first.Index)
	}
	if again.Table != first.Table {
		t.Fatalf("table %d after re-attach, want %d", again.Table, first.Table)
	}
	// The pod's ENI link is stale (old ifindex); CHECK with the fresh one
	// passes because the rules and the table agree.
	cfg.ENI = again
	if err := CheckPod(t.Context(), cfg); err != nil {
		t.Fatalf("CheckPod after re-attach: %v", err)
	}
	mustRoundTrip(t, cfg.ContainerNetNS, podA, behindVPC)
}

func TestEnsureENI_InvalidConfig(t *testing.T) {
	topo := mustTopology(t)
	topo.mustENI(t)
	tests := []struct {
		name      string
		mutate    func(*ENIConfig)
		wantField string
	}{
		{name: "no table", mutate: func(c *ENIConfig) { c.Table = 0 }, wantField: "table"},
		{name: "main table", mutate: func(c *ENIConfig) { c.Table = 254 }, wantField: "table"},
		{name: "mtu too small", mutate: func(c *ENIConfig) { c.MTU = 100 }, wantField: "mtu"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := topo.eniConfig()
			tt.mutate(&cfg)
			_, err := EnsureENI(t.Context(), cfg)
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.wantField) {
				t.Fatalf("EnsureENI = %v, want ErrInvalidConfig naming %q", err, tt.wantField)
			}
			if _, err := LookupENI(t.Context(), cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("LookupENI = %v, want ErrInvalidConfig", err)
			}
		})
	}
}

// tableRoutes lists a table's routes as "dst [via gw] dev ifindex scope N",
// sorted.
func tableRoutes(tb testing.TB, h *netlink.Handle, table int) []string {
	tb.Helper()
	routes, err := routeList(h, &netlink.Route{Table: table}, netlink.RT_FILTER_TABLE)
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, r := range routes {
		dst := "0.0.0.0/0"
		if r.Dst != nil {
			dst = r.Dst.String()
		}
		s := dst
		if r.Gw != nil {
			s += " via " + r.Gw.String()
		}
		s += " dev " + strconv.Itoa(r.LinkIndex) + " scope " + strconv.Itoa(int(r.Scope))
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
