package policy_test

import (
	"testing"

	"github.com/veni-cni/veni/internal/testutil"
)

// TestDeps_NoCyclonus pins that the oracle stays in tests: cyclonus
// drags ~650 packages (k8s.io/api, logrus, ginkgo) and must never reach
// the binary or this package.
func TestDeps_NoCyclonus(t *testing.T) {
	testutil.NoDeps(t, []string{"github.com/veni-cni/veni", "github.com/veni-cni/veni/policy"},
		[]string{"github.com/mattfenwick/", "k8s.io/", "github.com/sirupsen/", "github.com/onsi/"})
}

// TestInit_NoWork checks the package does no work at init: it is linked
// into the CNI plugin, whose every call pays every init.
func TestInit_NoWork(t *testing.T) {
	testutil.NoInitWork(t, "github.com/veni-cni/veni/policy")
}
