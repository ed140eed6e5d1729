package testutil

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The CNI plugin is the whole veni binary, so every package it links runs
// its init in every CNI call. These two checks pin the packages that must
// stay cheap there.

// NoInitWork builds a program that only imports pkgs (through a -overlay
// file, so nothing is added to the tree and no _test.go file is in it),
// runs it with GODEBUG=inittrace=1 and fails tb for each of pkgs the
// runtime reports init work for (it lists only packages that do some).
// Dependencies' init lines are logged, not judged.
func NoInitWork(tb testing.TB, pkgs ...string) {
	tb.Helper()
	root := moduleRoot(tb)
	dir := tb.TempDir()
	var src strings.Builder
	src.WriteString("package main\n\nimport (\n")
	for _, p := range pkgs {
		src.WriteString("\t_ \"" + p + "\"\n")
	}
	src.WriteString(")\n\nfunc main() {}\n")
	main := filepath.Join(dir, "main.go")
	if err := os.WriteFile(main, []byte(src.String()), 0o644); err != nil {
		tb.Fatal(err)
	}
	virtual := filepath.Join(root, "internal", "testutil", "initprobe", "main.go")
	overlay, _ := json.Marshal(map[string]any{"Replace": map[string]string{virtual: main}})
	if err := os.WriteFile(filepath.Join(dir, "overlay.json"), overlay, 0o644); err != nil {
		tb.Fatal(err)
	}
	bin := filepath.Join(dir, "probe")
	build := exec.Command("go", "build", "-overlay", filepath.Join(dir, "overlay.json"), "-o", bin, "./internal/testutil/initprobe")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		tb.Fatalf("build the init probe: %v\n%s", err, out)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("%v\n%s", err, out)
	}
	judged := make(map[string]bool, len(pkgs))
	for _, p := range pkgs {
		judged[p] = true
	}
	seen := false
	for _, l := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(l, "init ") {
			continue
		}
		seen = true
		if f := strings.Fields(l); judged[f[1]] {
			tb.Errorf("package init work: %s", l)
		} else {
			tb.Logf("dependency init: %s", l)
		}
	}
	if !seen {
		tb.Fatal("no inittrace output: GODEBUG not honoured?")
	}
}

// NoDeps fails tb for every package under one of the banned prefixes that
// one of pkgs links (go list -deps).
func NoDeps(tb testing.TB, pkgs, banned []string) {
	tb.Helper()
	root := moduleRoot(tb)
	for _, pkg := range pkgs {
		cmd := exec.Command("go", "list", "-deps", pkg)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			tb.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, b := range banned {
				if strings.HasPrefix(dep, b) {
					tb.Errorf("%s links %s", pkg, dep)
				}
			}
		}
	}
}

// moduleRoot is the directory of veni's go.mod; the go tool must be in PATH
// (make test runs with it; a test binary run elsewhere fails here, loudly).
func moduleRoot(tb testing.TB) string {
	tb.Helper()
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(gomod)) == "" {
		tb.Fatalf("find go.mod (the go tool must be in PATH): %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(gomod)))
}
