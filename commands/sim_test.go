package commands

import (
	"bytes"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
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
		{"no cidr", "vsw-a", nil, "want id=cidr"},
		{"bad cidr", "vsw-a=172.30.1.0/33", nil, "vsw-a=172.30.1.0/33"},
		{"empty", " , ", nil, "no vswitch"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseVSwitches(tc.in, "cn-hangzhou-h")
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
				flat = append(flat, v.ID+" "+v.ZoneID+" "+v.CIDR.String())
			}
			if strings.Join(flat, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("got %q, want %q", flat, tc.want)
			}
		})
	}
}

func TestSimTopologyOptions_Config(t *testing.T) {
	cases := []struct {
		name    string
		opts    simTopologyOptions
		wantErr bool
		check   func(t *testing.T, o simTopologyOptions)
	}{
		{"defaults", simTopologyOptions{nodes: 2, attachDelay: time.Second}, false, nil},
		{"zero nodes", simTopologyOptions{nodes: 0}, true, nil},
		{"vswitches override", simTopologyOptions{nodes: 1, vswitches: "vsw-z=172.30.9.0/24"}, false, func(t *testing.T, o simTopologyOptions) {
			cfg, _ := o.config()
			if len(cfg.VSwitches) != 1 || cfg.VSwitches[0].CIDR != netip.MustParsePrefix("172.30.9.0/24") {
				t.Fatalf("vswitches = %+v", cfg.VSwitches)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := tc.opts.config()
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err == nil && cfg.AttachDelay != tc.opts.attachDelay {
				t.Fatalf("attach delay %v, want %v", cfg.AttachDelay, tc.opts.attachDelay)
			}
			if tc.check != nil {
				tc.check(t, tc.opts)
			}
		})
	}
}

func TestFindSimNode(t *testing.T) {
	st := simState{Name: "veni-sim", Nodes: []simNode{
		{Name: "node-1", InstanceID: "i-aaa", NetNS: "veni-sim-node-1"},
		{Name: "node-2", InstanceID: "i-bbb", NetNS: "veni-sim-node-2"},
	}}
	cases := []struct {
		key, want string
	}{
		{"node-2", "node-2"},
		{"i-aaa", "node-1"},
		{"veni-sim-node-2", "node-2"},
		{"node-3", ""},
	}
	for _, tc := range cases {
		t.Run(tc.key, func(t *testing.T) {
			n, err := findSimNode(st, tc.key)
			if tc.want == "" {
				if err == nil || !strings.Contains(err.Error(), "node-1, node-2") {
					t.Fatalf("err = %v, want a list of the nodes", err)
				}
				return
			}
			if err != nil || n.Name != tc.want {
				t.Fatalf("findSimNode(%s) = %s, %v; want %s", tc.key, n.Name, err, tc.want)
			}
		})
	}
}

func TestSimServerAlive(t *testing.T) {
	cases := []struct {
		name string
		pid  int
		want bool
	}{
		{"zero", 0, false},
		{"this test is not a sim server", os.Getpid(), false},
		{"no such process", 1 << 30, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := simServerAlive(tc.pid); got != tc.want {
				t.Fatalf("simServerAlive(%d) = %v, want %v", tc.pid, got, tc.want)
			}
		})
	}
}

// The commands reject bad arguments before touching any sim.
func TestSimCommand_ArgumentErrors(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"exec without dash", []string{"sim", "exec", "node-1", "ip", "link"}, "usage: veni sim exec"},
		{"fault with nothing", []string{"sim", "fault", "AttachNetworkInterface"}, "nothing to inject"},
		{"fault rate above 1", []string{"sim", "fault", "--throttle", "2"}, "within 0..1"},
		{"status bad output", []string{"sim", "status", "-o", "yaml"}, "want text or json"},
		{"up zero nodes", []string{"sim", "up", "--nodes", "0"}, "at least 1"},
		{"status with no sim", []string{"sim", "status", "--dir", "/nonexistent/veni-sim-test"}, "no sim running"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := NewRootCommand()
			var out bytes.Buffer
			root.SetOut(&out)
			root.SetErr(&out)
			root.SetArgs(tc.args)
			err := root.Execute()
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}
