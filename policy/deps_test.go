package policy_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
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

// TestInit_NoWork builds a program that only imports this package (by a
// -overlay file, so nothing is added to the tree and the package's own
// _test.go files are not in it), runs it with GODEBUG=inittrace=1 and
// checks the package does no work at init: it is linked into the CNI
// plugin, whose every call pays every init.
func TestInit_NoWork(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go tool not in PATH")
	}
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	dir := t.TempDir()
	main := filepath.Join(dir, "main.go")
	if err := os.WriteFile(main, []byte("package main\n\nimport _ \"github.com/veni-cni/veni/policy\"\n\nfunc main() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	virtual := filepath.Join(root, "policy", "internal", "initprobe", "main.go")
	overlay, _ := json.Marshal(map[string]any{"Replace": map[string]string{virtual: main}})
	if err := os.WriteFile(filepath.Join(dir, "overlay.json"), overlay, 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "probe")
	build := exec.Command("go", "build", "-overlay", filepath.Join(dir, "overlay.json"), "-o", bin, "./policy/internal/initprobe")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the probe: %v\n%s", err, out)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
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
