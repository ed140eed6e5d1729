package commands

import (
	"testing"
	"time"

	"github.com/veni-cni/veni/eni/sim"
)

func TestSimQuota_Change(t *testing.T) {
	inForce := sim.Quotas{PerAPI: map[string]int{"AssignPrivateIpAddresses": 400, "DescribeNetworkInterfaces": 800}}
	cases := []struct {
		name    string
		args    []string
		flags   map[string]string
		want    *sim.Quotas // nil: no change (show)
		wantErr bool
	}{
		{name: "show", want: nil},
		{name: "one action", args: []string{"AssignPrivateIpAddresses=100"},
			want: &sim.Quotas{PerAPI: map[string]int{"AssignPrivateIpAddresses": 100, "DescribeNetworkInterfaces": 800}}},
		{name: "lift one", args: []string{"DescribeNetworkInterfaces=0"},
			want: &sim.Quotas{PerAPI: map[string]int{"AssignPrivateIpAddresses": 400}}},
		{name: "account and window", flags: map[string]string{"account": "50", "window": "10s"},
			want: &sim.Quotas{PerAPI: inForce.PerAPI, Account: 50, Window: 10 * time.Second}},
		{name: "off", flags: map[string]string{"off": "true"}, want: &sim.Quotas{}},
		{name: "off and more", args: []string{"AssignPrivateIpAddresses=1"}, flags: map[string]string{"off": "true"}, wantErr: true},
		{name: "unknown action", args: []string{"RunInstances=5"}, wantErr: true},
		{name: "not a number", args: []string{"AssignPrivateIpAddresses=many"}, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd := newSimQuotaCommand(&simGlobalOptions{})
			for k, v := range tc.flags {
				if err := cmd.Flags().Set(k, v); err != nil {
					t.Fatal(err)
				}
			}
			o := &simQuotaOptions{}
			o.account, _ = cmd.Flags().GetInt("account")
			o.window, _ = cmd.Flags().GetDuration("window")
			o.off, _ = cmd.Flags().GetBool("off")
			o.changed = cmd.Flags().Changed
			change, err := o.change(tc.args)
			if err == nil && change != nil {
				var q sim.Quotas
				q, err = change(inForce)
				if err == nil && tc.want != nil && !quotasEqual(q, *tc.want) {
					t.Fatalf("quotas = %+v, want %+v", q, *tc.want)
				}
			}
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if !tc.wantErr && (change == nil) != (tc.want == nil) {
				t.Fatalf("change = %v, want one: %v", change != nil, tc.want != nil)
			}
		})
	}
}

func quotasEqual(a, b sim.Quotas) bool {
	if a.Account != b.Account || a.Window != b.Window || len(a.PerAPI) != len(b.PerAPI) {
		return false
	}
	for k, v := range a.PerAPI {
		if b.PerAPI[k] != v {
			return false
		}
	}
	return true
}
