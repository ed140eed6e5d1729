package eni

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"
)

// maxPageSize is the largest page DescribeNetworkInterfaces returns, and the
// most NetworkInterfaceId.N values it accepts.
const maxPageSize = 100

// CreateENI creates a Secondary ENI with opts' tags, ClientToken and source/
// destination check off (pods' addresses are secondary IPs the ENI forwards).
//
// May return an error wrapping ErrVSwitchExhausted, ErrQuotaExceeded,
// ErrInvalidParameter, ErrNotFound or ErrThrottled.
func (c *AlibabaClient) CreateENI(ctx context.Context, opts CreateENIOptions) (ENI, error) {
	if opts.VSwitchID == "" || len(opts.SecurityGroupIDs) == 0 {
		return ENI{}, fmt.Errorf("create eni: %w (need a vswitch and at least one security group)", ErrInvalidParameter)
	}
	req := ecs.CreateCreateNetworkInterfaceRequest()
	req.VSwitchId = opts.VSwitchID
	sgs := slices.Clone(opts.SecurityGroupIDs)
	req.SecurityGroupIds = &sgs
	req.InstanceType = TypeSecondary
	if opts.Trunk {
		req.InstanceType = TypeTrunk
	}
	req.Description = opts.Description
	req.ResourceGroupId = opts.ResourceGroupID
	req.ClientToken = opts.ClientToken
	req.SourceDestCheck = requests.NewBoolean(false)
	if opts.SecondaryIPs > 0 {
		req.SecondaryPrivateIpAddressCount = requests.NewInteger(opts.SecondaryIPs)
	}
	if opts.Prefixes > 0 {
		req.Ipv4PrefixCount = requests.NewInteger(opts.Prefixes)
	}
	if opts.IPv6s > 0 {
		req.Ipv6AddressCount = requests.NewInteger(opts.IPv6s)
	}
	if opts.IPv6Prefixes > 0 {
		req.Ipv6PrefixCount = requests.NewInteger(opts.IPv6Prefixes)
	}
	if len(opts.Tags) > 0 {
		tags := make([]ecs.CreateNetworkInterfaceTag, 0, len(opts.Tags))
		for _, k := range slices.Sorted(maps.Keys(opts.Tags)) {
			tags = append(tags, ecs.CreateNetworkInterfaceTag{Key: k, Value: opts.Tags[k]})
		}
		req.Tag = &tags
	}
	resp := ecs.CreateCreateNetworkInterfaceResponse()
	if err := c.do(ctx, req, resp); err != nil {
		return ENI{}, fmt.Errorf("create eni in %s: %w", opts.VSwitchID, err)
	}
	e := ENI{
		ID:               resp.NetworkInterfaceId,
		Type:             resp.Type,
		Status:           resp.Status,
		VPCID:            resp.VpcId,
		VSwitchID:        resp.VSwitchId,
		ZoneID:           resp.ZoneId,
		SecurityGroupIDs: resp.SecurityGroupIds.SecurityGroupId,
		Description:      resp.Description,
		Tags:             tagMap(resp.Tags.Tag),
	}
	if e.Type == "" {
		e.Type = req.InstanceType
	}
	var err error
	if e.MAC, err = parseMAC(resp.MacAddress); err != nil {
		return e, fmt.Errorf("create eni %s: %w", e.ID, err)
	}
	if e.PrimaryIP, e.PrivateIPs, err = privateIPs(resp.PrivateIpAddress, resp.PrivateIpSets.PrivateIpSet); err != nil {
		return e, fmt.Errorf("create eni %s: %w", e.ID, err)
	}
	if e.Prefixes, err = prefixesOf(resp.Ipv4PrefixSets.Ipv4PrefixSet); err != nil {
		return e, fmt.Errorf("create eni %s: %w", e.ID, err)
	}
	if e.IPv6s, err = ipv6sOf(resp.Ipv6Sets.Ipv6Set); err != nil {
		return e, fmt.Errorf("create eni %s: %w", e.ID, err)
	}
	if e.IPv6Prefixes, err = prefixes6Of(resp.Ipv6PrefixSets.Ipv6PrefixSet); err != nil {
		return e, fmt.Errorf("create eni %s: %w", e.ID, err)
	}
	return e, nil
}

// AttachENI starts attaching; the ENI becomes InUse asynchronously.
//
// May return an error wrapping ErrNotFound, ErrInvalidState or
// ErrQuotaExceeded (no free ENI slot on the instance).
func (c *AlibabaClient) AttachENI(ctx context.Context, eniID, instanceID string) error {
	req := ecs.CreateAttachNetworkInterfaceRequest()
	req.NetworkInterfaceId = eniID
	req.InstanceId = instanceID
	if err := c.do(ctx, req, ecs.CreateAttachNetworkInterfaceResponse()); err != nil {
		return fmt.Errorf("attach eni %s to %s: %w", eniID, instanceID, err)
	}
	return nil
}

// DetachENI starts detaching; the ENI becomes Available asynchronously.
func (c *AlibabaClient) DetachENI(ctx context.Context, eniID, instanceID string) error {
	req := ecs.CreateDetachNetworkInterfaceRequest()
	req.NetworkInterfaceId = eniID
	req.InstanceId = instanceID
	if err := c.do(ctx, req, ecs.CreateDetachNetworkInterfaceResponse()); err != nil {
		return fmt.Errorf("detach eni %s from %s: %w", eniID, instanceID, err)
	}
	return nil
}

// DeleteENI deletes an Available ENI. May return an error wrapping
// ErrInvalidState when it is still attached, or ErrNotFound.
func (c *AlibabaClient) DeleteENI(ctx context.Context, eniID string) error {
	req := ecs.CreateDeleteNetworkInterfaceRequest()
	req.NetworkInterfaceId = eniID
	if err := c.do(ctx, req, ecs.CreateDeleteNetworkInterfaceResponse()); err != nil {
		return fmt.Errorf("delete eni %s: %w", eniID, err)
	}
	return nil
}

// ENIs follows every page of DescribeNetworkInterfaces. The filter is sent
// to the API and checked again on the answer, so callers get exactly what
// they asked for even from an endpoint that ignores a filter.
func (c *AlibabaClient) ENIs(ctx context.Context, filter ENIFilter) ([]ENI, error) {
	if len(filter.IDs) == 0 {
		return c.describeENIs(ctx, filter, nil)
	}
	var out []ENI
	for ids := range slices.Chunk(filter.IDs, maxPageSize) {
		page, err := c.describeENIs(ctx, filter, ids)
		if err != nil {
			return out, err
		}
		out = append(out, page...)
	}
	return out, nil
}

func (c *AlibabaClient) describeENIs(ctx context.Context, filter ENIFilter, ids []string) ([]ENI, error) {
	size := c.pageSize()
	var out []ENI
	seen := make(map[string]bool)
	token := ""
	for page := 1; ; page++ {
		req := ecs.CreateDescribeNetworkInterfacesRequest()
		req.InstanceId = filter.InstanceID
		req.VSwitchId = filter.VSwitchID
		req.Status = filter.Status
		if len(ids) > 0 {
			idsCopy := slices.Clone(ids)
			req.NetworkInterfaceId = &idsCopy
		}
		if len(filter.Tags) > 0 {
			tags := make([]ecs.DescribeNetworkInterfacesTag, 0, len(filter.Tags))
			for _, k := range slices.Sorted(maps.Keys(filter.Tags)) {
				tags = append(tags, ecs.DescribeNetworkInterfacesTag{Key: k, Value: filter.Tags[k]})
			}
			req.Tag = &tags
		}
		// NextToken paging is what the API recommends; PageNumber is sent
		// as well for endpoints that only page by number.
		req.MaxResults = requests.NewInteger(size)
		req.NextToken = token
		req.PageSize = requests.NewInteger(size)
		req.PageNumber = requests.NewInteger(page)
		resp := ecs.CreateDescribeNetworkInterfacesResponse()
		if err := c.do(ctx, req, resp); err != nil {
			return out, fmt.Errorf("list enis: %w", err)
		}
		sets := resp.NetworkInterfaceSets.NetworkInterfaceSet
		for _, s := range sets {
			e, err := eniFromSet(s)
			if err != nil {
				return out, fmt.Errorf("list enis: %w", err)
			}
			if filter.matches(e) && !seen[e.ID] {
				seen[e.ID] = true
				out = append(out, e)
			}
		}
		switch {
		case resp.NextToken != "":
			token = resp.NextToken
		case len(sets) != size, resp.TotalCount > 0 && page*size >= resp.TotalCount:
			// A short page is the last; a long one means the endpoint
			// ignored paging and sent everything.
			return out, nil
		case token != "":
			// A token-paged answer without a new token is the last page.
			return out, nil
		}
	}
}

func (c *AlibabaClient) pageSize() int {
	if c.opts.PageSize <= 0 || c.opts.PageSize > maxPageSize {
		return maxPageSize
	}
	return c.opts.PageSize
}

func (f ENIFilter) matches(e ENI) bool {
	if f.InstanceID != "" && e.InstanceID != f.InstanceID ||
		f.VSwitchID != "" && e.VSwitchID != f.VSwitchID ||
		f.Status != "" && e.Status != f.Status ||
		len(f.IDs) > 0 && !slices.Contains(f.IDs, e.ID) {
		return false
	}
	for k, v := range f.Tags {
		if got, ok := e.Tags[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// AssignPrivateIPs assigns count addresses in calls of at most
// MaxIPsPerAssign, each with its own ClientToken so a retried call does not
// assign twice. On error it returns the addresses assigned before the
// failure together with the error: they are the caller's to use or release.
//
// May return an error wrapping ErrVSwitchExhausted or ErrQuotaExceeded.
func (c *AlibabaClient) AssignPrivateIPs(ctx context.Context, eniID string, count int) ([]netip.Addr, error) {
	if count <= 0 {
		return nil, fmt.Errorf("assign %d ips to %s: %w", count, eniID, ErrInvalidParameter)
	}
	var out []netip.Addr
	for left := count; left > 0; {
		n := min(left, MaxIPsPerAssign)
		req := ecs.CreateAssignPrivateIpAddressesRequest()
		req.NetworkInterfaceId = eniID
		req.SecondaryPrivateIpAddressCount = requests.NewInteger(n)
		req.ClientToken = newClientToken()
		resp := ecs.CreateAssignPrivateIpAddressesResponse()
		if err := c.do(ctx, req, resp); err != nil {
			return out, fmt.Errorf("assign %d ips to %s: %w", n, eniID, err)
		}
		ips, err := parseAddrs(resp.AssignedPrivateIpAddressesSet.PrivateIpSet.PrivateIpAddress)
		if err != nil {
			return out, fmt.Errorf("assign ips to %s: %w", eniID, err)
		}
		out = append(out, ips...)
		left -= n
	}
	return out, nil
}

// UnassignPrivateIPs removes addresses in calls of at most MaxIPsPerAssign.
func (c *AlibabaClient) UnassignPrivateIPs(ctx context.Context, eniID string, ips []netip.Addr) error {
	for chunk := range slices.Chunk(ips, MaxIPsPerAssign) {
		strs := make([]string, len(chunk))
		for i, ip := range chunk {
			strs[i] = ip.String()
		}
		req := ecs.CreateUnassignPrivateIpAddressesRequest()
		req.NetworkInterfaceId = eniID
		req.PrivateIpAddress = &strs
		if err := c.do(ctx, req, ecs.CreateUnassignPrivateIpAddressesResponse()); err != nil {
			return fmt.Errorf("unassign %v from %s: %w", strs, eniID, err)
		}
	}
	return nil
}

func eniFromSet(s ecs.NetworkInterfaceSet) (ENI, error) {
	e := ENI{
		ID:               s.NetworkInterfaceId,
		Type:             s.Type,
		Status:           s.Status,
		InstanceID:       s.InstanceId,
		VPCID:            s.VpcId,
		VSwitchID:        s.VSwitchId,
		ZoneID:           s.ZoneId,
		SecurityGroupIDs: s.SecurityGroupIds.SecurityGroupId,
		Description:      s.Description,
		Tags:             tagMap(s.Tags.Tag),
	}
	if e.InstanceID == "" {
		e.InstanceID = s.Attachment.InstanceId
	}
	e.TrunkID, e.DeviceIndex = s.Attachment.TrunkNetworkInterfaceId, s.Attachment.DeviceIndex
	var err error
	if e.MAC, err = parseMAC(s.MacAddress); err != nil {
		return e, fmt.Errorf("eni %s: %w", e.ID, err)
	}
	if e.PrimaryIP, e.PrivateIPs, err = privateIPs(s.PrivateIpAddress, s.PrivateIpSets.PrivateIpSet); err != nil {
		return e, fmt.Errorf("eni %s: %w", e.ID, err)
	}
	if e.Prefixes, err = prefixesOf(s.Ipv4PrefixSets.Ipv4PrefixSet); err != nil {
		return e, fmt.Errorf("eni %s: %w", e.ID, err)
	}
	if e.IPv6s, err = ipv6sOf(s.Ipv6Sets.Ipv6Set); err != nil {
		return e, fmt.Errorf("eni %s: %w", e.ID, err)
	}
	if e.IPv6Prefixes, err = prefixes6Of(s.Ipv6PrefixSets.Ipv6PrefixSet); err != nil {
		return e, fmt.Errorf("eni %s: %w", e.ID, err)
	}
	if s.CreationTime != "" {
		// The API writes times as 2006-01-02T15:04Z or with seconds.
		for _, layout := range []string{time.RFC3339, "2006-01-02T15:04Z07:00"} {
			if t, err := time.Parse(layout, s.CreationTime); err == nil {
				e.CreationTime = t
				break
			}
		}
	}
	return e, nil
}

func tagMap(tags []ecs.Tag) map[string]string {
	if len(tags) == 0 {
		return nil
	}
	m := make(map[string]string, len(tags))
	for _, t := range tags {
		k, v := t.Key, t.Value
		if k == "" { // some answers use TagKey/TagValue
			k, v = t.TagKey, t.TagValue
		}
		m[k] = v
	}
	return m
}

func parseMAC(s string) (net.HardwareAddr, error) {
	if s == "" {
		return nil, nil
	}
	mac, err := net.ParseMAC(s)
	if err != nil {
		return nil, fmt.Errorf("mac %q: %w", s, err)
	}
	return mac, nil
}

// privateIPs returns the primary address and every private address, primary
// first, from an ENI description.
func privateIPs(primary string, sets []ecs.PrivateIpSet) (netip.Addr, []netip.Addr, error) {
	var p netip.Addr
	if primary != "" {
		a, err := netip.ParseAddr(primary)
		if err != nil {
			return p, nil, fmt.Errorf("primary ip: %w", err)
		}
		p = a
	}
	var rest []netip.Addr
	for _, s := range sets {
		a, err := netip.ParseAddr(s.PrivateIpAddress)
		if err != nil {
			return p, nil, fmt.Errorf("private ip: %w", err)
		}
		if s.Primary && !p.IsValid() {
			p = a
		}
		if a != p {
			rest = append(rest, a)
		}
	}
	if !p.IsValid() {
		return p, rest, nil
	}
	return p, append([]netip.Addr{p}, rest...), nil
}

func parseAddrs(ss []string) ([]netip.Addr, error) {
	out := make([]netip.Addr, 0, len(ss))
	for _, s := range ss {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return out, fmt.Errorf("ip %q: %w", s, err)
		}
		out = append(out, a)
	}
	return out, nil
}

// newClientToken returns a fresh idempotency key (the API allows up to 64
// ASCII characters).
func newClientToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "veni-" + hex.EncodeToString(b[:])
}
