package cluster

import (
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/veni-cni/veni/eni/sim"
)

func TestParseVSwitches(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		want    []string // id zone cidr
		wantErr string
	}{
		{"one", "vsw-x=172.30.8.0/24", []string{"vsw-x cn-hangzhou-h 172.30.8.0/24"}, ""},
		{"zone and spaces", "vsw-a=172.30.1.0/24@cn-hangzhou-i, vsw-b=172.30.2.0/25", []string{"vsw-a cn-hangzhou-i 172.30.1.0/24", "vsw-b cn-hangzhou-h 172.30.2.0/25"}, ""},
		{"ipv6", "vsw-a=172.30.1.0/24+fd00:ac1e:1::/64@cn-hangzhou-i", []string{"vsw-a cn-hangzhou-i 172.30.1.0/24 fd00:ac1e:1::/64"}, ""},
		{"bad ipv6", "vsw-a=172.30.1.0/24+fd00::/129", nil, "ipv6"},
		{"no cidr", "vsw-a", nil, "want id=cidr"},
		{"bad cidr", "vsw-a=172.30.1.0/33", nil, "vsw-a=172.30.1.0/33"},
		{"empty", " , ", nil, "no vswitch"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseVSwitches(tc.in, "cn-hangzhou-h")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var flat []string
			for _, v := range got {
				f := v.ID + " " + v.ZoneID + " " + v.CIDR.String()
				if v.IPv6CIDR.IsValid() {
					f += " " + v.IPv6CIDR.String()
				}
				flat = append(flat, f)
			}
			if strings.Join(flat, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("got %q, want %q", flat, tc.want)
			}
		})
	}
}

func TestParseNodeConfig(t *testing.T) {
	got, err := ParseNodeConfig([]string{"max_eni=2", "idle_ip_reclaim_after=30s", "vswitches=[\"vsw-a\"]", "enable=true"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"max_eni": float64(2), "idle_ip_reclaim_after": "30s", "vswitches": []any{"vsw-a"}, "enable": true}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v, want %#v", got, want)
	}
	if _, err := ParseNodeConfig([]string{"=1"}); err == nil || !strings.Contains(err.Error(), "want key=value") {
		t.Fatalf("empty key: err = %v", err)
	}
	if got, err := ParseNodeConfig(nil); got != nil || err != nil {
		t.Fatalf("no fields: %v, %v; want nil, nil", got, err)
	}
}

func TestSpec_Validate(t *testing.T) {
	cases := []struct {
		name    string
		mod     func(*Spec)
		wantErr string
	}{
		{"defaults", func(*Spec) {}, ""},
		{"zero nodes", func(s *Spec) { s.Nodes = 0 }, "at least 1"},
		{"min above max", func(s *Spec) { s.MinPoolSize = 9 }, "min <= max"},
		{"no sync interval", func(s *Spec) { s.DaemonSyncInterval = 0 }, "must be positive"},
		{"no sync interval without daemons", func(s *Spec) { s.DaemonSyncInterval, s.Daemons = 0, false }, ""},
		{"negative concurrency", func(s *Spec) { s.StartConcurrency = -1 }, "not be negative"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := DefaultSpec()
			tc.mod(&s)
			err := s.Validate()
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestSpec_CloudConfig(t *testing.T) {
	s := DefaultSpec()
	s.AttachDelay = 3 * time.Second
	if cfg := s.CloudConfig(); cfg.AttachDelay != 3*time.Second || len(cfg.VSwitches) != 2 {
		t.Fatalf("defaults: attach %s, %d vswitches", cfg.AttachDelay, len(cfg.VSwitches))
	}
	s.VSwitches, _ = ParseVSwitches("vsw-z=172.30.9.0/24", "cn-hangzhou-h")
	if cfg := s.CloudConfig(); len(cfg.VSwitches) != 1 || cfg.VSwitches[0].CIDR != netip.MustParsePrefix("172.30.9.0/24") {
		t.Fatalf("vswitches = %+v", cfg.VSwitches)
	}
}

// Ensure spec.json reads back as Up writes it.
func TestReadSpec_RoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), SpecFile)
	want := DefaultSpec()
	want.VSwitches, _ = ParseVSwitches("vsw-z=172.30.9.0/24", "cn-hangzhou-h")
	want.NodeConfig = map[string]any{"max_eni": float64(2)}
	want.StartConcurrency = 3
	if err := writeJSONFile(path, want, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := ReadSpec(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

// Ensure --security-group adds normal groups beside the default one every
// node is in.
func TestSpec_CloudConfig_SecurityGroups(t *testing.T) {
	s := DefaultSpec()
	if got := s.CloudConfig().SecurityGroups; len(got) > 1 {
		t.Errorf("default spec groups %v", got)
	}
	s.SecurityGroups = []string{"sg-sim-app", sim.DefaultSecurityGroupID}
	got := s.CloudConfig().SecurityGroups
	if len(got) != 2 || got[0] != sim.DefaultSecurityGroupID || got[1] != "sg-sim-app" {
		t.Errorf("groups %v, want the default then sg-sim-app", got)
	}
}
