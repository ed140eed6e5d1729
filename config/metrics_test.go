package config

import (
	"strings"
	"testing"
)

func TestValidMetricsAddress(t *testing.T) {
	cases := []struct {
		addr string
		ok   bool
	}{
		{"", true},
		{"off", true},
		{"/run/veni/metrics.sock", true},
		{"unix:/var/lib/veni/metrics.sock", true},
		{"127.0.0.1:9190", true},
		{"[::1]:9190", true},
		{"localhost:9190", true},
		{":9190", true},
		{"unix:metrics.sock", false},
		{"/run/../metrics.sock", false},
		{"9190", false},
		{"127.0.0.1:0", false},
		{"127.0.0.1:http", false},
		{"127.0.0.1:70000", false},
		{"http://127.0.0.1:9190", false},
		{"on", false},
	}
	for _, tc := range cases {
		t.Run(tc.addr, func(t *testing.T) {
			err := ValidMetricsAddress(tc.addr)
			if (err == nil) != tc.ok {
				t.Errorf("ValidMetricsAddress(%q) = %v, want ok=%v", tc.addr, err, tc.ok)
			}
		})
	}
}

func TestParse_MetricsAddress(t *testing.T) {
	cfg, _, err := Parse([]byte(`{"metrics_address": "127.0.0.1:9190"}`))
	wantErr(t, err, nil)
	if cfg.MetricsAddress != "127.0.0.1:9190" {
		t.Errorf("MetricsAddress = %q", cfg.MetricsAddress)
	}
	_, _, err = Parse([]byte(`{"metrics_address": "9190"}`))
	wantErr(t, err, ErrInvalid)
	if !strings.Contains(err.Error(), "metrics_address") {
		t.Errorf("error %q does not name metrics_address", err)
	}
}
