package telemetry

import (
	"testing"

	"github.com/veni-cni/veni/internal/testutil"
)

// Ensure the package has no init work: the CNI plugin links it, and every
// CNI call would pay for it.
func TestInit_NoWork(t *testing.T) {
	testutil.NoInitWork(t, "github.com/veni-cni/veni/telemetry")
}
