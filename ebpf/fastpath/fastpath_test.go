package fastpath

import (
	"errors"
	"net"
	"net/netip"
	"testing"
)

func TestEndpoint_Validate(t *testing.T) {
	mac := net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	good := Endpoint{
		IP: netip.MustParseAddr("10.0.0.5"), HostIfindex: 7, HostMAC: mac,
		PodMAC: mac, ENIIfindex: 3, ENITable: 1001,
	}
	tests := []struct {
		name    string
		edit    func(*Endpoint)
		wantErr bool
	}{
		{"complete", func(*Endpoint) {}, false},
		{"ipv6", func(ep *Endpoint) { ep.IP = netip.MustParseAddr("fd00::5") }, true},
		{"dual stack", func(ep *Endpoint) { ep.IP6 = netip.MustParseAddr("fd00::5") }, false},
		{"ip6 that is ipv4", func(ep *Endpoint) { ep.IP6 = netip.MustParseAddr("10.0.0.6") }, true},
		{"ip6 that is ipv4-mapped", func(ep *Endpoint) { ep.IP6 = netip.MustParseAddr("::ffff:10.0.0.6") }, true},
		{"no ip", func(ep *Endpoint) { ep.IP = netip.Addr{} }, true},
		{"no host ifindex", func(ep *Endpoint) { ep.HostIfindex = 0 }, true},
		{"no eni ifindex", func(ep *Endpoint) { ep.ENIIfindex = 0 }, true},
		{"no eni table", func(ep *Endpoint) { ep.ENITable = 0 }, true},
		{"short host mac", func(ep *Endpoint) { ep.HostMAC = mac[:4] }, true},
		{"no pod mac", func(ep *Endpoint) { ep.PodMAC = nil }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ep := good
			tc.edit(&ep)
			err := ep.validate()
			if (err != nil) != tc.wantErr {
				t.Fatalf("validate() = %v, want error %v", err, tc.wantErr)
			}
			if err != nil && !errors.Is(err, ErrInvalidEndpoint) {
				t.Errorf("validate() = %v, want ErrInvalidEndpoint", err)
			}
		})
	}
}

func TestHostStack_Prefixes(t *testing.T) {
	p := netip.MustParsePrefix
	a := netip.MustParseAddr
	tests := []struct {
		name string
		hs   HostStack
		want map[netip.Prefix]uint32
	}{
		{"empty", HostStack{}, map[netip.Prefix]uint32{}},
		{
			"masked and tagged",
			HostStack{
				ServiceCIDRs: []netip.Prefix{p("10.96.0.1/16")},
				CIDRs:        []netip.Prefix{p("169.254.20.10/32")},
				NodeAddrs:    []netip.Addr{a("192.168.0.10")},
			},
			map[netip.Prefix]uint32{
				p("10.96.0.0/16"):     reasonService,
				p("169.254.20.10/32"): reasonCIDR,
				p("192.168.0.10/32"):  reasonNodeAddr,
			},
		},
		{
			"ipv6 kept, invalid ignored",
			HostStack{
				ServiceCIDRs: []netip.Prefix{p("fd00::1/108"), {}},
				CIDRs:        []netip.Prefix{p("fd00:53::/64"), p("::ffff:10.0.0.0/104")},
				NodeAddrs:    []netip.Addr{a("fd00:ac1e:1::10"), {}},
			},
			map[netip.Prefix]uint32{
				p("fd00::/108"):          reasonService,
				p("fd00:53::/64"):        reasonCIDR,
				p("fd00:ac1e:1::10/128"): reasonNodeAddr,
			},
		},
		{
			"node address wins over a cidr naming it",
			HostStack{
				CIDRs:     []netip.Prefix{p("192.168.0.10/32")},
				NodeAddrs: []netip.Addr{a("::ffff:192.168.0.10")},
			},
			map[netip.Prefix]uint32{p("192.168.0.10/32"): reasonNodeAddr},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.hs.prefixes()
			if len(got) != len(tc.want) {
				t.Fatalf("prefixes() = %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("prefixes()[%s] = %d, want %d", k, got[k], v)
				}
			}
		})
	}
}

func TestNodePinDir_PerNode(t *testing.T) {
	if a, b := NodePinDir(DefaultPinRoot, "node-a"), NodePinDir(DefaultPinRoot, "node-b"); a == b {
		t.Fatalf("two nodes share pin dir %s", a)
	}
	if got, want := NodePinDir(DefaultPinRoot, "n1"), "/sys/fs/bpf/veni/n1"; got != want {
		t.Errorf("NodePinDir = %s, want %s", got, want)
	}
}
