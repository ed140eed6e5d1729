package crictest

import (
	"os/exec"
	"testing"

	"github.com/veni-cni/veni/internal/testutil"
)

// Commands are the programs a containerd of this package needs on PATH
// (Debian's containerd package provides the first three, runc the last).
var Commands = []string{"containerd", "containerd-shim-runc-v2", "ctr", "runc"}

// RequireContainerd skips the test unless it runs as root with every
// Commands entry installed; under VENI_REQUIRE_PRIVILEGED=1 it fails it
// instead (testutil.Skipf): in CI containerd must be there.
func RequireContainerd(tb testing.TB) {
	tb.Helper()
	testutil.RequireRoot(tb)
	var missing []string
	for _, c := range Commands {
		if _, err := exec.LookPath(c); err != nil {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		testutil.Skipf(tb, "needs containerd and runc (missing %v): run hack/deps.sh test as root, or apt-get install containerd runc", missing)
	}
}
