package eni

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/vpc"
)

// InstanceLimits returns the network quotas of an instance type. Answers
// are cached for the client's lifetime: an instance type's quotas do not
// change (Terway caches them for 15 days).
//
// May return an error wrapping ErrNotFound for an unknown type.
func (c *AlibabaClient) InstanceLimits(ctx context.Context, instanceType string) (InstanceLimits, error) {
	c.limitsMu.Lock()
	l, ok := c.limits[instanceType]
	c.limitsMu.Unlock()
	if ok {
		return l, nil
	}
	req := ecs.CreateDescribeInstanceTypesRequest()
	req.InstanceTypes = &[]string{instanceType}
	resp := ecs.CreateDescribeInstanceTypesResponse()
	if err := c.do(ctx, req, resp); err != nil {
		return InstanceLimits{}, fmt.Errorf("limits of %s: %w", instanceType, err)
	}
	for _, t := range resp.InstanceTypes.InstanceType {
		if t.InstanceTypeId != instanceType {
			continue
		}
		l := InstanceLimits{
			InstanceType:   t.InstanceTypeId,
			ENIs:           t.EniQuantity,
			IPv4PerENI:     t.EniPrivateIpAddressQuantity,
			IPv6PerENI:     t.EniIpv6AddressQuantity,
			TrunkSupported: t.EniTrunkSupported,
		}
		if l.TrunkSupported && t.EniTotalQuantity > t.EniQuantity {
			l.MemberENIs = t.EniTotalQuantity - t.EniQuantity
		}
		c.limitsMu.Lock()
		c.limits[instanceType] = l
		c.limitsMu.Unlock()
		return l, nil
	}
	return InstanceLimits{}, fmt.Errorf("limits of %s: instance type %w", instanceType, ErrNotFound)
}

// VSwitches describes each vSwitch with one DescribeVSwitches call (the
// action filters by a single VSwitchId).
//
// May return an error wrapping ErrNotFound when one does not exist.
func (c *AlibabaClient) VSwitches(ctx context.Context, ids ...string) ([]VSwitch, error) {
	out := make([]VSwitch, 0, len(ids))
	for _, id := range ids {
		req := vpc.CreateDescribeVSwitchesRequest()
		req.VSwitchId = id
		resp := vpc.CreateDescribeVSwitchesResponse()
		if err := c.do(ctx, req, resp); err != nil {
			return out, fmt.Errorf("describe vswitch %s: %w", id, err)
		}
		found := false
		for _, v := range resp.VSwitches.VSwitch {
			if v.VSwitchId != id {
				continue
			}
			cidr, err := netip.ParsePrefix(v.CidrBlock)
			if err != nil {
				return out, fmt.Errorf("describe vswitch %s: cidr: %w", id, err)
			}
			var cidr6 netip.Prefix
			if v.Ipv6CidrBlock != "" {
				if cidr6, err = netip.ParsePrefix(v.Ipv6CidrBlock); err != nil {
					return out, fmt.Errorf("describe vswitch %s: ipv6 cidr: %w", id, err)
				}
			}
			out = append(out, VSwitch{
				ID:           v.VSwitchId,
				VPCID:        v.VpcId,
				ZoneID:       v.ZoneId,
				CIDR:         cidr,
				IPv6CIDR:     cidr6,
				AvailableIPs: int(v.AvailableIpAddressCount),
			})
			found = true
			break
		}
		if !found {
			return out, fmt.Errorf("describe vswitch %s: %w", id, ErrNotFound)
		}
	}
	return out, nil
}
