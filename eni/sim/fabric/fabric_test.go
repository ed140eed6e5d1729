package fabric

import (
	"testing"
)

func TestLinkName_FitsIFNAMSIZ(t *testing.T) {
	cases := []string{"eni-bp1a2b3c4d5e6f7g8h9i0j", "eni-x", "eni-bp1a2b3c4d5e6f7g8h9i0k"}
	seen := map[string]string{}
	for _, id := range cases {
		t.Run(id, func(t *testing.T) {
			n := LinkName(id)
			if len(n) > 15 {
				t.Fatalf("LinkName(%s) = %q: %d > 15 characters", id, n, len(n))
			}
			if other, ok := seen[n]; ok {
				t.Fatalf("LinkName(%s) = LinkName(%s) = %q", id, other, n)
			}
			seen[n] = id
			if LinkName(id) != n {
				t.Fatalf("LinkName(%s) not deterministic", id)
			}
		})
	}
}

func TestNodeIfName(t *testing.T) {
	cases := []struct {
		primary bool
		index   int
		want    string
	}{
		{true, 0, "eth0"},
		{false, 1, "eth1"},
		{false, 7, "eth7"},
	}
	for _, tc := range cases {
		t.Run(tc.want, func(t *testing.T) {
			if got := NodeIfName(tc.primary, tc.index); got != tc.want {
				t.Fatalf("NodeIfName(%v, %d) = %s, want %s", tc.primary, tc.index, got, tc.want)
			}
		})
	}
}

func TestBlackholeMetric_PerName(t *testing.T) {
	a, b := blackholeMetric(DefaultName), blackholeMetric("vt-0001")
	if a == b {
		t.Fatalf("blackholeMetric collides for %q and %q: %d", DefaultName, "vt-0001", a)
	}
	if a < 4000 || b < 4000 {
		t.Fatalf("metrics %d, %d below 4000", a, b)
	}
}
