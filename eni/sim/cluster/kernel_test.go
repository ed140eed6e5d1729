package cluster

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// fakeSysctls is a /proc/sys of files and a registry directory, both
// temporary.
func fakeSysctls(tb testing.TB, values map[string]int64) sysctls {
	tb.Helper()
	s := sysctls{proc: tb.TempDir(), dir: tb.TempDir(), log: slog.New(slog.DiscardHandler)}
	for k, v := range values {
		p := s.path(k)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(strconv.FormatInt(v, 10)+"\n"), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return s
}

func (s sysctls) mustRead(tb testing.TB, key string) int64 {
	tb.Helper()
	v, err := s.read(key)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

const thresh3 = "net.ipv4.neigh.default.gc_thresh3"

// hold takes sim name's lock in the registry's directory, as its server
// does while it runs, and returns what lets it go, as the server's death.
func (s sysctls) hold(tb testing.TB, name string) (die func()) {
	tb.Helper()
	f, err := os.OpenFile(lockPath(s.dir, name), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		tb.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Close() })
	return func() { f.Close() }
}

// Ensure the limits grow with the nodes and their addresses.
func TestKernelLimits_Scale(t *testing.T) {
	spec := DefaultSpec()
	spec.Nodes = 200
	limits, err := KernelLimits(spec)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, l := range limits {
		got[l.Key] = l.Need
	}
	// ecs.g7.xlarge: 4 ENIs of 15 addresses.
	if want := int64(200*60*neighPerAddress + neighHeadroom); got[thresh3] != want {
		t.Errorf("gc_thresh3 need %d, want %d", got[thresh3], want)
	}
	if got["fs.inotify.max_user_instances"] <= 200 {
		t.Errorf("inotify instances need %d for 200 daemons", got["fs.inotify.max_user_instances"])
	}
	spec.InstanceType = "ecs.nonesuch"
	if _, err := KernelLimits(spec); err == nil {
		t.Error("an unknown instance type passed")
	}
}

// Ensure two sims hold a limit together: it is the larger need while both
// run, the other's need after one goes, the original after both.
func TestSysctls_Raise_TwoSims(t *testing.T) {
	s := fakeSysctls(t, map[string]int64{thresh3: 1024})
	s.hold(t, "big")
	s.hold(t, "small")
	if _, err := s.raise("big", []KernelLimit{{Key: thresh3, Need: 40000}}); err != nil {
		t.Fatal(err)
	}
	changes, err := s.raise("small", []KernelLimit{{Key: thresh3, Need: 5000}})
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || changes[0] != (KernelChange{Key: thresh3, Before: 1024, Now: 40000, Need: 5000}) {
		t.Fatalf("changes = %+v", changes)
	}
	if err := s.release("big"); err != nil {
		t.Fatal(err)
	}
	if got := s.mustRead(t, thresh3); got != 5000 {
		t.Fatalf("after the big sim: %d, want 5000", got)
	}
	if err := s.release("small"); err != nil {
		t.Fatal(err)
	}
	if got := s.mustRead(t, thresh3); got != 1024 {
		t.Fatalf("after both: %d, want 1024", got)
	}
	if _, err := os.Stat(filepath.Join(s.dir, sysctlRegistryFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("registry left behind: %v", err)
	}
	// Releasing again, as Down does after a clean stop, changes nothing.
	if err := s.release("small"); err != nil {
		t.Fatal(err)
	}
}

// Ensure a limit already high enough is neither held nor restored, and a
// value someone else changed meanwhile is left as they set it.
func TestSysctls_Release_LeavesOthersValues(t *testing.T) {
	s := fakeSysctls(t, map[string]int64{thresh3: 1024, "fs.inotify.max_user_instances": 8192})
	s.hold(t, "sim")
	if _, err := s.raise("sim", []KernelLimit{{Key: thresh3, Need: 9000}, {Key: "fs.inotify.max_user_instances", Need: 528}}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.path(thresh3), []byte("65536"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.release("sim"); err != nil {
		t.Fatal(err)
	}
	if got := s.mustRead(t, thresh3); got != 65536 {
		t.Fatalf("someone's 65536 became %d", got)
	}
	if got := s.mustRead(t, "fs.inotify.max_user_instances"); got != 8192 {
		t.Fatalf("a limit high enough became %d", got)
	}
}

// Ensure the holds of a sim that died without a down (its lock free) do
// not pin a limit: the next sim's raise drops them, and so does another
// sim's release.
func TestSysctls_DeadSimsHoldsDropped(t *testing.T) {
	s := fakeSysctls(t, map[string]int64{thresh3: 1024})
	die := s.hold(t, "crashed")
	if _, err := s.raise("crashed", []KernelLimit{{Key: thresh3, Need: 1504}}); err != nil {
		t.Fatal(err)
	}
	die()
	s.hold(t, "next")
	if _, err := s.raise("next", []KernelLimit{{Key: thresh3, Need: 1240}}); err != nil {
		t.Fatal(err)
	}
	if got := s.mustRead(t, thresh3); got != 1240 {
		t.Fatalf("with the crashed sim's hold dropped: %d, want 1240", got)
	}
	if err := s.release("next"); err != nil {
		t.Fatal(err)
	}
	if got := s.mustRead(t, thresh3); got != 1024 {
		t.Fatalf("after the last live sim: %d, want 1024", got)
	}

	// A sim that dies while another runs: the other's release drops it.
	s.hold(t, "a")
	dieB := s.hold(t, "b")
	if _, err := s.raise("a", []KernelLimit{{Key: thresh3, Need: 1240}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.raise("b", []KernelLimit{{Key: thresh3, Need: 1504}}); err != nil {
		t.Fatal(err)
	}
	dieB()
	if err := s.release("a"); err != nil {
		t.Fatal(err)
	}
	if got := s.mustRead(t, thresh3); got != 1024 {
		t.Fatalf("after a's release with b dead: %d, want 1024", got)
	}
	if _, err := os.Stat(filepath.Join(s.dir, sysctlRegistryFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("registry left behind: %v", err)
	}
}

// Ensure a limit that cannot be raised stops the sim with a message naming
// the sysctl, and what was raised before it is lowered again.
func TestSysctls_Raise_Refused(t *testing.T) {
	s := fakeSysctls(t, map[string]int64{thresh3: 1024, "fs.inotify.max_user_instances": 128})
	s.refuse = map[string]error{"fs.inotify.max_user_instances": syscall.EROFS}
	_, err := s.raise("sim", []KernelLimit{
		{Key: thresh3, Need: 9000, Why: "100 nodes"},
		{Key: "fs.inotify.max_user_instances", Need: 328, Why: "100 node daemons"},
	})
	if !errors.Is(err, syscall.EROFS) || !strings.Contains(err.Error(), "fs.inotify.max_user_instances is 128 and 100 node daemons may need 328") ||
		!strings.Contains(err.Error(), "sysctl -w fs.inotify.max_user_instances=328") {
		t.Fatalf("err = %v", err)
	}
	if got := s.mustRead(t, thresh3); got != 1024 {
		t.Fatalf("gc_thresh3 left at %d after the refusal", got)
	}
}
