package sim

import (
	"slices"
	"testing"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"
)

func assignPrefixes6(client *ecs.Client, id string, count int, named ...string) (*ecs.AssignIpv6AddressesResponse, error) {
	req := ecs.CreateAssignIpv6AddressesRequest()
	req.NetworkInterfaceId = id
	if count > 0 {
		req.Ipv6PrefixCount = requests.NewInteger(count)
	}
	if len(named) > 0 {
		req.Ipv6Prefix = &named
	}
	return client.AssignIpv6Addresses(req)
}

func unassignPrefixes6(client *ecs.Client, id string, ps ...string) error {
	req := ecs.CreateUnassignIpv6AddressesRequest()
	req.NetworkInterfaceId = id
	req.Ipv6Prefix = &ps
	_, err := client.UnassignIpv6Addresses(req)
	return err
}

func describePrefixes6(t *testing.T, client *ecs.Client, id string) []string {
	t.Helper()
	resp := describeENIs(t, client, func(r *ecs.DescribeNetworkInterfacesRequest) { r.NetworkInterfaceId = &[]string{id} })
	var out []string
	for _, p := range resp.NetworkInterfaceSets.NetworkInterfaceSet[0].Ipv6PrefixSets.Ipv6PrefixSet {
		out = append(out, p.Ipv6Prefix)
	}
	return out
}

// Ensure IPv6 prefixes are /80s of the vSwitch's /64 carved from its top
// (single addresses come from its bottom), answered by the assign and
// described, counted in the ENI's IPv6 quota, never overlapping an
// address, and released on unassign; a create can bring one.
func TestCloud_AssignUnassign_IPv6Prefixes(t *testing.T) {
	c, _, inst, client := newTestAPI(t, nil) // ecs.g7.large: 6 IPv6 per ENI
	created := mustCreateENI(t, client, func(r *ecs.CreateNetworkInterfaceRequest) { r.Ipv6PrefixCount = requests.NewInteger(1) })
	id := created.NetworkInterfaceId
	// The top /80 holds the gateway: never delegated.
	first := "fd00:ac1e:1:0:fffe::/80"
	if got := created.Ipv6PrefixSets.Ipv6PrefixSet; len(got) != 1 || got[0].Ipv6Prefix != first {
		t.Fatalf("create answered prefixes %+v, want %s", got, first)
	}
	mustAttach(t, client, id, inst.ID)
	resp, err := assignPrefixes6(client, id, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"fd00:ac1e:1:0:fffd::/80", "fd00:ac1e:1:0:fffc::/80"}
	if got := resp.Ipv6PrefixSets.Ipv6Prefix; !slices.Equal(got, want) {
		t.Fatalf("assigned %v, want %v", got, want)
	}
	if got := describePrefixes6(t, client, id); !slices.Equal(got, append([]string{first}, want...)) {
		t.Fatalf("described %v", got)
	}
	// Named: a free /80 is taken; an address inside a delegated /80 is not
	// handed out, nor a /80 holding an address.
	if _, err := assignPrefixes6(client, id, 0, "fd00:ac1e:1:0:1234::/80"); err != nil {
		t.Fatal(err)
	}
	if _, err := assignIPv6(client, id, 0, "fd00:ac1e:1:0:fffd::5"); err == nil {
		t.Fatal("an address inside a delegated /80 was assigned")
	}
	if _, err := assignIPv6(client, id, 1); err != nil {
		t.Fatal(err)
	}
	// 4 prefixes and 1 address: the sixth slot is the last.
	wantCode(t, func() error { _, err := assignPrefixes6(client, id, 2); return err }(), CodeIPv6CountExceeded, 403)
	for _, es := range c.Snapshot().ENIs {
		if es.ID == id && (len(es.IPv6Prefixes) != 4 || len(es.IPv6s) != 1) {
			t.Fatalf("snapshot %+v", es)
		}
	}
	if err := unassignPrefixes6(client, id, want...); err != nil {
		t.Fatal(err)
	}
	if got := describePrefixes6(t, client, id); !slices.Equal(got, []string{first, "fd00:ac1e:1:0:1234::/80"}) {
		t.Fatalf("after unassign: %v", got)
	}
	// A released /80 is free again.
	if _, err := assignPrefixes6(client, id, 0, want[0]); err != nil {
		t.Fatal(err)
	}
}

// Ensure the prefix form of AssignIpv6Addresses and UnassignIpv6Addresses
// answers the real errors and refuses calls that mix addresses and
// prefixes, as the IPv4 calls do.
func TestCloud_IPv6Prefixes_Errors(t *testing.T) {
	c, _, _, client := newTestAPI(t, nil)
	tiny := mustInstance(t, c, InstanceSpec{Type: "ecs.sim.tiny"})
	id := mustCreateENI(t, client, nil).NetworkInterfaceId
	if _, err := assignIPv6(client, id, 0, "fd00:ac1e:1:0:10::1"); err != nil {
		t.Fatal(err)
	}
	if _, err := assignPrefixes6(client, id, 0, "fd00:ac1e:1:0:20::/80"); err != nil {
		t.Fatal(err)
	}
	noV6 := mustCreateENI(t, client, func(r *ecs.CreateNetworkInterfaceRequest) { r.VSwitchId = "vsw-sim-b" }).NetworkInterfaceId
	onTiny := mustCreateENI(t, client, nil).NetworkInterfaceId
	mustAttach(t, client, onTiny, tiny.ID)
	mixed := func() error {
		req := ecs.CreateAssignIpv6AddressesRequest()
		req.NetworkInterfaceId = id
		req.Ipv6AddressCount = requests.NewInteger(1)
		req.Ipv6PrefixCount = requests.NewInteger(1)
		_, err := client.AssignIpv6Addresses(req)
		return err
	}
	unassignMixed := func() error {
		req := ecs.CreateUnassignIpv6AddressesRequest()
		req.NetworkInterfaceId = id
		req.Ipv6Address = &[]string{"fd00:ac1e:1:0:10::1"}
		req.Ipv6Prefix = &[]string{"fd00:ac1e:1:0:20::/80"}
		_, err := client.UnassignIpv6Addresses(req)
		return err
	}
	tests := []struct {
		name   string
		call   func() error
		code   string
		status int
	}{
		{"addresses and prefixes", mixed, CodeInvalidParameter, 400},
		{"unassign addresses and prefixes", unassignMixed, CodeInvalidParameter, 400},
		{"count and named", func() error { _, err := assignPrefixes6(client, id, 1, "fd00:ac1e:1:0:30::/80"); return err }, CodeInvalidParameter, 400},
		{"count 11", func() error { _, err := assignPrefixes6(client, id, 11); return err }, CodeInvalidParameter, 400},
		{"not a /80", func() error { _, err := assignPrefixes6(client, id, 0, "fd00:ac1e:1:0:30::/96"); return err }, CodeInvalidParameter, 400},
		{"not aligned", func() error { _, err := assignPrefixes6(client, id, 0, "fd00:ac1e:1:0:30::1/80"); return err }, CodeInvalidParameter, 400},
		{"outside the vswitch", func() error { _, err := assignPrefixes6(client, id, 0, "fd00:ac1e:2:0:30::/80"); return err }, CodeInvalidIPAddress, 400},
		{"holds an address", func() error { _, err := assignPrefixes6(client, id, 0, "fd00:ac1e:1:0:10::/80"); return err }, CodeIPAssigned, 403},
		{"already delegated", func() error { _, err := assignPrefixes6(client, id, 0, "fd00:ac1e:1:0:20::/80"); return err }, CodeIPAssigned, 403},
		{"holds the gateway", func() error { _, err := assignPrefixes6(client, id, 0, "fd00:ac1e:1:0:ffff::/80"); return err }, CodeIPAssigned, 403},
		{"repeated", func() error {
			_, err := assignPrefixes6(client, id, 0, "fd00:ac1e:1:0:40::/80", "fd00:ac1e:1:0:40::/80")
			return err
		}, CodeIPRepeated, 400},
		{"vswitch without ipv6", func() error { _, err := assignPrefixes6(client, noV6, 1); return err }, CodeVSwitchIPv6Off, 403},
		{"instance type without ipv6", func() error { _, err := assignPrefixes6(client, onTiny, 1); return err }, CodeIPv6NotSupported, 403},
		{"unassign a prefix not on the eni", func() error { return unassignPrefixes6(client, id, "fd00:ac1e:1:0:50::/80") }, CodeIPUnassigned, 403},
		{"create with addresses and prefixes", func() error {
			req := ecs.CreateCreateNetworkInterfaceRequest()
			req.VSwitchId, req.SecurityGroupId = "vsw-sim-a", DefaultSecurityGroupID
			req.Ipv6AddressCount, req.Ipv6PrefixCount = requests.NewInteger(1), requests.NewInteger(1)
			_, err := client.CreateNetworkInterface(req)
			return err
		}, CodeInvalidParameter, 400},
		{"create with a prefix on a vswitch without ipv6", func() error {
			req := ecs.CreateCreateNetworkInterfaceRequest()
			req.VSwitchId, req.SecurityGroupId = "vsw-sim-b", DefaultSecurityGroupID
			req.Ipv6PrefixCount = requests.NewInteger(1)
			_, err := client.CreateNetworkInterface(req)
			return err
		}, CodeVSwitchIPv6Off, 403},
		{"create with Ipv6Prefix.N, which the sim does not model", func() error {
			req := ecs.CreateCreateNetworkInterfaceRequest()
			req.VSwitchId, req.SecurityGroupId = "vsw-sim-a", DefaultSecurityGroupID
			req.Ipv6Prefix = &[]string{"fd00:ac1e:1:0:60::/80"}
			_, err := client.CreateNetworkInterface(req)
			return err
		}, CodeInvalidParameter, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantCode(t, tt.call(), tt.code, tt.status)
		})
	}
}
