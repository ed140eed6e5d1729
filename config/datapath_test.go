package config

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestConfig_DatapathMode(t *testing.T) {
	cases := []struct {
		name, json, want string
	}{
		{"default", `{}`, DatapathAuto},
		{"auto", `{"datapath": "auto"}`, DatapathAuto},
		{"ebpf", `{"datapath": "ebpf"}`, DatapathEBPF},
		{"plain", `{"datapath": "plain"}`, DatapathPlain},
		{"veth is plain", `{"datapath": "veth"}`, DatapathPlain},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _, err := Parse([]byte(tc.json))
			wantErr(t, err, nil)
			if got := cfg.DatapathMode(); got != tc.want {
				t.Errorf("DatapathMode() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParse_DatapathInvalid(t *testing.T) {
	cases := []struct {
		name, json, field string
	}{
		{"unknown datapath", `{"datapath": "ipvlan"}`, "datapath"},
		{"wrong case", `{"datapath": "eBPF"}`, "datapath"},
		{"host stack not a cidr", `{"host_stack_cidrs": ["169.254.20.10"]}`, "host_stack_cidrs"},
		{"host stack not a list", `{"host_stack_cidrs": "169.254.20.10/32"}`, "host_stack_cidrs"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Parse([]byte(tc.json))
			wantErr(t, err, ErrInvalid)
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %q does not name %s", err, tc.field)
			}
		})
	}
}

func TestConfig_HostStackPrefixes(t *testing.T) {
	cases := []struct {
		name         string
		json         string
		wantServices []netip.Prefix
		wantCIDRs    []netip.Prefix
	}{
		{"none", `{}`, nil, nil},
		{
			"dual-stack services, masked host cidrs",
			`{"service_cidr": "192.168.0.0/16, fd00::/108", "host_stack_cidrs": ["169.254.20.10/32", "10.9.8.7/24"]}`,
			[]netip.Prefix{netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("fd00::/108")},
			[]netip.Prefix{netip.MustParsePrefix("169.254.20.10/32"), netip.MustParsePrefix("10.9.8.0/24")},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _, err := Parse([]byte(tc.json))
			wantErr(t, err, nil)
			if got := cfg.ServicePrefixes(); !slices.Equal(got, tc.wantServices) {
				t.Errorf("ServicePrefixes() = %v, want %v", got, tc.wantServices)
			}
			if got := cfg.HostStackPrefixes(); !slices.Equal(got, tc.wantCIDRs) {
				t.Errorf("HostStackPrefixes() = %v, want %v", got, tc.wantCIDRs)
			}
		})
	}
}
