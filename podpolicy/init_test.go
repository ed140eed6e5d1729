package podpolicy_test

import (
	"testing"

	"github.com/veni-cni/veni/internal/testutil"
)

// TestInit_NoWork checks the package does no work at init: the CNI plugin
// links it (ADD plans the pod's policy), and every call pays every init.
func TestInit_NoWork(t *testing.T) {
	testutil.NoInitWork(t, "github.com/veni-cni/veni/podpolicy")
}

// TestDeps_NoHeavyImports pins that neither the cyclonus oracle nor
// client-go reaches the package (and so the binary through it).
func TestDeps_NoHeavyImports(t *testing.T) {
	testutil.NoDeps(t, []string{"github.com/veni-cni/veni/podpolicy"},
		[]string{"github.com/mattfenwick/", "k8s.io/", "github.com/sirupsen/", "github.com/onsi/"})
}
