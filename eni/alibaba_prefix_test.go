package eni_test

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/veni-cni/veni/eni"
	"github.com/veni-cni/veni/eni/sim"
)

// Ensure prefixes go through the SDK to the sim and back: assigned in
// batches of 10, described on the ENI, released.
func TestAlibabaClient_Sim_Prefixes(t *testing.T) {
	env := mustSim(t, func(cfg *sim.Config) {
		// A /22 holds more than the 23 /28s asked for.
		cfg.VSwitches = append(cfg.VSwitches, sim.VSwitchSpec{ID: "vsw-big", ZoneID: "cn-hangzhou-h", CIDR: netip.MustParsePrefix("172.30.4.0/22")})
	})
	c := mustClient(t, env.fastOptions())
	ctx := context.Background()
	e := mustCreateENI(t, c, eni.CreateENIOptions{VSwitchID: "vsw-big", Prefixes: 1})
	if len(e.Prefixes) != 1 || e.Prefixes[0] != netip.MustParsePrefix("172.30.4.16/28") {
		t.Fatalf("created with prefixes %v", e.Prefixes)
	}
	// An unattached ENI may hold up to the cloud-wide 50 slots.
	ps, err := c.AssignPrefixes(ctx, e.ID, 23)
	if err != nil || len(ps) != 23 {
		t.Fatalf("assign 23 = %v, %v", ps, err)
	}
	if n := env.cloud.Snapshot().Calls[eni.ActionAssignPrivateIPAddresses].Calls; n != 3 {
		t.Fatalf("AssignPrivateIpAddresses called %d times, want 3 (10+10+3)", n)
	}
	for _, p := range ps {
		if p.Bits() != eni.PrefixBits || p != p.Masked() {
			t.Fatalf("prefix %s is not an aligned /28", p)
		}
	}
	got := waitStatus(t, c, e.ID, eni.StatusAvailable)
	if len(got.Prefixes) != 24 || !slices.Contains(got.Prefixes, ps[22]) {
		t.Fatalf("described prefixes %v", got.Prefixes)
	}
	if err := c.UnassignPrefixes(ctx, e.ID, ps); err != nil {
		t.Fatal(err)
	}
	got = waitStatus(t, c, e.ID, eni.StatusAvailable)
	if len(got.Prefixes) != 1 {
		t.Fatalf("after unassign: %v", got.Prefixes)
	}
	if err := c.UnassignPrefixes(ctx, e.ID, ps[:1]); err == nil {
		t.Fatal("unassigning a prefix twice succeeded")
	}
	if _, err := c.AssignPrefixes(ctx, e.ID, 0); !errors.Is(err, eni.ErrInvalidParameter) {
		t.Fatalf("assign 0 prefixes: %v", err)
	}
}

func TestAlibabaClient_Sim_Prefixes_Errors(t *testing.T) {
	env := mustSim(t, func(cfg *sim.Config) {
		cfg.VSwitches = append(cfg.VSwitches, sim.VSwitchSpec{ID: "vsw-frag", ZoneID: "cn-hangzhou-h", CIDR: netip.MustParsePrefix("172.30.9.0/26")})
	})
	c := mustClient(t, env.fastOptions())
	ctx := context.Background()

	// ecs.g7.large: 6 slots; the primary takes one.
	e := mustCreateENI(t, c, eni.CreateENIOptions{})
	if err := c.AttachENI(ctx, e.ID, env.inst.ID); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, c, e.ID, eni.StatusInUse)
	if _, err := c.AssignPrefixes(ctx, e.ID, 5); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AssignPrefixes(ctx, e.ID, 1); !errors.Is(err, eni.ErrQuotaExceeded) {
		t.Fatalf("past the per-eni cap: %v, want ErrQuotaExceeded", err)
	}
	var apiErr *eni.APIError
	if _, err := c.AssignPrefixes(ctx, e.ID, 1); !errors.As(err, &apiErr) || apiErr.Code != sim.CodeIPv4CountExceeded {
		t.Fatalf("past the per-eni cap: %v, want %s", err, sim.CodeIPv4CountExceeded)
	}

	// Of a /26's four /28s, the first holds the network address and the
	// last the three reserved ones. Take .16/28 as a prefix and put one
	// address in .32/28: 28 addresses stay free, but no /28.
	small := mustCreateENI(t, c, eni.CreateENIOptions{VSwitchID: "vsw-frag"})
	if ps, err := c.AssignPrefixes(ctx, small.ID, 1); err != nil || ps[0] != netip.MustParsePrefix("172.30.9.16/28") {
		t.Fatalf("first prefix %v, %v", ps, err)
	}
	ips, err := c.AssignPrivateIPs(ctx, small.ID, 15) // .2-.15, then .32
	if err != nil || ips[14] != netip.MustParseAddr("172.30.9.32") {
		t.Fatalf("assign 15 ips = %v, %v", ips, err)
	}
	vs, err := c.VSwitches(ctx, "vsw-frag")
	if err != nil || vs[0].AvailableIPs != 28 {
		t.Fatalf("vswitch %+v, %v: want 28 free", vs, err)
	}
	if _, err := c.AssignPrefixes(ctx, small.ID, 1); !errors.Is(err, eni.ErrVSwitchExhausted) {
		t.Fatalf("fragmented vswitch: %v, want ErrVSwitchExhausted", err)
	}
}

func TestAlibabaClient_Sim_IPv6(t *testing.T) {
	env := mustSim(t, nil)
	c := mustClient(t, env.fastOptions())
	ctx := context.Background()

	vs, err := c.VSwitches(ctx, "vsw-sim-a", "vsw-sim-b")
	if err != nil {
		t.Fatal(err)
	}
	if vs[0].IPv6CIDR != netip.MustParsePrefix("fd00:ac1e:1::/64") || vs[1].IPv6CIDR.IsValid() {
		t.Fatalf("vswitch ipv6 blocks %v, %v", vs[0].IPv6CIDR, vs[1].IPv6CIDR)
	}
	l, err := c.InstanceLimits(ctx, "ecs.g7.large")
	if err != nil || l.IPv6PerENI != 6 {
		t.Fatalf("limits %+v, %v", l, err)
	}

	e := mustCreateENI(t, c, eni.CreateENIOptions{IPv6s: 1})
	if len(e.IPv6s) != 1 {
		t.Fatalf("created with ipv6s %v", e.IPv6s)
	}
	if err := c.AttachENI(ctx, e.ID, env.inst.ID); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, c, e.ID, eni.StatusInUse)
	ips, err := c.AssignIPv6s(ctx, e.ID, 5)
	if err != nil || len(ips) != 5 {
		t.Fatalf("assign 5 ipv6s = %v, %v", ips, err)
	}
	got := waitStatus(t, c, e.ID, eni.StatusInUse)
	if len(got.IPv6s) != 6 || !slices.Contains(got.IPv6s, ips[4]) {
		t.Fatalf("described ipv6s %v", got.IPv6s)
	}
	if _, err := c.AssignIPv6s(ctx, e.ID, 1); !errors.Is(err, eni.ErrQuotaExceeded) {
		t.Fatalf("past the per-eni cap: %v, want ErrQuotaExceeded", err)
	}
	if err := c.UnassignIPv6s(ctx, e.ID, ips); err != nil {
		t.Fatal(err)
	}
	if got := waitStatus(t, c, e.ID, eni.StatusInUse); len(got.IPv6s) != 1 {
		t.Fatalf("after unassign: %v", got.IPv6s)
	}

	v4only := mustCreateENI(t, c, eni.CreateENIOptions{VSwitchID: "vsw-sim-b"})
	if _, err := c.AssignIPv6s(ctx, v4only.ID, 1); !errors.Is(err, eni.ErrIPv6Unsupported) {
		t.Fatalf("vswitch without ipv6: %v, want ErrIPv6Unsupported", err)
	}
}

// Ensure IPv6 /80 prefixes go through the SDK to the sim and back:
// delegated at create (Ipv6PrefixCount) and by AssignIpv6Addresses in
// batches of 10, described on the ENI (Ipv6PrefixSets), released with
// UnassignIpv6Addresses Ipv6Prefix.N; a vSwitch without IPv6 is
// ErrIPv6Unsupported.
func TestAlibabaClient_Sim_IPv6Prefixes(t *testing.T) {
	env := mustSim(t, nil)
	c := mustClient(t, env.fastOptions())
	ctx := context.Background()
	e := mustCreateENI(t, c, eni.CreateENIOptions{VSwitchID: "vsw-sim-a", IPv6Prefixes: 1})
	if len(e.IPv6Prefixes) != 1 || e.IPv6Prefixes[0].Bits() != eni.Prefix6Bits || !netip.MustParsePrefix("fd00:ac1e:1::/64").Contains(e.IPv6Prefixes[0].Addr()) {
		t.Fatalf("created with ipv6 prefixes %v", e.IPv6Prefixes)
	}
	before := env.cloud.Snapshot().Calls[eni.ActionAssignIPv6Addresses].Calls
	ps, err := c.AssignIPv6Prefixes(ctx, e.ID, 12)
	if err != nil || len(ps) != 12 {
		t.Fatalf("assign 12 = %v, %v", ps, err)
	}
	if n := env.cloud.Snapshot().Calls[eni.ActionAssignIPv6Addresses].Calls - before; n != 2 {
		t.Fatalf("AssignIpv6Addresses called %d times, want 2 (10+2)", n)
	}
	got := waitStatus(t, c, e.ID, eni.StatusAvailable)
	if len(got.IPv6Prefixes) != 13 || !slices.Contains(got.IPv6Prefixes, ps[11]) || len(got.IPv6s) != 0 {
		t.Fatalf("described ipv6 prefixes %v, ipv6s %v", got.IPv6Prefixes, got.IPv6s)
	}
	if err := c.UnassignIPv6Prefixes(ctx, e.ID, ps); err != nil {
		t.Fatal(err)
	}
	if got = waitStatus(t, c, e.ID, eni.StatusAvailable); !slices.Equal(got.IPv6Prefixes, e.IPv6Prefixes) {
		t.Fatalf("after unassign: %v", got.IPv6Prefixes)
	}
	if err := c.UnassignIPv6Prefixes(ctx, e.ID, ps[:1]); err == nil {
		t.Fatal("unassigning an ipv6 prefix twice succeeded")
	}
	noV6 := mustCreateENI(t, c, eni.CreateENIOptions{VSwitchID: "vsw-sim-b"})
	if _, err := c.AssignIPv6Prefixes(ctx, noV6.ID, 1); !errors.Is(err, eni.ErrIPv6Unsupported) {
		t.Fatalf("ipv6 prefix on a vswitch without ipv6: %v, want ErrIPv6Unsupported", err)
	}
	if _, err := c.AssignIPv6Prefixes(ctx, e.ID, 0); !errors.Is(err, eni.ErrInvalidParameter) {
		t.Fatalf("assign 0 ipv6 prefixes: %v", err)
	}
}
