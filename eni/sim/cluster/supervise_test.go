package cluster

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fastBackoff keeps the tests short; ResetAfter is out of reach unless a
// test wants it.
var fastBackoff = Backoff{Initial: 20 * time.Millisecond, Max: 80 * time.Millisecond, ResetAfter: time.Hour}

func mustSupervise(tb testing.TB, p Process, b Backoff) *Supervisor {
	tb.Helper()
	s, err := Supervise(p, b, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Stop(time.Second) })
	return s
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Ensure a killed process is started again with a new pid, and that the
// status says how the last run ended.
func TestSupervisor_Restart_AfterKill(t *testing.T) {
	s := mustSupervise(t, Process{Name: "sleeper", Argv: []string{"sleep", "60"}}, fastBackoff)
	first := s.Status()
	if !first.Alive || first.PID == 0 || first.Restarts != 0 {
		t.Fatalf("status after start = %+v", first)
	}
	if err := syscall.Kill(first.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a restart", func() bool { st := s.Status(); return st.Alive && st.Restarts == 1 })
	st := s.Status()
	if st.PID == first.PID {
		t.Fatalf("restarted with the same pid %d", st.PID)
	}
	if !strings.Contains(st.LastExit, "killed") {
		t.Fatalf("last exit %q, want one saying it was killed", st.LastExit)
	}
}

// Ensure a process that dies at once is restarted with a doubling wait,
// capped at Max.
func TestSupervisor_Restart_BacksOff(t *testing.T) {
	dir := t.TempDir()
	stamps := filepath.Join(dir, "starts")
	// Each run appends the time it started, in nanoseconds, and fails.
	s := mustSupervise(t, Process{Name: "crasher", Argv: []string{"sh", "-c", "date +%s%N >> " + stamps + "; exit 3"}}, fastBackoff)
	waitFor(t, "six starts, the last one over", func() bool { st := s.Status(); return st.Restarts >= 5 && !st.Alive })
	if st := s.Status(); !strings.Contains(st.LastExit, "exit status 3") {
		t.Fatalf("last exit %q, want exit status 3", st.LastExit)
	}
	if err := s.Stop(time.Second); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(stamps)
	if err != nil {
		t.Fatal(err)
	}
	var starts []time.Time
	for _, line := range strings.Fields(string(b)) {
		var ns int64
		for _, c := range line {
			ns = ns*10 + int64(c-'0')
		}
		starts = append(starts, time.Unix(0, ns))
	}
	if len(starts) < 6 {
		t.Fatalf("%d starts recorded, want at least 6", len(starts))
	}
	// Waits: 20, 40, 80, 80, 80 ms (plus the time a shell takes to start).
	want := []time.Duration{20, 40, 80, 80, 80}
	for i, w := range want {
		gap := starts[i+1].Sub(starts[i])
		w *= time.Millisecond
		if gap < w || gap > w+500*time.Millisecond {
			t.Errorf("gap %d = %s, want %s (+ start-up)", i, gap, w)
		}
	}
}

// Ensure a process killed by a signal is restarted after Initial each
// time: only a process that exits by itself backs off.
func TestSupervisor_Restart_KillDoesNotBackOff(t *testing.T) {
	b := Backoff{Initial: 50 * time.Millisecond, Max: time.Hour, ResetAfter: time.Hour}
	s := mustSupervise(t, Process{Name: "sleeper", Argv: []string{"sleep", "60"}}, b)
	start := time.Now()
	// Doubling, six restarts would wait 50ms+100ms+...+1.6s = 3.15s.
	for i := 1; i <= 6; i++ {
		waitFor(t, "a running process", func() bool { return s.Status().Alive })
		if err := syscall.Kill(s.Status().PID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "a restart", func() bool { st := s.Status(); return st.Alive && st.Restarts == i })
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("six kills and restarts took %s: a kill escalated the back-off", took)
	}
}

// Ensure a run that lasted ResetAfter resets the wait to Initial.
func TestSupervisor_Restart_ResetsAfterStableRun(t *testing.T) {
	b := Backoff{Initial: 10 * time.Millisecond, Max: 10 * time.Second, ResetAfter: 50 * time.Millisecond}
	s := mustSupervise(t, Process{Name: "stable", Argv: []string{"sleep", "0.1"}}, b)
	// With no reset the third wait would be 40ms, the tenth seconds long;
	// each run lasts 100ms > ResetAfter, so every wait stays 10ms.
	start := time.Now()
	waitFor(t, "eight restarts", func() bool { return s.Status().Restarts >= 8 })
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("eight restarts took %s: the back-off was not reset", took)
	}
}

// Ensure Stop ends a process with SIGTERM and supervision with it.
func TestSupervisor_Stop_Terminates(t *testing.T) {
	s := mustSupervise(t, Process{Name: "sleeper", Argv: []string{"sleep", "60"}}, fastBackoff)
	pid := s.Status().PID
	if err := s.Stop(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Fatalf("pid %d still alive after Stop", pid)
	}
	st := s.Status()
	if st.Alive || st.PID != 0 || st.Restarts != 0 {
		t.Fatalf("status after stop = %+v", st)
	}
	if err := s.Stop(time.Second); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}

// Ensure Stop kills a process that ignores SIGTERM, and says so.
func TestSupervisor_Stop_KillsStubborn(t *testing.T) {
	s := mustSupervise(t, Process{Name: "stubborn", Argv: []string{"sh", "-c", "trap '' TERM; sleep 60 & wait"}}, fastBackoff)
	time.Sleep(100 * time.Millisecond) // let the shell install its trap
	err := s.Stop(200 * time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("Stop = %v, want an error saying it was killed", err)
	}
}

// Ensure Stop returns at once while the process waits to be restarted.
func TestSupervisor_Stop_DuringBackoff(t *testing.T) {
	b := Backoff{Initial: time.Hour, Max: time.Hour, ResetAfter: time.Hour}
	s := mustSupervise(t, Process{Name: "crasher", Argv: []string{"false"}}, b)
	waitFor(t, "the exit", func() bool { return !s.Status().NextStart.IsZero() })
	start := time.Now()
	if err := s.Stop(time.Second); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Fatalf("Stop took %s during an hour-long back-off", took)
	}
}

// Ensure a failed restart is retried, not the end of supervision, and the
// first start's failure is returned.
func TestSupervisor_Restart_RetriesFailedStart(t *testing.T) {
	if _, err := Supervise(Process{Name: "missing", Argv: []string{"/nonexistent/veni"}}, fastBackoff, nil); err == nil {
		t.Fatal("Supervise of a missing binary succeeded")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "prog")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	s := mustSupervise(t, Process{Name: "vanishing", Argv: []string{bin}, Log: filepath.Join(dir, "log")}, fastBackoff)
	waitFor(t, "one restart", func() bool { return s.Status().Restarts >= 1 })
	if err := os.Remove(bin); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a failed restart", func() bool { return strings.Contains(s.Status().LastExit, "restart failed") })
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nexec sleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a running process again", func() bool { return s.Status().Alive })
	if fi, err := os.Stat(filepath.Join(dir, "log")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("log file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
}
