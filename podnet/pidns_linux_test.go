package podnet

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veni-cni/veni/internal/testutil"
	"github.com/veni-cni/veni/ipam"
	"github.com/veni-cni/veni/store"
)

// Ensure GC run by a daemon in its own PID namespace (a DaemonSet without
// hostPID) does not take live pods for dead: the plugin's PID means
// nothing there, so a reservation's ADD is alive by its claim, and a
// /proc/<pid>/ns/net path recorded in the host's PID namespace is not
// judged at all. A pod whose namespace is really gone is still collected.
func TestGC_DaemonInOwnPIDNamespace(t *testing.T) {
	if path := os.Getenv("VENI_TEST_GC_STORE"); path != "" {
		db := store.File{Path: path}
		got, err := GC(context.Background(), Node{Store: db}, OwnerGone(db.ClaimsDir(), 0, time.Now()), "OwnerGone")
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		var keys []string
		for _, a := range got {
			keys = append(keys, string(a.Key))
		}
		fmt.Printf("released=%s pid=%d\n", strings.Join(keys, ","), os.Getpid())
		return
	}
	testutil.RequireRoot(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Fatalf("needs unshare (util-linux): %v", err)
	}
	db := mustStore(t)
	nodeNS := mustNetNS(t)

	// A CNI ADD in the host's PID namespace, between reserve and commit.
	adding := store.NewOwnerKey("adding", "eth0")
	claim, err := ClaimForAdd(context.Background(), db, adding, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer claim.Release()
	if _, err := ipam.Reserve(db, ipam.Owner{ContainerID: "adding", IfName: "eth0", PID: os.Getpid()}); err != nil {
		t.Fatal(err)
	}
	// A running pod whose runtime passed a /proc/<pid>/ns/net path.
	self := fmt.Sprintf("/proc/%d/ns/net", os.Getpid())
	id, err := IdentifyNetNS(self)
	if err != nil {
		t.Fatal(err)
	}
	mustBind(t, db, ipam.Owner{ContainerID: "proc-path", IfName: "eth0", NetNS: self, NetNSID: id})
	// A pod whose namespace is gone.
	mustBind(t, db, ipam.Owner{ContainerID: "gone", IfName: "eth0", NetNS: filepath.Join(t.TempDir(), "cni-gone"), NetNSID: id})

	cmd := exec.Command("ip", "netns", "exec", filepath.Base(nodeNS),
		"unshare", "--pid", "--fork", "--mount-proc", os.Args[0], "-test.run=^TestGC_DaemonInOwnPIDNamespace$")
	cmd.Env = append(os.Environ(), "VENI_TEST_GC_STORE="+db.Path)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("gc in its own pid namespace: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "released=gone/eth0 pid=1\n") {
		t.Fatalf("gc in its own pid namespace: %s\nwant exactly gone/eth0 released, by a process that is pid 1 there", out)
	}
	for _, key := range []store.OwnerKey{adding, store.NewOwnerKey("proc-path", "eth0")} {
		if _, found := allocation(t, db, key); !found {
			t.Errorf("%s released by a daemon that cannot see its owner", key)
		}
	}
}

func mustBind(tb testing.TB, db store.File, o ipam.Owner) {
	tb.Helper()
	r, err := ipam.Reserve(db, o)
	if err != nil {
		tb.Fatal(err)
	}
	if err := ipam.Commit(db, r.Key, ipam.HostSide{}, nil); err != nil {
		tb.Fatal(err)
	}
}
