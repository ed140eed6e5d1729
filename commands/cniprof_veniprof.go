//go:build veniprof

package commands

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
)

// cpuProfileHz is the CPU profile's sampling rate: a plugin run lasts tens
// of milliseconds, the default 100 Hz would see a few samples of it.
const cpuProfileHz = 1000

// profileCNI profiles the plugin run when VENI_CNI_PROFILE_DIR is set: a
// CPU profile and an execution trace (whose syscall, sync and scheduler
// profiles, "go tool trace -pprof=...", show where the wall time goes) in
// that directory, named <CNI_COMMAND>-<pod netns>-<pid>. Only a binary
// built with "-tags veniprof" has it (make build does not).
func profileCNI() func() {
	dir := os.Getenv("VENI_CNI_PROFILE_DIR")
	if dir == "" {
		return func() {}
	}
	base := filepath.Join(dir, fmt.Sprintf("%s-%s-%d", os.Getenv("CNI_COMMAND"), filepath.Base(os.Getenv("CNI_NETNS")), os.Getpid()))
	cpu, err := os.Create(base + ".cpu.pprof")
	if err != nil {
		return func() {}
	}
	tr, err := os.Create(base + ".trace")
	if err != nil {
		cpu.Close()
		return func() {}
	}
	// Before StartCPUProfile, whose own 100 Hz then only warns.
	runtime.SetCPUProfileRate(cpuProfileHz)
	_ = pprof.StartCPUProfile(cpu)
	_ = trace.Start(tr)
	return func() {
		trace.Stop()
		pprof.StopCPUProfile()
		tr.Close()
		cpu.Close()
	}
}
