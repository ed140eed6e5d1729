package commands

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/veni-cni/veni/eni/sim/cluster"
)

// Ensure the topology flags become the spec the server builds, and bad
// ones are refused before any sim is touched.
func TestSimTopologyOptions_ToSpec(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		wantErr string
		check   func(t *testing.T, s cluster.Spec)
	}{
		{"defaults", nil, "", func(t *testing.T, s cluster.Spec) {
			d := cluster.DefaultSpec()
			if s.Nodes != d.Nodes || s.InstanceType != d.InstanceType || !s.Daemons || s.VSwitches != nil || s.NodeConfig != nil {
				t.Fatalf("spec = %+v, want the defaults", s)
			}
		}},
		{"everything", []string{"--nodes", "3", "--attach-delay", "2s", "--vswitches", "vsw-z=172.30.9.0/24", "--node-config", "max_eni=2",
			"--node-config", "idle_ip_reclaim_after=30s", "--daemons=false", "--datapath", "plain", "--start-concurrency", "4"}, "", func(t *testing.T, s cluster.Spec) {
			if s.Nodes != 3 || s.AttachDelay != 2*time.Second || s.Daemons || s.Datapath != "plain" || s.StartConcurrency != 4 {
				t.Fatalf("spec = %+v", s)
			}
			if len(s.VSwitches) != 1 || s.VSwitches[0].CIDR != netip.MustParsePrefix("172.30.9.0/24") {
				t.Fatalf("vswitches = %+v", s.VSwitches)
			}
			if s.NodeConfig["max_eni"] != float64(2) || s.NodeConfig["idle_ip_reclaim_after"] != "30s" {
				t.Fatalf("node config = %#v", s.NodeConfig)
			}
		}},
		{"zero nodes", []string{"--nodes", "0"}, "at least 1", nil},
		{"bad vswitches", []string{"--vswitches", "vsw-a"}, "want id=cidr", nil},
		{"bad node config", []string{"--node-config", "novalue"}, "want key=value", nil},
		{"min above max", []string{"--min-pool-size", "6"}, "min <= max", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var o simTopologyOptions
			fs := pflag.NewFlagSet("up", pflag.ContinueOnError)
			o.AddFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			s, err := o.toSpec()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, s)
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
		{"connectivity zero timeout", []string{"sim", "connectivity", "--timeout", "0s"}, "must be positive"},
		{"connectivity icmp", []string{"sim", "connectivity", "--proto", "tcp,icmp"}, "want tcp, udp or sctp"},
		{"connectivity port 0", []string{"sim", "connectivity", "--port", "0"}, "want 1-65535"},
		{"connectivity yaml", []string{"sim", "connectivity", "-o", "yaml"}, "want table or json"},
		{"pod add bad send-udp", []string{"sim", "pod", "add", "node-1", "p", "--send-udp", "10.0.0.1"}, "want IPv4:port"},
		{"pod label with no sim", []string{"sim", "pod", "label", "node-1", "p", "app=v", "--dir", "/nonexistent/veni-sim-test"}, "no sim running"},
		{"namespace label with no sim", []string{"sim", "namespace", "label", "x", "a=b", "--dir", "/nonexistent/veni-sim-test"}, "no sim running"},
		{"status with no sim", []string{"sim", "status", "--dir", "/nonexistent/veni-sim-test"}, "no sim running"},
		{"pod list with no sim", []string{"sim", "pod", "list", "--dir", "/nonexistent/veni-sim-test"}, "no sim running"},
		{"env with no sim", []string{"sim", "env", "node-1", "--dir", "/nonexistent/veni-sim-test"}, "no sim running"},
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
