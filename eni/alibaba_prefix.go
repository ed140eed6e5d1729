package eni

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"
)

// AssignPrefixes delegates count /28s in calls of at most
// MaxPrefixesPerAssign, each with its own ClientToken so a retried call does
// not delegate twice. On error it returns the prefixes delegated before the
// failure together with the error: they are the caller's to use or release.
//
// May return an error wrapping ErrVSwitchExhausted (also when the vSwitch has
// free addresses but no free aligned /28) or ErrQuotaExceeded.
func (c *AlibabaClient) AssignPrefixes(ctx context.Context, eniID string, count int) ([]netip.Prefix, error) {
	if count <= 0 {
		return nil, fmt.Errorf("assign %d prefixes to %s: %w", count, eniID, ErrInvalidParameter)
	}
	var out []netip.Prefix
	for left := count; left > 0; {
		n := min(left, MaxPrefixesPerAssign)
		req := ecs.CreateAssignPrivateIpAddressesRequest()
		req.NetworkInterfaceId = eniID
		req.Ipv4PrefixCount = requests.NewInteger(n)
		req.ClientToken = newClientToken()
		resp := ecs.CreateAssignPrivateIpAddressesResponse()
		if err := c.do(ctx, req, resp); err != nil {
			return out, fmt.Errorf("assign %d prefixes to %s: %w", n, eniID, err)
		}
		for _, s := range resp.AssignedPrivateIpAddressesSet.Ipv4PrefixSet.Ipv4Prefixes {
			p, err := parsePrefix(s)
			if err != nil {
				return out, fmt.Errorf("assign prefixes to %s: %w", eniID, err)
			}
			out = append(out, p)
		}
		left -= n
	}
	return out, nil
}

// UnassignPrefixes removes prefixes in calls of at most
// MaxPrefixesPerAssign. Prefixes and addresses go in separate calls.
func (c *AlibabaClient) UnassignPrefixes(ctx context.Context, eniID string, prefixes []netip.Prefix) error {
	for chunk := range slices.Chunk(prefixes, MaxPrefixesPerAssign) {
		strs := make([]string, len(chunk))
		for i, p := range chunk {
			strs[i] = p.String()
		}
		req := ecs.CreateUnassignPrivateIpAddressesRequest()
		req.NetworkInterfaceId = eniID
		req.Ipv4Prefix = &strs
		if err := c.do(ctx, req, ecs.CreateUnassignPrivateIpAddressesResponse()); err != nil {
			return fmt.Errorf("unassign prefixes %v from %s: %w", strs, eniID, err)
		}
	}
	return nil
}

// AssignIPv6s assigns count IPv6 addresses in calls of at most
// MaxIPsPerAssign, each with its own ClientToken. On error it returns the
// addresses assigned before the failure together with the error.
//
// May return an error wrapping ErrIPv6Unsupported (vSwitch without IPv6,
// instance type without IPv6) or ErrQuotaExceeded.
func (c *AlibabaClient) AssignIPv6s(ctx context.Context, eniID string, count int) ([]netip.Addr, error) {
	if count <= 0 {
		return nil, fmt.Errorf("assign %d ipv6s to %s: %w", count, eniID, ErrInvalidParameter)
	}
	var out []netip.Addr
	for left := count; left > 0; {
		n := min(left, MaxIPsPerAssign)
		req := ecs.CreateAssignIpv6AddressesRequest()
		req.NetworkInterfaceId = eniID
		req.Ipv6AddressCount = requests.NewInteger(n)
		req.ClientToken = newClientToken()
		resp := ecs.CreateAssignIpv6AddressesResponse()
		if err := c.do(ctx, req, resp); err != nil {
			return out, fmt.Errorf("assign %d ipv6s to %s: %w", n, eniID, err)
		}
		ips, err := parseAddrs(resp.Ipv6Sets.Ipv6Address)
		if err != nil {
			return out, fmt.Errorf("assign ipv6s to %s: %w", eniID, err)
		}
		out = append(out, ips...)
		left -= n
	}
	return out, nil
}

// UnassignIPv6s removes IPv6 addresses in calls of at most MaxIPsPerAssign.
func (c *AlibabaClient) UnassignIPv6s(ctx context.Context, eniID string, ips []netip.Addr) error {
	for chunk := range slices.Chunk(ips, MaxIPsPerAssign) {
		strs := make([]string, len(chunk))
		for i, ip := range chunk {
			strs[i] = ip.String()
		}
		req := ecs.CreateUnassignIpv6AddressesRequest()
		req.NetworkInterfaceId = eniID
		req.Ipv6Address = &strs
		if err := c.do(ctx, req, ecs.CreateUnassignIpv6AddressesResponse()); err != nil {
			return fmt.Errorf("unassign ipv6s %v from %s: %w", strs, eniID, err)
		}
	}
	return nil
}

// AssignIPv6Prefixes delegates count IPv6 /80s to an ENI
// (AssignIpv6Addresses with Ipv6PrefixCount) in calls of at most
// MaxPrefixesPerAssign, each with its own ClientToken. On error it returns
// the prefixes delegated before the failure together with the error. The
// pool uses it in prefix mode on a dual-stack node (one /80 per ENI).
//
// May return an error wrapping ErrIPv6Unsupported, ErrVSwitchExhausted or
// ErrQuotaExceeded (each /80 takes one of the ENI's IPv6 slots).
func (c *AlibabaClient) AssignIPv6Prefixes(ctx context.Context, eniID string, count int) ([]netip.Prefix, error) {
	if count <= 0 {
		return nil, fmt.Errorf("assign %d ipv6 prefixes to %s: %w", count, eniID, ErrInvalidParameter)
	}
	var out []netip.Prefix
	for left := count; left > 0; {
		n := min(left, MaxPrefixesPerAssign)
		req := ecs.CreateAssignIpv6AddressesRequest()
		req.NetworkInterfaceId = eniID
		req.Ipv6PrefixCount = requests.NewInteger(n)
		req.ClientToken = newClientToken()
		resp := ecs.CreateAssignIpv6AddressesResponse()
		if err := c.do(ctx, req, resp); err != nil {
			return out, fmt.Errorf("assign %d ipv6 prefixes to %s: %w", n, eniID, err)
		}
		for _, s := range resp.Ipv6PrefixSets.Ipv6Prefix {
			p, err := parsePrefix(s)
			if err != nil {
				return out, fmt.Errorf("assign ipv6 prefixes to %s: %w", eniID, err)
			}
			out = append(out, p)
		}
		left -= n
	}
	return out, nil
}

// UnassignIPv6Prefixes removes delegated /80s (UnassignIpv6Addresses with
// Ipv6Prefix.N) in calls of at most MaxPrefixesPerAssign. Prefixes and
// addresses go in separate calls (Terway's commit 3e1fd704).
func (c *AlibabaClient) UnassignIPv6Prefixes(ctx context.Context, eniID string, prefixes []netip.Prefix) error {
	for chunk := range slices.Chunk(prefixes, MaxPrefixesPerAssign) {
		strs := make([]string, len(chunk))
		for i, p := range chunk {
			strs[i] = p.String()
		}
		req := ecs.CreateUnassignIpv6AddressesRequest()
		req.NetworkInterfaceId = eniID
		req.Ipv6Prefix = &strs
		if err := c.do(ctx, req, ecs.CreateUnassignIpv6AddressesResponse()); err != nil {
			return fmt.Errorf("unassign ipv6 prefixes %v from %s: %w", strs, eniID, err)
		}
	}
	return nil
}

func prefixes6Of(sets []ecs.Ipv6PrefixSet) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range sets {
		p, err := parsePrefix(s.Ipv6Prefix)
		if err != nil {
			return out, err
		}
		out = append(out, p)
	}
	return out, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, fmt.Errorf("prefix %q: %w", s, err)
	}
	return p, nil
}

func prefixesOf(sets []ecs.Ipv4PrefixSet) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range sets {
		p, err := parsePrefix(s.Ipv4Prefix)
		if err != nil {
			return out, err
		}
		out = append(out, p)
	}
	return out, nil
}

func ipv6sOf(sets []ecs.Ipv6Set) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, s := range sets {
		a, err := netip.ParseAddr(s.Ipv6Address)
		if err != nil {
			return out, fmt.Errorf("ipv6 %q: %w", s.Ipv6Address, err)
		}
		out = append(out, a)
	}
	return out, nil
}
