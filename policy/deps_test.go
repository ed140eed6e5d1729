package policy_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestDeps_NoCyclonus pins that the oracle stays in tests: cyclonus
// drags ~650 packages (k8s.io/api, logrus, ginkgo) and must never reach
// the binary or this package.
func TestDeps_NoCyclonus(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go tool not in PATH")
	}
	for _, pkg := range []string{"github.com/veni-cni/veni", "github.com/veni-cni/veni/policy"} {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, banned := range []string{"github.com/mattfenwick/", "k8s.io/", "github.com/sirupsen/", "github.com/onsi/"} {
				if strings.HasPrefix(dep, banned) {
					t.Errorf("%s links %s", pkg, dep)
				}
			}
		}
	}
}

// TestInit_NoWork runs this test binary with GODEBUG=inittrace=1 and
// checks the policy package does no work at init. The package's own
// _test.go files are part of it in this binary, so they keep no
// package-level work either (no maps, no parsed addresses).
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
	seen := false
	for _, l := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(l, "init ") {
			continue
		}
		seen = true
		if f := strings.Fields(l); f[1] == "github.com/veni-cni/veni/policy" {
			t.Errorf("package init work: %s", l)
		}
	}
	if !seen {
		t.Fatal("no inittrace output: GODEBUG not honoured?")
	}
}
