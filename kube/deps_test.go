package kube_test

import (
	"testing"

	"github.com/veni-cni/veni/internal/testutil"
)

// TestDeps_NoHeavyImports pins the reason this package exists: neither the
// veni binary nor kube and metrics link client-go, k8s.io/api or
// client_golang (their init costs 2–9 ms in every CNI call).
func TestDeps_NoHeavyImports(t *testing.T) {
	testutil.NoDeps(t, []string{"github.com/veni-cni/veni", "github.com/veni-cni/veni/kube", "github.com/veni-cni/veni/metrics"},
		[]string{"k8s.io/", "github.com/prometheus/", "github.com/VictoriaMetrics/", "google.golang.org/protobuf"})
}

// TestInit_NoWork checks that kube and metrics have no package init work at
// all; their only init cost is their dependencies' (the YAML decoder's),
// logged here.
func TestInit_NoWork(t *testing.T) {
	testutil.NoInitWork(t, "github.com/veni-cni/veni/kube", "github.com/veni-cni/veni/metrics")
}
