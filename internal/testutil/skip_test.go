package testutil

import (
	"fmt"
	"strings"
	"testing"
)

// recorder is a testing.TB that records Skip and Fatal instead of ending
// the test, so the skip rules themselves can be tested.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper()                           {}
func (r *recorder) Skip(args ...any)                  { r.skipped = fmt.Sprint(args...) }
func (r *recorder) Skipf(format string, args ...any)  { r.skipped = fmt.Sprintf(format, args...) }
func (r *recorder) Fatalf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }

// Ensure a skip becomes a failure with the same message only when CI's
// switch is exactly "1".
func TestSkipf_RequirePrivileged(t *testing.T) {
	cases := []struct {
		env      string
		wantFail bool
	}{
		{"", false},
		{"0", false},
		{"yes", false},
		{"1", true},
	}
	for _, tc := range cases {
		t.Run("env="+tc.env, func(t *testing.T) {
			t.Setenv(RequirePrivilegedEnv, tc.env)
			r := &recorder{TB: t}
			Skipf(r, "no fast path on this kernel: %v", "missing helper")
			got, other := r.skipped, r.failed
			if tc.wantFail {
				got, other = r.failed, r.skipped
			}
			if !strings.Contains(got, "no fast path on this kernel: missing helper") || other != "" {
				t.Fatalf("skipped %q, failed %q; want fail=%v with the message", r.skipped, r.failed, tc.wantFail)
			}
		})
	}
}
