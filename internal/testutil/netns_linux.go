package testutil

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"testing"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// RequireRoot skips the test unless it runs with CAP_NET_ADMIN (as root);
// under VENI_REQUIRE_PRIVILEGED=1 it fails it (see Skipf).
func RequireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		Skipf(tb, "needs root (CAP_NET_ADMIN): run with go test -exec sudo or as root")
	}
}

// SkipOnOldKernel skips the test when the running kernel is older than
// minVersion ("6.6"), naming the feature that needs it; under
// VENI_REQUIRE_PRIVILEGED=1 it fails it (see Skipf).
func SkipOnOldKernel(tb testing.TB, minVersion, feature string) {
	tb.Helper()
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		tb.Fatalf("uname: %v", err)
	}
	have := parseKernel(unix.ByteSliceToString(uts.Release[:]))
	want := parseKernel(minVersion)
	if have[0] < want[0] || (have[0] == want[0] && have[1] < want[1]) {
		Skipf(tb, "%s needs kernel >= %s", feature, minVersion)
	}
}

// parseKernel reads major and minor from a release such as "6.18.44-fc".
func parseKernel(s string) [2]int {
	var v [2]int
	_, _ = fmt.Sscanf(s, "%d.%d", &v[0], &v[1])
	return v
}

// NewNetNS creates a named network namespace (visible to "ip netns") that is
// deleted when the test ends, even when it fails. Skips without root (fails
// under VENI_REQUIRE_PRIVILEGED=1).
func NewNetNS(tb testing.TB) (name string, handle netns.NsHandle) {
	tb.Helper()
	RequireRoot(tb)
	name = "vtest-" + strconv.FormatInt(int64(os.Getpid()), 36) + "-" + randSuffix()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		tb.Fatalf("get current netns: %v", err)
	}
	defer orig.Close()
	h, err := netns.NewNamed(name)
	if err != nil {
		tb.Fatalf("create netns %s: %v", name, err)
	}
	if err := netns.Set(orig); err != nil {
		panic(fmt.Sprintf("cannot restore netns after creating %s: %v", name, err))
	}
	tb.Cleanup(func() {
		h.Close()
		// A test may delete the namespace itself (DEL after the netns is
		// gone is a case veni must handle), so "already gone" is fine.
		if err := netns.DeleteNamed(name); err != nil && !errors.Is(err, os.ErrNotExist) {
			tb.Errorf("delete netns %s: %v", name, err)
		}
	})
	return name, h
}

func randSuffix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x", b)
}
