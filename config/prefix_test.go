package config

import (
	"strings"
	"testing"
)

func TestParse_PrefixMode(t *testing.T) {
	for _, tc := range []struct {
		name, conf string
		prefix     bool
		count      int
		errHas     string // "" means valid
	}{
		{"bool", `{"enable_ip_prefix": true, "ipv4_prefix_count": 2}`, true, 2, ""},
		{"terway string", `{"enable_ip_prefix": "true"}`, true, 0, ""},
		{"off", `{"enable_ip_prefix": false}`, false, 0, ""},
		{"count without mode", `{"ipv4_prefix_count": 3}`, false, 0, "enable_ip_prefix is not true"},
		{"negative count", `{"enable_ip_prefix": true, "ipv4_prefix_count": -1}`, false, 0, "ipv4_prefix_count: -1 is negative"},
		{"absurd count", `{"enable_ip_prefix": true, "ipv4_prefix_count": 100000}`, false, 0, "ipv4_prefix_count: 100000 is above"},
		{"dual stack", `{"enable_ip_prefix": true, "ip_stack": "dual", "ipv4_prefix_count": 1}`, true, 1, ""},
		{"ipv6 only", `{"enable_ip_prefix": true, "ip_stack": "ipv6"}`, true, 0, ""},
		{"ipv6 only with terway count", `{"enable_ip_prefix": true, "ip_stack": "ipv6", "ipv6_prefix_count": 1}`, true, 0, ""},
		{"ipv6 only with /28s", `{"enable_ip_prefix": true, "ip_stack": "ipv6", "ipv4_prefix_count": 1}`, false, 0, "IPv6-only pods take no /28"},
		{"two /80s", `{"enable_ip_prefix": true, "ip_stack": "ipv6", "ipv6_prefix_count": 2}`, false, 0, "ipv6_prefix_count: 2 is not 0 or 1"},
		{"/80 count on dual", `{"enable_ip_prefix": true, "ip_stack": "dual", "ipv6_prefix_count": 1}`, false, 0, "not IPv6-only in prefix mode"},
		{"/80 count in ip mode", `{"ip_stack": "ipv6", "ipv6_prefix_count": 1}`, false, 0, "not IPv6-only in prefix mode"},
		{"not a bool", `{"enable_ip_prefix": "yes"}`, false, 0, "enable_ip_prefix"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, notes, err := Parse([]byte(tc.conf))
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("Parse(%s) = %v, want an error containing %q", tc.conf, err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%s): %v", tc.conf, err)
			}
			if cfg.PrefixMode() != tc.prefix || cfg.IPv4PrefixCount != tc.count {
				t.Errorf("prefix mode %t count %d, want %t %d", cfg.PrefixMode(), cfg.IPv4PrefixCount, tc.prefix, tc.count)
			}
			for _, n := range notes {
				if strings.Contains(n, "enable_ip_prefix") || strings.Contains(n, "ipv4_prefix_count") || strings.Contains(n, "ipv6_prefix_count") {
					t.Errorf("note %q: the field is implemented now", n)
				}
			}
			want := PoolModeIP
			if tc.prefix {
				want = PoolModePrefix
			}
			if cfg.PoolMode() != want {
				t.Errorf("PoolMode() = %q, want %q", cfg.PoolMode(), want)
			}
		})
	}
}
