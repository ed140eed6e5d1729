package node

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/veni-cni/veni/eni"
)

// lazyClient defers building the cloud client to the first call, so that a
// warm CNI ADD, which never calls the cloud, never pays for it nor fails
// because credentials are unreadable.
type lazyClient struct{ env *Env }

func (l lazyClient) InstanceLimits(ctx context.Context, instanceType string) (eni.InstanceLimits, error) {
	c, err := l.env.buildCloud(ctx)
	if err != nil {
		return eni.InstanceLimits{}, err
	}
	return c.InstanceLimits(ctx, instanceType)
}

func (l lazyClient) VSwitches(ctx context.Context, ids ...string) ([]eni.VSwitch, error) {
	c, err := l.env.buildCloud(ctx)
	if err != nil {
		return nil, err
	}
	return c.VSwitches(ctx, ids...)
}

func (l lazyClient) CreateENI(ctx context.Context, opts eni.CreateENIOptions) (eni.ENI, error) {
	c, err := l.env.buildCloud(ctx)
	if err != nil {
		return eni.ENI{}, err
	}
	return c.CreateENI(ctx, opts)
}

func (l lazyClient) AttachENI(ctx context.Context, eniID, instanceID string) error {
	c, err := l.env.buildCloud(ctx)
	if err != nil {
		return err
	}
	return c.AttachENI(ctx, eniID, instanceID)
}

func (l lazyClient) DetachENI(ctx context.Context, eniID, instanceID string) error {
	c, err := l.env.buildCloud(ctx)
	if err != nil {
		return err
	}
	return c.DetachENI(ctx, eniID, instanceID)
}

func (l lazyClient) DeleteENI(ctx context.Context, eniID string) error {
	c, err := l.env.buildCloud(ctx)
	if err != nil {
		return err
	}
	return c.DeleteENI(ctx, eniID)
}

func (l lazyClient) ENIs(ctx context.Context, filter eni.ENIFilter) ([]eni.ENI, error) {
	c, err := l.env.buildCloud(ctx)
	if err != nil {
		return nil, err
	}
	return c.ENIs(ctx, filter)
}

func (l lazyClient) AssignPrivateIPs(ctx context.Context, eniID string, count int) ([]netip.Addr, error) {
	c, err := l.env.buildCloud(ctx)
	if err != nil {
		return nil, err
	}
	return c.AssignPrivateIPs(ctx, eniID, count)
}

func (l lazyClient) UnassignPrivateIPs(ctx context.Context, eniID string, ips []netip.Addr) error {
	c, err := l.env.buildCloud(ctx)
	if err != nil {
		return err
	}
	return c.UnassignPrivateIPs(ctx, eniID, ips)
}

func (l lazyClient) AssignPrefixes(ctx context.Context, eniID string, count int) ([]netip.Prefix, error) {
	c, err := l.env.buildCloud(ctx)
	if err != nil {
		return nil, err
	}
	return c.AssignPrefixes(ctx, eniID, count)
}

func (l lazyClient) UnassignPrefixes(ctx context.Context, eniID string, prefixes []netip.Prefix) error {
	c, err := l.env.buildCloud(ctx)
	if err != nil {
		return err
	}
	return c.UnassignPrefixes(ctx, eniID, prefixes)
}

func (l lazyClient) AssignIPv6s(ctx context.Context, eniID string, count int) ([]netip.Addr, error) {
	c, err := l.env.buildCloud(ctx)
	if err != nil {
		return nil, err
	}
	return c.AssignIPv6s(ctx, eniID, count)
}

func (l lazyClient) UnassignIPv6s(ctx context.Context, eniID string, ips []netip.Addr) error {
	c, err := l.env.buildCloud(ctx)
	if err != nil {
		return err
	}
	return c.UnassignIPv6s(ctx, eniID, ips)
}

func (l lazyClient) AssignIPv6Prefixes(ctx context.Context, eniID string, count int) ([]netip.Prefix, error) {
	c, err := l.env.buildCloud(ctx)
	if err != nil {
		return nil, err
	}
	return c.AssignIPv6Prefixes(ctx, eniID, count)
}

func (l lazyClient) UnassignIPv6Prefixes(ctx context.Context, eniID string, prefixes []netip.Prefix) error {
	c, err := l.env.buildCloud(ctx)
	if err != nil {
		return err
	}
	return c.UnassignIPv6Prefixes(ctx, eniID, prefixes)
}

func (l lazyClient) AttachMember(ctx context.Context, eniID, instanceID, trunkID string) error {
	t, err := l.trunking(ctx)
	if err != nil {
		return err
	}
	return t.AttachMember(ctx, eniID, instanceID, trunkID)
}

func (l lazyClient) DetachMember(ctx context.Context, eniID, instanceID, trunkID string) error {
	t, err := l.trunking(ctx)
	if err != nil {
		return err
	}
	return t.DetachMember(ctx, eniID, instanceID, trunkID)
}

func (l lazyClient) TagENI(ctx context.Context, eniID string, tags map[string]string) error {
	c, err := l.env.buildCloud(ctx)
	if err != nil {
		return err
	}
	t, ok := c.(eni.Tagging)
	if !ok {
		return fmt.Errorf("cloud client %T cannot tag enis: %w", c, eni.ErrInvalidParameter)
	}
	return t.TagENI(ctx, eniID, tags)
}

func (l lazyClient) trunking(ctx context.Context) (eni.Trunking, error) {
	c, err := l.env.buildCloud(ctx)
	if err != nil {
		return nil, err
	}
	t, ok := c.(eni.Trunking)
	if !ok {
		return nil, fmt.Errorf("cloud client %T cannot attach trunk members: %w", c, eni.ErrInvalidParameter)
	}
	return t, nil
}
