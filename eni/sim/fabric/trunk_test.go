//go:build linux

package fabric

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/veni-cni/veni/eni/sim/fabric/trunkbpf"
)

// Ensure the maps' intermediate state while a trunk changes holds both
// the old and the new members and addresses, never one address twice.
func TestMergeMembers(t *testing.T) {
	a := netip.MustParseAddr
	m := func(vlan uint16, addrs ...string) trunkbpf.Member {
		out := trunkbpf.Member{VLAN: vlan, Mark: memberMark(int(vlan))}
		for _, s := range addrs {
			out.Addrs = append(out.Addrs, a(s))
		}
		return out
	}
	for _, tc := range []struct {
		name            string
		prev, now, want []trunkbpf.Member
	}{
		{"attach", nil, []trunkbpf.Member{m(1, "10.0.0.1")}, []trunkbpf.Member{m(1, "10.0.0.1")}},
		{"detach", []trunkbpf.Member{m(1, "10.0.0.1"), m(2, "10.0.0.2")}, []trunkbpf.Member{m(2, "10.0.0.2")},
			[]trunkbpf.Member{m(2, "10.0.0.2"), m(1, "10.0.0.1")}},
		{"unassign", []trunkbpf.Member{m(1, "10.0.0.1", "10.0.0.3")}, []trunkbpf.Member{m(1, "10.0.0.1")},
			[]trunkbpf.Member{m(1, "10.0.0.1", "10.0.0.3")}},
		{"an address moves", []trunkbpf.Member{m(1, "10.0.0.1", "10.0.0.3"), m(2)}, []trunkbpf.Member{m(1, "10.0.0.1"), m(2, "10.0.0.3")},
			[]trunkbpf.Member{m(1, "10.0.0.1"), m(2, "10.0.0.3")}},
	} {
		if got := mergeMembers(tc.prev, tc.now); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: mergeMembers = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
