package fabric

import (
	"net/netip"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"

	"github.com/veni-cni/veni/eni/sim"
)

func mustAssignPrefix6(t *testing.T, client *ecs.Client, eniID string) netip.Prefix {
	t.Helper()
	req := ecs.CreateAssignIpv6AddressesRequest()
	req.NetworkInterfaceId = eniID
	req.Ipv6PrefixCount = requests.NewInteger(1)
	resp, err := client.AssignIpv6Addresses(req)
	if err != nil {
		t.Fatalf("assign a /80 to %s: %v", eniID, err)
	}
	if len(resp.Ipv6PrefixSets.Ipv6Prefix) != 1 {
		t.Fatalf("assigned /80s %v, want one", resp.Ipv6PrefixSets.Ipv6Prefix)
	}
	return netip.MustParsePrefix(resp.Ipv6PrefixSets.Ipv6Prefix[0])
}

// at is the address of p at offset off (off < 2^32).
func at(p netip.Prefix, off uint32) netip.Addr {
	b := p.Masked().Addr().As16()
	b[12], b[13], b[14], b[15] = byte(off>>24), byte(off>>16), byte(off>>8), byte(off)
	return netip.AddrFrom16(b)
}

// Ensure the VPC routes any address of a delegated /80 to its ENI, not
// only its first, accepts the /80 as sources from that ENI only, and
// stops both once the /80 is unassigned, through the whole chain: the
// unchanged SDK delegates the /80 in the sim, the sim tells this fabric,
// the nodes use addresses deep inside it, reaching each other through the
// vSwitch gateway (no neighbour solicitation for a /80 address).
func TestFabric_Prefix6_RoutedAndAntiSpoofing(t *testing.T) {
	f := mustFabric(t)
	n1 := mustAddNode(t, f, "node-1", "i-1")
	n2 := mustAddNode(t, f, "node-2", "i-2")
	cloud, client := mustSimOn(t, f)
	var insts []sim.Instance
	for _, id := range []string{"i-1", "i-2"} {
		inst, err := cloud.AddInstance(sim.InstanceSpec{ID: id, Type: "ecs.g7.large", VSwitchID: "vsw-sim-a"})
		if err != nil {
			t.Fatal(err)
		}
		insts = append(insts, inst)
	}
	pa := mustAssignPrefix6(t, client, insts[0].PrimaryENIID)
	pb := mustAssignPrefix6(t, client, insts[1].PrimaryENIID)
	a1, a2 := at(pa, 0x1234), at(pa, 0xdead0001) // deep inside node-1's /80
	b1 := at(pb, 0xbeef)
	spoof := at(pb, 0x77) // node-2's /80, sent from node-1
	configure6(t, n1, 128, a1, a2, spoof)
	configure6(t, n2, 128, b1)

	mustServeTCP(t, n2.NetNS, netip.AddrPortFrom(b1, 7000).String())
	mustServeTCP(t, n1.NetNS, netip.AddrPortFrom(a2, 7000).String())
	for _, st := range []struct {
		name     string
		from     Node
		src, dst netip.Addr
	}{
		{"node-1 /80 to node-2 /80", n1, a1, b1},
		{"node-2 /80 to node-1 /80, far address", n2, b1, a2},
	} {
		t.Run(st.name, func(t *testing.T) {
			dst := netip.AddrPortFrom(st.dst, 7000).String()
			if err := dialFrom(st.from.NetNS, st.src.String(), dst, 5*time.Second); err != nil {
				t.Fatalf("%s -> %s: %v, want connected", st.src, dst, err)
			}
		})
	}
	sinkB := mustUDPSink(t, n2.NetNS, netip.AddrPortFrom(b1, 7100))
	sinkA := mustUDPSink(t, n1.NetNS, netip.AddrPortFrom(a2, 7100))
	oneWay := func(name string, from Node, src netip.Addr, sink *udpSink, want bool) {
		t.Run(name, func(t *testing.T) {
			timeout := 5 * time.Second
			if !want {
				timeout = time.Second
			}
			if got := sink.reaches(t, from.NetNS, src, timeout); got != want {
				t.Fatalf("%s -> %s arrived = %v, want %v", src, sink.addr, got, want)
			}
		})
	}
	oneWay("own /80 source arrives", n1, a1, sinkB, true)
	oneWay("other eni's /80 source dropped", n1, spoof, sinkB, false)
	oneWay("to the /80 before unassign", n2, b1, sinkA, true)

	unassign := ecs.CreateUnassignIpv6AddressesRequest()
	unassign.NetworkInterfaceId = insts[0].PrimaryENIID
	unassign.Ipv6Prefix = &[]string{pa.String()}
	if _, err := client.UnassignIpv6Addresses(unassign); err != nil {
		t.Fatal(err)
	}
	oneWay("unassigned /80 receives nothing", n2, b1, sinkA, false)
	oneWay("unassigned /80 sends nothing", n1, a1, sinkB, false)
}
