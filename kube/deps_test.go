package kube_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestDeps_NoHeavyImports pins the reason this package exists: neither the
// veni binary nor kube and metrics link client-go, k8s.io/api or
// client_golang (their init costs 2–9 ms in every CNI call).
func TestDeps_NoHeavyImports(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go tool not in PATH")
	}
	for _, pkg := range []string{"github.com/veni-cni/veni", "github.com/veni-cni/veni/kube", "github.com/veni-cni/veni/metrics"} {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, banned := range []string{"k8s.io/", "github.com/prometheus/", "github.com/VictoriaMetrics/", "google.golang.org/protobuf"} {
				if strings.HasPrefix(dep, banned) {
					t.Errorf("%s links %s", pkg, dep)
				}
			}
		}
	}
}

// TestInit_NoWork runs this test binary with GODEBUG=inittrace=1 and
// checks that kube and metrics have no package init work at all (the Go
// runtime prints only packages that do some); their only init cost is the
// YAML decoder's, reported here.
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
		f := strings.Fields(l)
		switch {
		case f[1] == "github.com/veni-cni/veni/kube" || f[1] == "github.com/veni-cni/veni/metrics":
			t.Errorf("package init work: %s", l)
		case strings.Contains(f[1], "yaml"):
			t.Logf("dependency init: %s", l)
		}
	}
	if !seen {
		t.Fatal("no inittrace output: GODEBUG not honoured?")
	}
}
