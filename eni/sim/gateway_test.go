package sim

import (
	"net/netip"
	"testing"
)

func TestGatewayOf(t *testing.T) {
	cases := []struct {
		cidr string
		want string
	}{
		{"172.30.1.0/24", "172.30.1.253"},
		{"172.30.2.0/24", "172.30.2.253"},
		{"10.0.0.0/16", "10.0.255.253"},
		{"192.168.8.7/22", "192.168.11.253"}, // host bits are ignored
	}
	for _, tc := range cases {
		t.Run(tc.cidr, func(t *testing.T) {
			got := GatewayOf(netip.MustParsePrefix(tc.cidr))
			if got.String() != tc.want {
				t.Fatalf("GatewayOf(%s) = %s, want %s", tc.cidr, got, tc.want)
			}
		})
	}
}
