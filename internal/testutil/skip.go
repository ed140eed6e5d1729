package testutil

import (
	"fmt"
	"os"
	"testing"
)

// RequirePrivilegedEnv names the switch CI sets ("1") so that a test which
// would skip for want of root, a kernel feature or a tool fails instead:
// on the CI machine everything is there, and a skip would only hide a test
// that never ran.
const RequirePrivilegedEnv = "VENI_REQUIRE_PRIVILEGED"

// Skipf skips a test whose environment lacks something it needs (root, a
// kernel feature, a command). With VENI_REQUIRE_PRIVILEGED=1 it fails the
// test with the same message instead.
//
// Skips for other reasons (testing.Short) stay plain tb.Skip calls.
func Skipf(tb testing.TB, format string, args ...any) {
	tb.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv(RequirePrivilegedEnv) == "1" {
		tb.Fatalf("%s (%s=1: this test must run, not skip)", msg, RequirePrivilegedEnv)
		return
	}
	tb.Skip(msg)
}
