package commands

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/veni-cni/veni/eni/sim"
)

func parseFaultFlags(tb testing.TB, args ...string) *simFaultOptions {
	tb.Helper()
	o := &simFaultOptions{simGlobalOptions: &simGlobalOptions{}}
	fs := pflag.NewFlagSet("fault", pflag.ContinueOnError)
	o.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		tb.Fatal(err)
	}
	o.changedFlags = fs.Changed
	return o
}

func TestSimFaultOptions_Request(t *testing.T) {
	lag := 2 * time.Second
	free := 0
	cases := []struct {
		name    string
		action  string
		args    []string
		want    sim.FaultRequest
		wantErr string
	}{
		{"throttle", "AttachNetworkInterface", []string{"--throttle", "0.3"}, sim.FaultRequest{Action: "AttachNetworkInterface", ThrottleRate: 0.3}, ""},
		{"5xx", "", []string{"--error-rate", "0.05", "--error-code", "ServiceUnavailable"}, sim.FaultRequest{ErrorRate: 0.05, ErrorCode: "ServiceUnavailable"}, ""},
		{"attach delay", "", []string{"--attach-delay", "10s"}, sim.FaultRequest{Attach: &sim.AttachFault{Delay: 10 * time.Second}}, ""},
		{"attach cleared", "", []string{"--attach-delay", "0"}, sim.FaultRequest{Attach: &sim.AttachFault{}}, ""},
		{"attach never", "", []string{"--attach-never"}, sim.FaultRequest{Attach: &sim.AttachFault{Never: true}}, ""},
		{"describe lag", "", []string{"--describe-lag", "2s"}, sim.FaultRequest{DescribeLag: &lag}, ""},
		{"vswitch cap", "", []string{"--vswitch", "vsw-a", "--vswitch-free", "0"}, sim.FaultRequest{VSwitchID: "vsw-a", VSwitchMaxMore: &free}, ""},
		{"vswitch clear", "", []string{"--vswitch", "vsw-a", "--clear"}, sim.FaultRequest{VSwitchID: "vsw-a", Clear: true}, ""},
		{"clear all", "", []string{"--clear"}, sim.FaultRequest{Clear: true}, ""},
		{"show", "", []string{"--show"}, sim.FaultRequest{}, ""},
		{"nothing", "", nil, sim.FaultRequest{}, "nothing to inject"},
		{"bad rate", "", []string{"--throttle", "1.5"}, sim.FaultRequest{}, "0..1"},
		{"bad code", "", []string{"--error-rate", "1", "--error-code", "Throttling"}, sim.FaultRequest{}, "--error-code"},
		{"cap without vswitch", "", []string{"--vswitch-free", "3"}, sim.FaultRequest{}, "needs --vswitch"},
		{"vswitch alone", "", []string{"--vswitch", "vsw-a"}, sim.FaultRequest{}, "--vswitch-free N or --clear"},
		{"both attach faults", "", []string{"--attach-never", "--attach-delay", "1s"}, sim.FaultRequest{}, "not both"},
		{"negative lag", "", []string{"--describe-lag", "-1s"}, sim.FaultRequest{}, "negative"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseFaultFlags(t, tc.args...).request(tc.action)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			gj, _ := json.Marshal(got)
			wj, _ := json.Marshal(tc.want)
			if err != nil || string(gj) != string(wj) {
				t.Fatalf("request %s, %v; want %s", gj, err, wj)
			}
		})
	}
}
