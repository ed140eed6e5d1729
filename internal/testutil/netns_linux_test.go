package testutil

import (
	"strings"
	"testing"
)

func TestSkipOnOldKernel_Switch(t *testing.T) {
	cases := []struct {
		name, min, env string
		skip, fail     bool
	}{
		{"old enough", "2.6", "1", false, false},
		{"too old, developer", "999.0", "", true, false},
		{"too old, ci", "999.0", "1", false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(RequirePrivilegedEnv, tc.env)
			r := &recorder{TB: t}
			SkipOnOldKernel(r, tc.min, "tcx")
			if (r.skipped != "") != tc.skip || (r.failed != "") != tc.fail {
				t.Fatalf("skipped %q, failed %q; want skip=%v fail=%v", r.skipped, r.failed, tc.skip, tc.fail)
			}
			if msg := r.skipped + r.failed; msg != "" && !strings.Contains(msg, "tcx needs kernel >= "+tc.min) {
				t.Fatalf("message %q does not name the feature and version", msg)
			}
		})
	}
}

func TestParseKernel(t *testing.T) {
	cases := []struct {
		in   string
		want [2]int
	}{
		{"6.18.44-fc-v782", [2]int{6, 18}},
		{"6.6", [2]int{6, 6}},
		{"5.10.0-28-amd64", [2]int{5, 10}},
		{"garbage", [2]int{0, 0}},
	}
	for _, tc := range cases {
		if got := parseKernel(tc.in); got != tc.want {
			t.Errorf("parseKernel(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
