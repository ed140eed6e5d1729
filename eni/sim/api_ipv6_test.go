package sim

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/vpc"
)

func assignIPv6(client *ecs.Client, id string, count int, named ...string) (*ecs.AssignIpv6AddressesResponse, error) {
	req := ecs.CreateAssignIpv6AddressesRequest()
	req.NetworkInterfaceId = id
	if count > 0 {
		req.Ipv6AddressCount = requests.NewInteger(count)
	}
	if len(named) > 0 {
		req.Ipv6Address = &named
	}
	return client.AssignIpv6Addresses(req)
}

func unassignIPv6(client *ecs.Client, id string, ips ...string) error {
	req := ecs.CreateUnassignIpv6AddressesRequest()
	req.NetworkInterfaceId = id
	req.Ipv6Address = &ips
	_, err := client.UnassignIpv6Addresses(req)
	return err
}

func describeIPv6(t *testing.T, client *ecs.Client, id string) []string {
	t.Helper()
	resp := describeENIs(t, client, func(r *ecs.DescribeNetworkInterfacesRequest) { r.NetworkInterfaceId = &[]string{id} })
	var out []string
	for _, s := range resp.NetworkInterfaceSets.NetworkInterfaceSet[0].Ipv6Sets.Ipv6Set {
		out = append(out, s.Ipv6Address)
	}
	return out
}

func TestCloud_AssignUnassign_IPv6(t *testing.T) {
	_, _, inst, client := newTestAPI(t, nil) // ecs.g7.large: 6 IPv6 per ENI
	created := mustCreateENI(t, client, func(r *ecs.CreateNetworkInterfaceRequest) { r.Ipv6AddressCount = requests.NewInteger(2) })
	id := created.NetworkInterfaceId
	var atCreate []string
	for _, s := range created.Ipv6Sets.Ipv6Set {
		atCreate = append(atCreate, s.Ipv6Address)
	}
	if want := []string{"fd00:ac1e:1::1", "fd00:ac1e:1::2"}; !slices.Equal(atCreate, want) {
		t.Fatalf("create answered %v, want %v", atCreate, want)
	}
	mustAttach(t, client, id, inst.ID)

	resp, err := assignIPv6(client, id, 3)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Ipv6Sets.Ipv6Address; resp.NetworkInterfaceId != id || !slices.Equal(got, []string{"fd00:ac1e:1::3", "fd00:ac1e:1::4", "fd00:ac1e:1::5"}) {
		t.Fatalf("assigned %+v", resp)
	}
	if _, err := assignIPv6(client, id, 0, "fd00:ac1e:1::99"); err != nil {
		t.Fatal(err)
	}
	if got := describeIPv6(t, client, id); len(got) != 6 || got[5] != "fd00:ac1e:1::99" {
		t.Fatalf("described %v", got)
	}
	_, err = assignIPv6(client, id, 1) // 6 of 6
	wantCode(t, err, CodeIPv6CountExceeded, http.StatusForbidden)

	if err := unassignIPv6(client, id, "fd00:ac1e:1::99", "fd00:ac1e:1::1"); err != nil {
		t.Fatal(err)
	}
	if got := describeIPv6(t, client, id); len(got) != 4 || slices.Contains(got, "fd00:ac1e:1::99") {
		t.Fatalf("after unassign: %v", got)
	}
	wantCode(t, unassignIPv6(client, id, "fd00:ac1e:1::99"), CodeIPUnassigned, http.StatusForbidden)
	// A freed address is handed out again, lowest first.
	if resp, err := assignIPv6(client, id, 1); err != nil || resp.Ipv6Sets.Ipv6Address[0] != "fd00:ac1e:1::1" {
		t.Fatalf("reassign: %v %+v", err, resp)
	}
}

func TestCloud_AssignIpv6Addresses_Errors(t *testing.T) {
	c, _, _, client := newTestAPI(t, nil)
	tiny := mustInstance(t, c, InstanceSpec{Type: "ecs.sim.tiny"})
	tiny2 := mustInstance(t, c, InstanceSpec{Type: "ecs.sim.tiny"})
	id := mustCreateENI(t, client, nil).NetworkInterfaceId
	if _, err := assignIPv6(client, id, 0, "fd00:ac1e:1::10"); err != nil {
		t.Fatal(err)
	}
	noV6 := mustCreateENI(t, client, func(r *ecs.CreateNetworkInterfaceRequest) { r.VSwitchId = "vsw-sim-b" }).NetworkInterfaceId
	onTiny := mustCreateENI(t, client, nil).NetworkInterfaceId
	mustAttach(t, client, onTiny, tiny.ID)

	tests := []struct {
		name   string
		call   func() error
		code   string
		status int
	}{
		{"vswitch without ipv6", func() error { _, err := assignIPv6(client, noV6, 1); return err }, CodeVSwitchIPv6Off, 403},
		{"instance type without ipv6", func() error { _, err := assignIPv6(client, onTiny, 1); return err }, CodeIPv6NotSupported, 403},
		{"already assigned", func() error { _, err := assignIPv6(client, id, 0, "fd00:ac1e:1::10"); return err }, CodeIPAssigned, 403},
		{"repeated", func() error { _, err := assignIPv6(client, id, 0, "fd00:ac1e:1::20", "fd00:ac1e:1::20"); return err }, CodeIPRepeated, 400},
		{"outside the vswitch", func() error { _, err := assignIPv6(client, id, 0, "fd00:ac1e:2::1"); return err }, CodeInvalidIPAddress, 400},
		{"not ipv6", func() error { _, err := assignIPv6(client, id, 0, "172.30.1.9"); return err }, CodeInvalidIPAddress, 400},
		{"gateway", func() error { _, err := assignIPv6(client, id, 0, "fd00:ac1e:1::ffff:ffff:ffff:fffd"); return err }, CodeInvalidIPAddress, 400},
		{"count and named", func() error { _, err := assignIPv6(client, id, 1, "fd00:ac1e:1::30"); return err }, CodeInvalidParameter, 400},
		{"count 11", func() error { _, err := assignIPv6(client, id, 11); return err }, CodeInvalidParameter, 400},
		{"nothing asked", func() error { _, err := assignIPv6(client, id, 0); return err }, CodeMissingParameter, 400},
		{"unknown eni", func() error { _, err := assignIPv6(client, "eni-nope", 1); return err }, CodeENINotFound, 404},
		{"unassign unknown address", func() error { return unassignIPv6(client, id, "fd00:ac1e:1::77") }, CodeIPUnassigned, 403},
		{"unassign not ipv6", func() error { return unassignIPv6(client, id, "172.30.1.2") }, CodeInvalidIPAddress, 400},
		{"create on vswitch without ipv6", func() error {
			req := ecs.CreateCreateNetworkInterfaceRequest()
			req.VSwitchId, req.SecurityGroupId = "vsw-sim-b", DefaultSecurityGroupID
			req.Ipv6AddressCount = requests.NewInteger(1)
			_, err := client.CreateNetworkInterface(req)
			return err
		}, CodeVSwitchIPv6Off, 403},
		{"attach ipv6 eni to type without ipv6", func() error {
			req := ecs.CreateAttachNetworkInterfaceRequest()
			req.NetworkInterfaceId, req.InstanceId = id, tiny2.ID
			_, err := client.AttachNetworkInterface(req)
			return err
		}, CodeIPv6NotSupported, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantCode(t, tt.call(), tt.code, tt.status)
		})
	}
}

func TestCloud_DescribeVSwitches_IPv6(t *testing.T) {
	c, _ := mustCloud(t, nil)
	v := mustVPC(t, mustServeAPI(t, c))
	req := vpc.CreateDescribeVSwitchesRequest()
	resp, err := v.DescribeVSwitches(req)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, s := range resp.VSwitches.VSwitch {
		if s.EnabledIpv6 != (s.Ipv6CidrBlock != "") {
			t.Fatalf("vswitch %s: EnabledIpv6 %v with block %q", s.VSwitchId, s.EnabledIpv6, s.Ipv6CidrBlock)
		}
		got[s.VSwitchId] = s.Ipv6CidrBlock
	}
	if got["vsw-sim-a"] != "fd00:ac1e:1::/64" || got["vsw-sim-b"] != "" {
		t.Fatalf("ipv6 blocks %v", got)
	}
}

func TestCloud_Metadata_IPv6(t *testing.T) {
	c, _, inst, client := newTestAPI(t, func(cfg *Config) { cfg.IdentifyCaller = identifyByHeader })
	v6 := mustCreateENI(t, client, func(r *ecs.CreateNetworkInterfaceRequest) { r.Ipv6AddressCount = requests.NewInteger(1) })
	v4 := mustCreateENI(t, client, func(r *ecs.CreateNetworkInterfaceRequest) { r.VSwitchId = "vsw-sim-b" })
	mustAttach(t, client, v6.NetworkInterfaceId, inst.ID)
	mustAttach(t, client, v4.NetworkInterfaceId, inst.ID)
	base := mustServeMetadata(t, c)
	mac := func(m, key string) (int, string) {
		return mdGet(t, base, inst.ID, "/latest/meta-data/network/interfaces/macs/"+m+"/"+key, nil)
	}
	if code, body := mac(v6.MacAddress, "ipv6s"); code != 200 {
		t.Fatalf("ipv6s: %d %s", code, body)
	} else {
		var ips []string
		if err := json.Unmarshal([]byte(body), &ips); err != nil || !slices.Equal(ips, []string{"fd00:ac1e:1::1"}) {
			t.Fatalf("ipv6s %q: %v", body, err)
		}
	}
	if code, body := mac(v6.MacAddress, "ipv6-gateway"); code != 200 || body != "fd00:ac1e:1:0:ffff:ffff:ffff:fffd" {
		t.Fatalf("ipv6-gateway: %d %q", code, body)
	}
	if code, body := mac(v6.MacAddress, "vswitch-ipv6-cidr-block"); code != 200 || body != "fd00:ac1e:1::/64" {
		t.Fatalf("vswitch-ipv6-cidr-block: %d %q", code, body)
	}
	if code, body := mac(v6.MacAddress, ""); code != 200 || !slices.Contains(splitLines(body), "ipv6s") {
		t.Fatalf("listing: %d %q", code, body)
	}
	if code, body := mac(v4.MacAddress, "ipv6s"); code != http.StatusNotFound {
		t.Fatalf("ipv6s on a vswitch without ipv6: %d %q", code, body)
	}
}

func splitLines(s string) []string { return strings.Split(s, "\n") }

// Ensure the fabric is handed an ENI's IPv6 addresses after its IPv4 ones
// at attach (with the vSwitch's IPv6 gateway) and on every assign and
// unassign, so the VPC routes exactly what the API says.
func TestCloud_IPv6_HandedToFabric(t *testing.T) {
	_, rec, inst, client := newTestAPI(t, nil)
	created := mustCreateENI(t, client, func(r *ecs.CreateNetworkInterfaceRequest) { r.Ipv6AddressCount = requests.NewInteger(1) })
	id := created.NetworkInterfaceId
	primary := netip.MustParseAddr(created.PrivateIpAddress)
	mustAttach(t, client, id, inst.ID)

	last := func(op string) fabricCall {
		t.Helper()
		var got *fabricCall
		for _, c := range rec.Calls() {
			if c.ENIID == id && c.Op == op {
				got = &c
			}
		}
		if got == nil {
			t.Fatalf("no %s call for %s in %v", op, id, rec.Calls())
		}
		return *got
	}
	att := last("attach")
	v6a := netip.MustParseAddr("fd00:ac1e:1::1")
	if want := []netip.Addr{primary, v6a}; !slices.Equal(att.Link.IPs, want) {
		t.Fatalf("attach IPs %v, want %v", att.Link.IPs, want)
	}
	if att.Link.IPv6CIDR.String() != "fd00:ac1e:1::/64" || att.Link.Gateway6.String() != "fd00:ac1e:1:0:ffff:ffff:ffff:fffd" {
		t.Fatalf("attach ipv6 cidr %s gateway %s", att.Link.IPv6CIDR, att.Link.Gateway6)
	}

	if _, err := assignIPv6(client, id, 1); err != nil {
		t.Fatal(err)
	}
	v6b := netip.MustParseAddr("fd00:ac1e:1::2")
	if got, want := last("addresses").IPs, []netip.Addr{primary, v6a, v6b}; !slices.Equal(got, want) {
		t.Fatalf("after assign: fabric has %v, want %v", got, want)
	}
	if err := unassignIPv6(client, id, v6a.String()); err != nil {
		t.Fatal(err)
	}
	if got, want := last("addresses").IPs, []netip.Addr{primary, v6b}; !slices.Equal(got, want) {
		t.Fatalf("after unassign: fabric has %v, want %v", got, want)
	}
}
