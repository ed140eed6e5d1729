package main

import (
	"maps"
	"testing"

	"github.com/veni-cni/veni/ebpf/fastpath"
)

func TestAddCounters(t *testing.T) {
	m := map[string]uint64{}
	c := fastpath.Counters{
		FromPod: fastpath.HookCounters{Packets: 10, RedirectNeigh: 7, PassNotLocal: 3},
		FromENI: fastpath.HookCounters{Packets: 5, RedirectPeer: 5},
		IPv6:    fastpath.FamilyCounters{FromPod: fastpath.HookCounters{Packets: 4, RedirectPeer: 3}},
	}
	addCounters(m, c)
	addCounters(m, c) // a second node adds up
	for k, want := range map[string]uint64{"FromPod.Packets": 20, "FromPod.RedirectNeigh": 14, "FromPod.PassNotLocal": 6, "FromENI.RedirectPeer": 10, "ToPod.Packets": 0,
		"IPv6.FromPod.Packets": 8, "IPv6.FromPod.RedirectPeer": 6} {
		if m[k] != want {
			t.Errorf("%s = %d, want %d", k, m[k], want)
		}
	}
}

func TestCounterDelta_FastShare(t *testing.T) {
	before := map[string]uint64{"FromPod.Packets": 100, "FromPod.RedirectNeigh": 90, "FromENI.Packets": 5}
	tests := []struct {
		name  string
		after map[string]uint64
		share float64
		ok    bool
		delta map[string]uint64
	}{
		{
			name:  "all redirected",
			after: map[string]uint64{"FromPod.Packets": 200, "FromPod.RedirectNeigh": 190, "FromENI.Packets": 45, "FromENI.RedirectPeer": 40},
			share: 1, ok: true,
			delta: map[string]uint64{"FromPod.Packets": 100, "FromPod.RedirectNeigh": 100, "FromENI.Packets": 40, "FromENI.RedirectPeer": 40},
		},
		{
			name:  "half to the host",
			after: map[string]uint64{"FromPod.Packets": 300, "FromPod.RedirectNeigh": 190, "FromPod.PassNotLocal": 100, "FromENI.Packets": 5},
			share: 0.5, ok: true,
			delta: map[string]uint64{"FromPod.Packets": 200, "FromPod.RedirectNeigh": 100, "FromPod.PassNotLocal": 100},
		},
		{
			name:  "ipv6 counts too",
			after: map[string]uint64{"FromPod.Packets": 100, "FromPod.RedirectNeigh": 90, "FromENI.Packets": 5, "IPv6.FromPod.Packets": 10, "IPv6.FromPod.RedirectPeer": 5},
			share: 0.5, ok: true,
			delta: map[string]uint64{"IPv6.FromPod.Packets": 10, "IPv6.FromPod.RedirectPeer": 5},
		},
		{name: "nothing seen", after: before, delta: map[string]uint64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := counterDelta(before, tt.after)
			if !maps.Equal(d, tt.delta) {
				t.Errorf("delta %v, want %v", d, tt.delta)
			}
			share, ok := fastShare(d)
			if share != tt.share || ok != tt.ok {
				t.Errorf("share %v %v, want %v %v", share, ok, tt.share, tt.ok)
			}
		})
	}
}
