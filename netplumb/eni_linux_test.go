package netplumb

import (
	"context"
	"errors"
	"net"
	"sort"
	"strconv"
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
		name      string
		table     int
		wantTable func(ifindex int) int
	}{
		{name: "derived table", table: 0, wantTable: func(i int) int { return TableBase + i }},
		{name: "explicit table", table: 77, wantTable: func(int) int { return 77 }},
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
			want := ENILink{Name: "eth1", Index: l.Attrs().Index, Table: tt.wantTable(l.Attrs().Index), MAC: eniMAC, MTU: 1400, NetNS: topo.node}
			if eni.Name != want.Name || eni.Index != want.Index || eni.Table != want.Table || eni.MAC.String() != want.MAC.String() || eni.MTU != want.MTU || eni.NetNS != want.NetNS {
				t.Fatalf("EnsureENI = %+v, want %+v", eni, want)
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
				"net/ipv4/conf/eth1/proxy_arp":    "1",
				"net/ipv4/neigh/eth1/proxy_delay": "0",
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
