package metrics

import (
	"testing"

	"github.com/veni-cni/veni/internal/testutil"
)

// Ensure the package has no init work: linking it costs a CNI call nothing.
func TestInit_NoWork(t *testing.T) {
	testutil.NoInitWork(t, "github.com/veni-cni/veni/metrics")
}
