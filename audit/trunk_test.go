package audit

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/veni-cni/veni/eni"
	"github.com/veni-cni/veni/store"
)

// Ensure the member checks catch each way a member's records can
// disagree, and pass a consistent trunk.
func TestCheckMembers(t *testing.T) {
	trunk := store.ENI{ID: "eni-t", Kind: store.ENITrunk, State: store.ENIReady}
	m1 := store.ENI{ID: "eni-m1", Kind: store.ENIMember, TrunkID: "eni-t", VLANID: 3, PrimaryIP: netip.MustParseAddr("10.0.2.7"), Pod: "ns/a", State: store.ENIReady}
	m2 := store.ENI{ID: "eni-m2", Kind: store.ENIMember, TrunkID: "eni-t", VLANID: 4, PrimaryIP: netip.MustParseAddr("10.0.2.8"), State: store.ENIReady}
	ip1 := store.IP{Addr: m1.PrimaryIP, ENIID: m1.ID, State: store.IPBound, Owner: "c1/eth0"}
	ip2 := store.IP{Addr: m2.PrimaryIP, ENIID: m2.ID, State: store.IPFree}
	a1 := store.Allocation{Key: "c1/eth0", IP: m1.PrimaryIP, ENIID: m1.ID, PodNamespace: "ns", PodName: "a", State: store.IPBound}
	with := func(e store.ENI, f func(*store.ENI)) store.ENI { f(&e); return e }
	cases := []struct {
		name   string
		enis   []store.ENI
		ips    []store.IP
		allocs []store.Allocation
		want   []string // objects with a problem
	}{
		{"consistent", []store.ENI{trunk, m1, m2}, []store.IP{ip1, ip2}, []store.Allocation{a1}, nil},
		{"no trunk", []store.ENI{m1, m2}, []store.IP{ip1, ip2}, []store.Allocation{a1}, []string{"eni/eni-m1", "eni/eni-m2"}},
		{"vlan twice", []store.ENI{trunk, m1, with(m2, func(e *store.ENI) { e.VLANID = 3 })}, []store.IP{ip1, ip2}, []store.Allocation{a1}, []string{"eni/eni-m2"}},
		{"second address", []store.ENI{trunk, m1, m2}, []store.IP{ip1, ip2, {Addr: netip.MustParseAddr("10.0.2.9"), ENIID: m2.ID, State: store.IPFree}}, []store.Allocation{a1}, []string{"ip/10.0.2.9"}},
		{"held without allocation", []store.ENI{trunk, m1, m2}, []store.IP{ip1, ip2}, nil, []string{"eni/eni-m1"}},
		{"allocation of another pod", []store.ENI{trunk, with(m1, func(e *store.ENI) { e.Pod = "ns/b" }), m2}, []store.IP{ip1, ip2}, []store.Allocation{a1}, []string{"allocation/c1/eth0"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var r Report
			r.checkMembers(c.enis, c.ips, c.allocs)
			var got []string
			for _, p := range r.Problems {
				got = append(got, p.Object)
			}
			slices.Sort(got)
			if !slices.Equal(got, c.want) {
				t.Fatalf("problems %v, want on %v", r.Problems, c.want)
			}
		})
	}
	var r Report
	r.checkMemberCloud(m1, eni.ENI{Type: eni.TypeMember, TrunkID: "eni-t", DeviceIndex: 3})
	r.checkMemberCloud(m2, eni.ENI{Type: eni.TypeMember, TrunkID: "eni-t", DeviceIndex: 5})
	if len(r.Problems) != 1 || r.Problems[0].Object != "eni/eni-m2" {
		t.Fatalf("cloud problems %v, want one on eni-m2's VLAN ID", r.Problems)
	}
}
