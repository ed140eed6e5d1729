package fastpath

import "testing"

// The C enums and the Go fields must stay in step: a counter without a
// field would be read and dropped.
func TestHookCounters_Field_CoversEveryCounter(t *testing.T) {
	var hc HookCounters
	seen := make(map[*uint64]fastpathCounter)
	for c := fastpathCounter(0); c < fastpathCounterCNT_MAX; c++ {
		f := hc.field(c)
		if f == nil {
			t.Errorf("counter %d has no HookCounters field", c)
			continue
		}
		if prev, dup := seen[f]; dup {
			t.Errorf("counters %d and %d share a field", prev, c)
		}
		seen[f] = c
	}
	var all FamilyCounters
	for h := fastpathHook(0); h < fastpathHookHOOK_MAX; h++ {
		if all.hook(h) == nil {
			t.Errorf("hook %d has no Counters field", h)
		}
	}
}

func TestHostReason_MatchesC(t *testing.T) {
	tests := []struct {
		name string
		got  uint32
		want fastpathHostReason
	}{
		{"service", reasonService, fastpathHostReasonHOST_SERVICE},
		{"cidr", reasonCIDR, fastpathHostReasonHOST_CIDR},
		{"node", reasonNodeAddr, fastpathHostReasonHOST_NODE_ADDR},
		{"plain pod", reasonPlainPod, fastpathHostReasonHOST_PLAIN_POD},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != uint32(tc.want) {
				t.Errorf("Go reason %d, C reason %d", tc.got, tc.want)
			}
		})
	}
}
