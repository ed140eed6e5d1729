package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	simcluster "github.com/veni-cni/veni/eni/sim/cluster"
)

// The kernel limits a sim raises for its nodes (the neighbour table's,
// inotify's) are lowered again by sim down: after a clean stop and after
// the server was killed.

const gcThresh3 = "/proc/sys/net/ipv4/neigh/default/gc_thresh3"

func readSysctl(tb testing.TB, path string) int64 {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// mustLowSysctl sets a sysctl below what the test's sim needs for the
// test's length, so that the sim must raise it, and puts it back after.
func mustLowSysctl(tb testing.TB, path string, v int64) {
	tb.Helper()
	old := readSysctl(tb, path)
	if err := os.WriteFile(path, []byte(strconv.FormatInt(v, 10)), 0o644); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := os.WriteFile(path, []byte(strconv.FormatInt(old, 10)), 0o644); err != nil {
			tb.Errorf("restore %s: %v", path, err)
		}
	})
}

// simSysctlRegistry is the machine's record of the sims' holds on kernel
// limits, for a failure to show who holds one.
func simSysctlRegistry() string {
	b, err := os.ReadFile(filepath.Join(simcluster.LockDir, "sim-sysctls.json"))
	if err != nil {
		return err.Error()
	}
	return string(b)
}

type kernelState struct {
	State struct {
		PID    int `json:"pid"`
		Kernel []struct {
			Key    string `json:"key"`
			Before int64  `json:"before"`
			Now    int64  `json:"now"`
		} `json:"kernel"`
	} `json:"state"`
}

func TestSim_KernelLimits_UpDown(t *testing.T) {
	s := mustSim(t)
	mustLowSysctl(t, gcThresh3, 1024)
	s.mustRun("sim", "up", "--nodes", "3", "--daemons=false")
	raised := readSysctl(t, gcThresh3)
	if raised <= 1024 {
		t.Fatalf("gc_thresh3 = %d while a 3-node sim runs, want it raised", raised)
	}
	var st kernelState
	if err := json.Unmarshal([]byte(s.mustRun("sim", "status", "-o", "json")), &st); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, k := range st.State.Kernel {
		found = found || k.Key == "net.ipv4.neigh.default.gc_thresh3" && k.Before == 1024 && k.Now == raised
	}
	if !found {
		t.Fatalf("state does not record gc_thresh3 1024 → %d: %+v", raised, st.State.Kernel)
	}
	if out := s.mustRun("sim", "status"); !strings.Contains(out, "net.ipv4.neigh.default.gc_thresh3 1024→") {
		t.Errorf("status does not show the raised limit:\n%s", out)
	}
	s.mustRun("sim", "down")
	if got := readSysctl(t, gcThresh3); got != 1024 {
		t.Fatalf("gc_thresh3 = %d after sim down, want 1024 back; registry: %s", got, simSysctlRegistry())
	}
}

func TestSim_KernelLimits_DownAfterCrash(t *testing.T) {
	s := mustSim(t)
	mustLowSysctl(t, gcThresh3, 1024)
	s.mustRun("sim", "up", "--nodes", "2", "--daemons=false")
	var st kernelState
	if err := json.Unmarshal([]byte(s.mustRun("sim", "status", "-o", "json")), &st); err != nil {
		t.Fatal(err)
	}
	if err := unix.Kill(st.State.PID, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if b, err := os.ReadFile("/proc/" + strconv.Itoa(st.State.PID) + "/cmdline"); err != nil || len(b) == 0 {
			break
		}
	}
	if got := readSysctl(t, gcThresh3); got <= 1024 {
		t.Fatalf("gc_thresh3 = %d after the crash: the test proves nothing", got)
	}
	s.mustRun("sim", "down")
	if got := readSysctl(t, gcThresh3); got != 1024 {
		t.Fatalf("gc_thresh3 = %d after sim down of a crashed sim, want 1024 back; registry: %s", got, simSysctlRegistry())
	}
}
