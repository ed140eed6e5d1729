package enforce

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/veni-cni/veni/ebpf/fastpath"
	"github.com/veni-cni/veni/internal/testutil"
)

// testPinRoot keeps test pins apart from a running veni's (and from the
// fast path's tests).
const testPinRoot = fastpath.DefaultPinRoot + "-test-enforce"

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// mustPinDir returns a fresh per-node pin dir on bpffs and checks at cleanup
// that Teardown (policy, then fast path) leaves nothing behind.
func mustPinDir(tb testing.TB) string {
	tb.Helper()
	testutil.RequireRoot(tb)
	root := filepath.Join(testPinRoot, fmt.Sprintf("%d-%s", os.Getpid(), randHex(4)))
	dir := fastpath.NodePinDir(root, "node")
	tb.Cleanup(func() {
		if err := Teardown(dir); err != nil {
			tb.Errorf("teardown %s: %v", dir, err)
		}
		if err := fastpath.Teardown(dir); err != nil {
			tb.Errorf("fast path teardown %s: %v", dir, err)
		}
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
			tb.Errorf("pin dir %s survived teardown (stat: %v)", dir, err)
		}
		_ = os.Remove(root)
		_ = os.Remove(testPinRoot) // only when no other test run uses it
	})
	return dir
}

// mustOpen opens an Enforcer, closed at cleanup.
func mustOpen(tb testing.TB, opts Options) *Enforcer {
	tb.Helper()
	e, err := Open(opts)
	if err != nil {
		tb.Fatalf("open: %+v", err)
	}
	tb.Cleanup(func() {
		if err := e.Close(); err != nil {
			tb.Errorf("close: %v", err)
		}
	})
	return e
}
