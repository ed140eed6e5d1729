package netplumb

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
)

func TestOwnerAlias_RoundTrip(t *testing.T) {
	long := "/var/run/netns/" + strings.Repeat("x", 250)
	tests := []struct {
		name      string
		cfg       PodConfig
		wantNetNS string
	}{
		{"plain", PodConfig{ContainerID: "abc123", IfName: "eth0", ContainerNetNS: "/var/run/netns/cni-1"}, "/var/run/netns/cni-1"},
		{"path with spaces", PodConfig{ContainerID: "abc", IfName: "net1", ContainerNetNS: "/run/my ns/x"}, "/run/my ns/x"},
		{"too long for the kernel", PodConfig{ContainerID: strings.Repeat("f", 64), IfName: "eth0", ContainerNetNS: long}, ""},
		{"no netns", PodConfig{ContainerID: "abc", IfName: "eth0"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := ownerAlias(tt.cfg)
			if len(a) > maxAliasLen {
				t.Fatalf("alias is %d bytes, the kernel keeps %d", len(a), maxAliasLen)
			}
			id, ifName, ns, ok := parseOwnerAlias(a)
			if !ok || id != tt.cfg.ContainerID || ifName != tt.cfg.IfName || ns != tt.wantNetNS {
				t.Fatalf("parse(%q) = %q %q %q %v", a, id, ifName, ns, ok)
			}
		})
	}
	for _, bad := range []string{"", "veni0 a b c", "veni1 a b", "someone else's alias", "veni1  eth0 /x"} {
		if _, _, _, ok := parseOwnerAlias(bad); ok {
			t.Errorf("parse(%q) accepted", bad)
		}
	}
}

// HostPods lists every veni host veth with its owner and addresses, and
// keeps the ones whose owner record is unreadable.
func TestHostPods_Lists(t *testing.T) {
	topo := mustTopology(t)
	topo.mustENI(t)
	eni := topo.mustEnsureENI(t)
	cfgA, resA := topo.mustPod(t, eni, "aaaa", podA)
	cfgB, resB := topo.mustPod(t, eni, "bbbb", podB)

	// A host veth an older veni made: the right name, no alias.
	strayName := HostVethName("cccc", "eth0")
	stray := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: strayName}, PeerName: "strayp"}
	mustNoErr(t, topo.nodeH.LinkAdd(stray))
	strayLink, err := linkByName(topo.nodeH, strayName)
	mustNoErr(t, err)
	mustNoErr(t, topo.nodeH.LinkSetUp(strayLink))
	strayIP := netip.MustParseAddr("10.0.1.77")
	mustNoErr(t, topo.nodeH.RouteReplace(hostRoute(strayLink.Attrs().Index, strayIP)))
	// A link that is not veni's: ignored.
	mustNoErr(t, topo.nodeH.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "other0"}, PeerName: "other0p"}))

	got, err := HostPods(t.Context(), topo.node)
	mustNoErr(t, err)
	want := []HostPod{
		{ContainerID: "aaaa", IfName: "eth0", NetNS: cfgA.ContainerNetNS, IPs: []netip.Addr{podA}, Host: resA.Host, Owned: true},
		{ContainerID: "bbbb", IfName: "eth0", NetNS: cfgB.ContainerNetNS, IPs: []netip.Addr{podB}, Host: resB.Host, Owned: true},
		{IPs: []netip.Addr{strayIP}, Host: Interface{Name: strayName, Index: strayLink.Attrs().Index, MAC: strayLink.Attrs().HardwareAddr}},
	}
	slices.SortFunc(want, func(a, b HostPod) int { return strings.Compare(a.Host.Name, b.Host.Name) })
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("HostPods =\n%+v\nwant\n%+v", got, want)
	}
}
