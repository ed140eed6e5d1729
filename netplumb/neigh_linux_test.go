package netplumb

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Ensure the shortfall names the threshold a user must raise, for the
// figures of a dense node (two entries per pod).
func TestNeighbourShortfall(t *testing.T) {
	defaults := NeighbourLimits{128, 512, 1024}
	for _, tc := range []struct {
		pods, enis int
		want       string
	}{
		{18, 2, ""},            // ecs.g7.large: 2 secondary ENIs x 9 → 294 entries
		{120, 4, ""},           // 500 entries: just under gc_thresh2
		{300, 8, "gc_thresh2"}, // 864: above the soft maximum, live entries evicted
		{400, 8, "gc_thresh3"}, // 1064: above the hard one, overflow
	} {
		need := NeighbourEntries(tc.pods, tc.enis)
		got := NeighbourShortfall(defaults, need)
		if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
			t.Errorf("%d pods, %d ENIs (need %d): %q, want mention of %q", tc.pods, tc.enis, need, got, tc.want)
		}
		if s := SuggestedNeighbourLimits(need); NeighbourShortfall(s, need) != "" || s.Thresh2 < 2*need {
			t.Errorf("suggested %+v for %d entries falls short", s, need)
		}
	}
}

// Ensure RaiseNeighbourLimits raises only what is lower and reports
// what is in force; a namespace without the files is ErrNoNeighbourLimits.
func TestRaiseNeighbourLimits(t *testing.T) {
	dir := t.TempDir()
	old := neighbourDir
	neighbourDir = dir
	t.Cleanup(func() { neighbourDir = old })
	if _, err := ReadNeighbourLimits(); !errors.Is(err, ErrNoNeighbourLimits) {
		t.Fatalf("no files: %v", err)
	}
	for k, v := range map[string]string{"gc_thresh1": "128\n", "gc_thresh2": "512\n", "gc_thresh3": "50000\n"} {
		if err := os.WriteFile(filepath.Join(dir, k), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := RaiseNeighbourLimits(NeighbourLimits{4096, 8192, 16384})
	if err != nil || got != (NeighbourLimits{4096, 8192, 50000}) {
		t.Fatalf("raise: %+v %v", got, err)
	}
	if again, err := ReadNeighbourLimits(); err != nil || again != got {
		t.Fatalf("read back %+v %v, want %+v", again, err, got)
	}
}
