package sim

import (
	"net/http"
	"net/netip"
	"slices"
	"testing"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"
)

func assignPrefixes(client *ecs.Client, id string, count int, named ...string) (*ecs.AssignPrivateIpAddressesResponse, error) {
	req := ecs.CreateAssignPrivateIpAddressesRequest()
	req.NetworkInterfaceId = id
	if count > 0 {
		req.Ipv4PrefixCount = requests.NewInteger(count)
	}
	if len(named) > 0 {
		req.Ipv4Prefix = &named
	}
	return client.AssignPrivateIpAddresses(req)
}

func unassignPrefixes(client *ecs.Client, id string, ps ...string) error {
	req := ecs.CreateUnassignPrivateIpAddressesRequest()
	req.NetworkInterfaceId = id
	req.Ipv4Prefix = &ps
	_, err := client.UnassignPrivateIpAddresses(req)
	return err
}

func describePrefixes(t *testing.T, client *ecs.Client, id string) []string {
	t.Helper()
	resp := describeENIs(t, client, func(r *ecs.DescribeNetworkInterfacesRequest) { r.NetworkInterfaceId = &[]string{id} })
	if len(resp.NetworkInterfaceSets.NetworkInterfaceSet) != 1 {
		t.Fatalf("describe %s: %+v", id, resp.NetworkInterfaceSets)
	}
	var out []string
	for _, p := range resp.NetworkInterfaceSets.NetworkInterfaceSet[0].Ipv4PrefixSets.Ipv4PrefixSet {
		out = append(out, p.Ipv4Prefix)
	}
	return out
}

// Ensure prefixes are aligned /28s of free space, described, routed to the
// ENI address by address, and released on unassign.
func TestCloud_AssignUnassign_Prefixes(t *testing.T) {
	c, rec, inst, client := newTestAPI(t, nil) // ecs.g7.large: 6 IPv4 slots per ENI
	id := mustCreateENI(t, client, nil).NetworkInterfaceId
	mustAttach(t, client, id, inst.ID)

	resp, err := assignPrefixes(client, id, 2)
	if err != nil {
		t.Fatal(err)
	}
	// 172.30.1.0/28 holds the network address and the instance's and the
	// ENI's primaries, so the first free aligned /28s follow it.
	want := []string{"172.30.1.16/28", "172.30.1.32/28"}
	if got := resp.AssignedPrivateIpAddressesSet.Ipv4PrefixSet.Ipv4Prefixes; !slices.Equal(got, want) {
		t.Fatalf("assigned %v, want %v", got, want)
	}
	if got := describePrefixes(t, client, id); !slices.Equal(got, want) {
		t.Fatalf("described %v, want %v", got, want)
	}
	for _, es := range c.Snapshot().ENIs {
		if es.ID == id && len(es.Prefixes) != 2 {
			t.Fatalf("snapshot prefixes %v", es.Prefixes)
		}
	}
	calls := rec.Calls()
	last := calls[len(calls)-1]
	if last.Op != "addresses" || len(last.IPs) != 1+32 {
		t.Fatalf("fabric call %v: want the primary and 32 prefix addresses", last)
	}
	for _, s := range []string{"172.30.1.16", "172.30.1.31", "172.30.1.47"} {
		if !slices.Contains(last.IPs, netip.MustParseAddr(s)) {
			t.Fatalf("fabric does not route %s: %v", s, last.IPs)
		}
	}

	if _, err := assignPrefixes(client, id, 0, "172.30.1.64/28"); err != nil {
		t.Fatalf("named prefix: %v", err)
	}
	// primary + 3 prefixes = 4 slots of 6: 3 more exceed the quota.
	_, err = assignPrefixes(client, id, 3)
	wantCode(t, err, CodeIPv4CountExceeded, http.StatusForbidden)

	// An address inside a prefix is taken.
	req := ecs.CreateAssignPrivateIpAddressesRequest()
	req.NetworkInterfaceId = id
	req.PrivateIpAddress = &[]string{"172.30.1.17"}
	_, err = client.AssignPrivateIpAddresses(req)
	wantCode(t, err, CodeIPAssigned, http.StatusForbidden)

	if err := unassignPrefixes(client, id, "172.30.1.16/28"); err != nil {
		t.Fatal(err)
	}
	if got := describePrefixes(t, client, id); !slices.Equal(got, []string{"172.30.1.32/28", "172.30.1.64/28"}) {
		t.Fatalf("after unassign: %v", got)
	}
	calls = rec.Calls()
	if last := calls[len(calls)-1]; slices.Contains(last.IPs, netip.MustParseAddr("172.30.1.16")) {
		t.Fatalf("fabric still routes an unassigned prefix: %v", last)
	}
	wantCode(t, unassignPrefixes(client, id, "172.30.1.16/28"), CodeIPUnassigned, http.StatusForbidden)
	// The freed /28 is carved again.
	resp, err = assignPrefixes(client, id, 1)
	if err != nil || !slices.Equal(resp.AssignedPrivateIpAddressesSet.Ipv4PrefixSet.Ipv4Prefixes, []string{"172.30.1.16/28"}) {
		t.Fatalf("reassign: %v %+v", err, resp)
	}
}

func TestCloud_AssignPrefixes_Errors(t *testing.T) {
	_, _, _, client := newTestAPI(t, nil)
	id := mustCreateENI(t, client, nil).NetworkInterfaceId
	if _, err := assignPrefixes(client, id, 0, "172.30.1.48/28"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		mutate func(*ecs.AssignPrivateIpAddressesRequest)
		code   string
		status int
	}{
		{"count mixed with ip count", func(r *ecs.AssignPrivateIpAddressesRequest) {
			r.Ipv4PrefixCount = requests.NewInteger(1)
			r.SecondaryPrivateIpAddressCount = requests.NewInteger(1)
		}, CodeInvalidParameter, 400},
		{"prefix mixed with named ip", func(r *ecs.AssignPrivateIpAddressesRequest) {
			r.Ipv4Prefix = &[]string{"172.30.1.96/28"}
			r.PrivateIpAddress = &[]string{"172.30.1.100"}
		}, CodeInvalidParameter, 400},
		{"count and named prefix", func(r *ecs.AssignPrivateIpAddressesRequest) {
			r.Ipv4PrefixCount = requests.NewInteger(1)
			r.Ipv4Prefix = &[]string{"172.30.1.96/28"}
		}, CodeInvalidParameter, 400},
		{"count 0", func(r *ecs.AssignPrivateIpAddressesRequest) { r.Ipv4PrefixCount = requests.NewInteger(0) }, CodeInvalidParameter, 400},
		{"count 11", func(r *ecs.AssignPrivateIpAddressesRequest) { r.Ipv4PrefixCount = requests.NewInteger(11) }, CodeInvalidParameter, 400},
		{"unaligned", func(r *ecs.AssignPrivateIpAddressesRequest) { r.Ipv4Prefix = &[]string{"172.30.1.100/28"} }, CodeInvalidParameter, 400},
		{"not a /28", func(r *ecs.AssignPrivateIpAddressesRequest) { r.Ipv4Prefix = &[]string{"172.30.1.96/27"} }, CodeInvalidParameter, 400},
		{"outside the vswitch", func(r *ecs.AssignPrivateIpAddressesRequest) { r.Ipv4Prefix = &[]string{"172.30.2.16/28"} }, CodeVSwitchIPInvalid, 403},
		{"holds reserved addresses", func(r *ecs.AssignPrivateIpAddressesRequest) { r.Ipv4Prefix = &[]string{"172.30.1.240/28"} }, CodeIPAssigned, 403},
		{"already assigned", func(r *ecs.AssignPrivateIpAddressesRequest) { r.Ipv4Prefix = &[]string{"172.30.1.48/28"} }, CodeIPAssigned, 403},
		{"unknown eni", func(r *ecs.AssignPrivateIpAddressesRequest) {
			r.NetworkInterfaceId = "eni-nope"
			r.Ipv4PrefixCount = requests.NewInteger(1)
		}, CodeENINotFound, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := ecs.CreateAssignPrivateIpAddressesRequest()
			req.NetworkInterfaceId = id
			tt.mutate(req)
			_, err := client.AssignPrivateIpAddresses(req)
			wantCode(t, err, tt.code, tt.status)
		})
	}
	t.Run("unassign mixed", func(t *testing.T) {
		req := ecs.CreateUnassignPrivateIpAddressesRequest()
		req.NetworkInterfaceId = id
		req.Ipv4Prefix = &[]string{"172.30.1.48/28"}
		req.PrivateIpAddress = &[]string{"172.30.1.3"}
		_, err := client.UnassignPrivateIpAddresses(req)
		wantCode(t, err, CodeInvalidParameter, 400)
	})
}

// Ensure a fragmented vSwitch with free addresses but no free aligned /28
// refuses a prefix with the vSwitch's not-enough error.
func TestCloud_AssignPrefixes_Fragmented(t *testing.T) {
	c, _ := mustCloud(t, func(cfg *Config) {
		cfg.VSwitches = append(cfg.VSwitches, VSwitchSpec{ID: "vsw-frag", ZoneID: "cn-hangzhou-h", CIDR: netip.MustParsePrefix("172.30.9.0/26")})
	})
	mustInstance(t, c, InstanceSpec{Type: "ecs.g7.large"})
	client := mustECS(t, mustServeAPI(t, c), testKeyID, testSecret)
	id := mustCreateENI(t, client, func(r *ecs.CreateNetworkInterfaceRequest) { r.VSwitchId = "vsw-frag" }).NetworkInterfaceId
	// 172.30.9.0/28 holds the network address and .48/28 the reserved
	// top three; one address in each of the two others leaves no /28.
	req := ecs.CreateAssignPrivateIpAddressesRequest()
	req.NetworkInterfaceId = id
	req.PrivateIpAddress = &[]string{"172.30.9.20", "172.30.9.36"}
	if _, err := client.AssignPrivateIpAddresses(req); err != nil {
		t.Fatal(err)
	}
	_, err := assignPrefixes(client, id, 1)
	wantCode(t, err, CodeVSwitchIPNotEnough, http.StatusForbidden)
	vsw := describeVSwitch(t, client, "vsw-frag")
	if vsw.AvailableIpAddressCount < 16 {
		t.Fatalf("test wants >= 16 free addresses, vswitch has %d", vsw.AvailableIpAddressCount)
	}
}

func describeVSwitch(t *testing.T, client *ecs.Client, id string) ecs.VSwitch {
	t.Helper()
	req := ecs.CreateDescribeVSwitchesRequest()
	req.VSwitchId = id
	resp, err := client.DescribeVSwitches(req)
	if err != nil || len(resp.VSwitches.VSwitch) != 1 {
		t.Fatalf("describe vswitch %s: %v %+v", id, err, resp)
	}
	return resp.VSwitches.VSwitch[0]
}

func TestCloud_CreateNetworkInterface_Prefixes(t *testing.T) {
	_, _, _, client := newTestAPI(t, nil)
	resp := mustCreateENI(t, client, func(r *ecs.CreateNetworkInterfaceRequest) { r.Ipv4PrefixCount = requests.NewInteger(2) })
	var got []string
	for _, p := range resp.Ipv4PrefixSets.Ipv4PrefixSet {
		got = append(got, p.Ipv4Prefix)
	}
	if !slices.Equal(got, []string{"172.30.1.16/28", "172.30.1.32/28"}) {
		t.Fatalf("create answered prefixes %v", got)
	}
	req := ecs.CreateCreateNetworkInterfaceRequest()
	req.VSwitchId, req.SecurityGroupId = "vsw-sim-a", DefaultSecurityGroupID
	req.Ipv4PrefixCount = requests.NewInteger(1)
	req.SecondaryPrivateIpAddressCount = requests.NewInteger(1)
	_, err := client.CreateNetworkInterface(req)
	wantCode(t, err, CodeInvalidParameter, 400)
}

func TestCloud_AssignPrefixes_ClientToken(t *testing.T) {
	_, _, _, client := newTestAPI(t, nil)
	id := mustCreateENI(t, client, nil).NetworkInterfaceId
	assign := func() []string {
		req := ecs.CreateAssignPrivateIpAddressesRequest()
		req.NetworkInterfaceId = id
		req.Ipv4PrefixCount = requests.NewInteger(1)
		req.ClientToken = "tok"
		resp, err := client.AssignPrivateIpAddresses(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp.AssignedPrivateIpAddressesSet.Ipv4PrefixSet.Ipv4Prefixes
	}
	first, again := assign(), assign()
	if !slices.Equal(first, again) || len(describePrefixes(t, client, id)) != 1 {
		t.Fatalf("retried assign: %v then %v, eni has %v", first, again, describePrefixes(t, client, id))
	}
}
