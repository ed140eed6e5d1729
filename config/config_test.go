package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// A Terway eni_conf as ACK writes it into the eni-config ConfigMap.
const terwayENIConf = `{
  "version": "1",
  "max_pool_size": 5,
  "min_pool_size": 0,
  "credential_path": "/var/addon/token-config",
  "vswitches": {"cn-hangzhou-i": ["vsw-bp1s7hq2kxc5qfnkxhxxx"], "cn-hangzhou-j": ["vsw-bp1a", "vsw-bp1b"]},
  "eni_tags": {"ack.aliyun.com": "c2bd84bba0ac34f8aa2bd0xxxxxx"},
  "service_cidr": "192.168.0.0/16",
  "security_group": "sg-bp19k3sj8dk3dcd7xxxx",
  "ip_stack": "ipv4",
  "resource_group_id": "rg-acfm3mkrure4xxx",
  "vswitch_selection_policy": "ordered",
  "idle_ip_reclaim_after": "10m",
  "idle_ip_reclaim_interval": "5m",
  "idle_ip_reclaim_batch_size": 3,
  "ip_pool_sync_period": "120s",
  "enable_eni_trunking": false,
  "kube_client_qps": 20,
  "kube_client_burst": 30,
  "enable_patch_pod_ips": true
}`

func TestParse_Terway(t *testing.T) {
	cfg, notes, err := Parse([]byte(terwayENIConf))
	wantErr(t, err, nil)
	checks := []struct {
		name string
		ok   bool
	}{
		{"pool", cfg.MaxPoolSize == 5 && cfg.MinPoolSize == 0},
		{"vswitches", slices.Equal(cfg.VSwitches["cn-hangzhou-j"], []string{"vsw-bp1a", "vsw-bp1b"})},
		{"security groups", slices.Equal(cfg.SecurityGroupIDs(), []string{"sg-bp19k3sj8dk3dcd7xxxx"})},
		{"tags", cfg.ENITags["ack.aliyun.com"] == "c2bd84bba0ac34f8aa2bd0xxxxxx"},
		{"reclaim", time.Duration(cfg.IdleReclaimAfter) == 10*time.Minute && time.Duration(cfg.IdleReclaimEvery) == 5*time.Minute && cfg.IdleReclaimBatch == 3},
		{"policy", cfg.VSwitchPolicy == VSwitchOrdered && cfg.ENIPolicy == ENIMostIPs},
		{"defaults kept", time.Duration(cfg.AllocWait) == DefaultAllocWait && cfg.DatapathMode() == DatapathAuto},
		{"trunking off", !cfg.Trunking()},
		{"credentials", cfg.CredentialPath == "/var/addon/token-config" && cfg.ResourceGroupID == "rg-acfm3mkrure4xxx"},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if !c.ok {
				t.Errorf("parsed %+v", cfg)
			}
		})
	}
	for _, field := range []string{"ip_pool_sync_period", "kube_client_qps", "kube_client_burst", "enable_patch_pod_ips"} {
		if !slices.ContainsFunc(notes, func(n string) bool { return strings.Contains(n, `"`+field+`" accepted but ignored`) }) {
			t.Errorf("no note for %s in %q", field, notes)
		}
	}
	if len(notes) != 4 {
		t.Errorf("notes = %q", notes)
	}
}

func TestParse_Unknown(t *testing.T) {
	_, notes, err := Parse([]byte(`{"max_pool_size": 5, "max_pool_sise": 7, "zzz": {}}`))
	wantErr(t, err, nil)
	if want := []string{`unknown field "max_pool_sise"`, `unknown field "zzz"`}; !slices.Equal(notes, want) {
		t.Errorf("notes = %q, want %q", notes, want)
	}
}

func TestParse_Invalid(t *testing.T) {
	cases := []struct {
		name, json, field string
	}{
		{"not json", `{"max_pool_size": `, "eni_conf"},
		{"negative", `{"max_pool_size": -1}`, "max_pool_size"},
		{"wrong type", `{"max_pool_size": "five"}`, "max_pool_size"},
		{"min above max", `{"max_pool_size": 2, "min_pool_size": 3}`, "min_pool_size"},
		{"policy", `{"vswitch_selection_policy": "best"}`, "vswitch_selection_policy"},
		{"eni policy", `{"eni_selection_policy": "any"}`, "eni_selection_policy"},
		{"duration", `{"idle_ip_reclaim_after": "ten minutes"}`, "idle_ip_reclaim_after"},
		{"service cidr", `{"service_cidr": "192.168.0.0"}`, "service_cidr"},
		{"ip stack", `{"ip_stack": "ipv5"}`, "ip_stack"},
		{"min_eni", `{"min_eni": 3, "max_eni": 2}`, "min_eni"},
		{"datapath", `{"datapath": "ipvlan"}`, "datapath"},
		{"too many sgs", `{"security_groups": ["1","2","3","4","5","6","7","8","9","10","11"]}`, "security_groups"},
		{"zero poll interval", `{"poll_interval": 0}`, "poll_interval"},
		{"zero lease ttl", `{"lease_ttl": "0s"}`, "lease_ttl"},
		{"lease ttl under attach timeout", `{"lease_ttl": "30s", "attach_timeout": "60s"}`, "lease_ttl"},
		{"zero attach timeout", `{"attach_timeout": 0}`, "attach_timeout"},
		{"zero alloc wait", `{"alloc_wait": "0s"}`, "alloc_wait"},
		{"huge alloc wait", `{"alloc_wait": "1h"}`, "alloc_wait"},
		{"zero reclaim interval", `{"idle_ip_reclaim_interval": 0}`, "idle_ip_reclaim_interval"},
		{"negative gc grace", `{"gc_grace": "-1s"}`, "gc_grace"},
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

func TestDuration_UnmarshalJSON(t *testing.T) {
	cases := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{`"10m"`, 10 * time.Minute, true},
		{`"1h30m"`, 90 * time.Minute, true},
		{`600`, 10 * time.Minute, true},
		{`"ten"`, 0, false},
		{`true`, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			var d Duration
			err := d.UnmarshalJSON([]byte(tc.in))
			if (err == nil) != tc.ok || (tc.ok && time.Duration(d) != tc.want) {
				t.Errorf("got %s, %v", time.Duration(d), err)
			}
		})
	}
}

func TestParse_NetworkPolicySwitch(t *testing.T) {
	cases := []struct {
		doc     string
		enabled bool
		errPart string // "" means valid
	}{
		{`{}`, true, ""}, // Terway's default: policy on
		{`{"network_policy": false}`, false, ""},
		{`{"network_policy": true}`, true, ""},
		{`{"disable_network_policy": "true"}`, false, ""}, // as Terway writes it
		{`{"disable_network_policy": "false"}`, true, ""},
		{`{"disable_network_policy": true}`, false, ""},
		{`{"disable_network_policy": "True"}`, false, ""},
		{`{"network_policy": true, "disable_network_policy": "false"}`, true, ""},
		{`{"network_policy": false, "disable_network_policy": "true"}`, false, ""},
		{`{"network_policy": true, "disable_network_policy": "true"}`, false, "contradicts disable_network_policy"},
		{`{"network_policy": false, "disable_network_policy": false}`, false, "remove one of them"},
		{`{"disable_network_policy": "yes"}`, false, "disable_network_policy"},
		{`{"network_policy": "on"}`, false, "network_policy"},
		{`{"policy_manifest_dir": "policies"}`, false, "not an absolute path"},
	}
	for _, c := range cases {
		t.Run(c.doc, func(t *testing.T) {
			cfg, _, err := Parse([]byte(c.doc))
			if c.errPart != "" {
				if err == nil || !strings.Contains(err.Error(), c.errPart) || !errors.Is(err, ErrInvalid) {
					t.Fatalf("err = %v, want ErrInvalid mentioning %q", err, c.errPart)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.PolicyEnabled() != c.enabled {
				t.Errorf("PolicyEnabled = %t, want %t", cfg.PolicyEnabled(), c.enabled)
			}
		})
	}
}

// Ensure enable_eni_trunking is read (as Terway writes it, boolean or
// string) and refused with dual stack, which members do not carry yet.
func TestParse_Trunking(t *testing.T) {
	for _, raw := range []string{`{"enable_eni_trunking": true}`, `{"enable_eni_trunking": "true"}`} {
		cfg, notes, err := Parse([]byte(raw))
		wantErr(t, err, nil)
		if !cfg.Trunking() || len(notes) != 0 {
			t.Errorf("%s: trunking %v, notes %q", raw, cfg.Trunking(), notes)
		}
	}
	for _, stack := range []string{"dual", "ipv6"} {
		_, _, err := Parse([]byte(`{"enable_eni_trunking": true, "ip_stack": "` + stack + `"}`))
		wantErr(t, err, ErrInvalid)
	}
	// IPv6 only alone is a valid stack.
	cfg, _, err := Parse([]byte(`{"ip_stack": "ipv6"}`))
	wantErr(t, err, nil)
	if !cfg.IPv6Only() || !cfg.WantsIPv6() || cfg.DualStack() {
		t.Errorf("ip_stack ipv6: IPv6Only %v WantsIPv6 %v DualStack %v", cfg.IPv6Only(), cfg.WantsIPv6(), cfg.DualStack())
	}
}
