package commands

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
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

func TestApplySimFault(t *testing.T) {
	cloud, err := sim.New(sim.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cloud.Close() })
	srv := httptest.NewServer(cloud.ControlHandler())
	t.Cleanup(srv.Close)
	st := simState{ControlEndpoint: srv.URL}
	ctx := context.Background()
	steps := []struct {
		args []string
		want string
	}{
		{[]string{"--attach-never"}, "attach: held in Attaching until cleared"},
		{[]string{"--describe-lag", "2s"}, "describe: lags 2s behind writes"},
		{[]string{"--vswitch", "vsw-sim-a", "--vswitch-free", "5"}, "vswitch vsw-sim-a: at most 5 more addresses (5 left)"},
		{[]string{"--error-rate", "0.05", "--error-code", "ServiceUnavailable"}, "every action: ServiceUnavailable 0.05"},
		{[]string{"--show"}, "injected: none"},
		{[]string{"--clear"}, "faults in force:\n  none"},
	}
	for _, s := range steps {
		o := parseFaultFlags(t, s.args...)
		req, err := o.request("")
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := applySimFault(ctx, &out, st, req, o.show); err != nil {
			t.Fatalf("%v: %v", s.args, err)
		}
		if !strings.Contains(out.String(), s.want) {
			t.Fatalf("%v printed %q, want %q", s.args, out.String(), s.want)
		}
	}
	if f := cloud.Faults(); len(f.Actions) != 0 || f.Attach.Never || f.DescribeLag != 0 || len(f.VSwitches) != 0 {
		t.Fatalf("faults left after --clear: %+v", f)
	}
}

// Ensure a fault an older sim would silently ignore is reported, not lost.
func TestApplySimFault_OldSim(t *testing.T) {
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// What sims before the run-time faults answered: the request's
		// per-action fields, echoed.
		var req struct {
			Action       string        `json:"action"`
			Latency      time.Duration `json:"latency"`
			ThrottleRate float64       `json:"throttleRate"`
			ErrorRate    float64       `json:"errorRate"`
			Clear        bool          `json:"clear"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		_ = json.NewEncoder(w).Encode(req)
	}))
	t.Cleanup(echo.Close)
	st := simState{ControlEndpoint: echo.URL}
	var out bytes.Buffer
	o := parseFaultFlags(t, "--attach-never")
	req, _ := o.request("")
	if err := applySimFault(context.Background(), &out, st, req, false); err == nil || !strings.Contains(err.Error(), "does not handle attach") {
		t.Fatalf("err = %v, want the sim to be called too old", err)
	}
	o = parseFaultFlags(t, "--throttle", "0.5")
	req, _ = o.request("")
	if err := applySimFault(context.Background(), &out, st, req, false); err != nil {
		t.Fatalf("an old-style fault to an old sim: %v", err)
	}
}
