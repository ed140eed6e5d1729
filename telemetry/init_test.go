package telemetry

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestInit_NoWork runs this test binary with GODEBUG=inittrace=1 and
// checks that the package has no init work (the runtime lists only
// packages that do some): the CNI plugin links it, and every CNI call
// would pay for it.
func TestInit_NoWork(t *testing.T) {
	if os.Getenv("VENI_INIT_PROBE") == "1" {
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestInit_NoWork$")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1", "VENI_INIT_PROBE=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(string(out), "init ") {
		t.Fatal("no inittrace output: GODEBUG not honoured?")
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "init github.com/veni-cni/veni/telemetry ") {
			t.Errorf("package init work: %s", l)
		}
	}
}
