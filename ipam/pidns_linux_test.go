package ipam

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/veni-cni/veni/internal/testutil"
	"github.com/veni-cni/veni/store"
)

// Ensure a daemon in its own PID namespace (a DaemonSet without hostPID)
// does not take over the allocator lease of a live plugin it cannot see:
// the lease is the claim, which the kernel shows to every PID namespace.
// (The plugin's PID is not visible there: a PID check took the lease.)
func TestReconcile_LeaseHeldAcrossPIDNamespaces(t *testing.T) {
	if path := os.Getenv("VENI_TEST_RECONCILE_STORE"); path != "" {
		db := store.File{Path: path}
		cloud := newFakeCloud()
		cloud.addVSwitch("vsw-a", "10.0.0.0/24", 100)
		cfg := testConfig()
		cfg.MinPoolSize = 3
		rep, err := Reconcile(bg, db, cloud, testNode(), cfg, time.Now())
		fmt.Printf("leaseHeld=%v calls=%d err=%v pid=%d\n", rep.LeaseHeld, cloud.total(), err, os.Getpid())
		return
	}
	testutil.RequireRoot(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Fatalf("needs unshare (util-linux): %v", err)
	}
	db := mustStore(t)
	mustHoldAllocator(t, db) // the plugin, growing the pool in the host's PID namespace
	mustUpdate(t, db, func(tx *store.WriteTx) error {
		return tx.PutLease(store.Lease{Name: store.LeaseAllocator, Token: "plugin", HolderPID: os.Getpid(), Holder: "veni (CNI ADD)", Expires: time.Now().Add(time.Minute)})
	})
	cmd := exec.Command("unshare", "--pid", "--fork", "--mount-proc", os.Args[0], "-test.run=^TestReconcile_LeaseHeldAcrossPIDNamespaces$")
	cmd.Env = append(os.Environ(), "VENI_TEST_RECONCILE_STORE="+db.Path)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("reconcile in its own pid namespace: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "leaseHeld=true calls=0 err=<nil> pid=1\n") {
		t.Fatalf("reconcile in its own pid namespace: %s\nwant the lease seen as held and no cloud call", out)
	}
}
