package trunkbpf

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/veni-cni/veni/internal/testutil"
)

func mustLoad(t *testing.T) *Trunk {
	t.Helper()
	testutil.RequireRoot(t)
	tr, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tr.Close(); err != nil {
			t.Error(err)
		}
	})
	return tr
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

// Ensure Sync makes the maps exactly the members given: a member's
// addresses follow it, a removed member leaves no entry, and its VLAN ID
// can be given to another member.
func TestTrunk_Sync_MapsFollowMembers(t *testing.T) {
	tr := mustLoad(t)
	steps := []struct {
		name string
		in   []Member
	}{
		{"two members", []Member{
			{VLAN: 1, Mark: 0x7e000001, Addrs: addrs("172.30.3.5", "fd00:ac1e:3::5")},
			{VLAN: 2, Mark: 0x7e000002, Addrs: addrs("172.30.3.6", "172.30.3.7")},
		}},
		{"an address moves, one is unassigned", []Member{
			{VLAN: 1, Mark: 0x7e000001, Addrs: addrs("172.30.3.5", "172.30.3.7")},
			{VLAN: 2, Mark: 0x7e000002, Addrs: addrs("172.30.3.6")},
		}},
		{"a member without addresses yet", []Member{
			{VLAN: 1, Mark: 0x7e000001, Addrs: addrs("172.30.3.5", "172.30.3.7")},
			{VLAN: 2, Mark: 0x7e000002, Addrs: addrs("172.30.3.6")},
			{VLAN: 3, Mark: 0x7e000003},
		}},
		{"vlan 1 detached and reused", []Member{
			{VLAN: 1, Mark: 0x7e000001, Addrs: addrs("172.30.3.9")},
			{VLAN: 2, Mark: 0x7e000002, Addrs: addrs("172.30.3.6")},
		}},
		{"none", []Member{}},
	}
	for _, s := range steps {
		if err := tr.Sync(s.in); err != nil {
			t.Fatalf("%s: Sync: %v", s.name, err)
		}
		got, err := tr.Members()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, s.in) {
			t.Errorf("%s: maps hold %+v, want %+v", s.name, got, s.in)
		}
	}
}

func TestTrunk_Sync_Invalid(t *testing.T) {
	tr := mustLoad(t)
	for name, ms := range map[string][]Member{
		"vlan 0":        {{VLAN: 0}},
		"vlan 4095":     {{VLAN: 4095}},
		"vlan twice":    {{VLAN: 5}, {VLAN: 5}},
		"address twice": {{VLAN: 5, Addrs: addrs("172.30.3.5")}, {VLAN: 6, Addrs: addrs("172.30.3.5")}},
	} {
		if err := tr.Sync(ms); err == nil {
			t.Errorf("%s: Sync accepted %+v", name, ms)
		}
	}
	got, err := tr.Members()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Errorf("a refused Sync left %+v in the maps", got)
	}
}
