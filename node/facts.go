package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/veni-cni/veni/eni"
	"github.com/veni-cni/veni/ipam"
	"github.com/veni-cni/veni/store"
)

// Facts returns the node's facts cached in the store, discovering and
// caching them first when the store has none (a new node, or a store that
// was reset). Only that first call touches metadata and the OpenAPI.
func (e *Env) Facts(ctx context.Context) (store.NodeInfo, error) {
	var info store.NodeInfo
	err := e.Store.View(func(tx *store.ReadTx) error {
		var err error
		info, err = tx.Node()
		return err
	})
	if err == nil {
		return info, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return store.NodeInfo{}, err
	}
	info, err = e.Discover(ctx)
	if err != nil {
		return store.NodeInfo{}, err
	}
	return info, e.Store.Update(func(tx *store.WriteTx) error { return tx.PutNode(info) })
}

// FactsMaxAge bounds how long a restarting daemon trusts cached facts:
// limits follow the instance type, which metadata shows, but security
// groups of the primary ENI change only through the OpenAPI.
const FactsMaxAge = 24 * time.Hour

// Restart returns the facts a starting daemon should use. Cached facts
// younger than maxAge are kept when metadata still names the same instance,
// instance type, vSwitch and primary MAC: a daemon restarted on every node
// of a large cluster at once (a rollout) then costs the OpenAPI nothing.
// Otherwise it discovers afresh. The second result says which it did.
func (e *Env) Restart(ctx context.Context, maxAge time.Duration, now time.Time) (store.NodeInfo, bool, error) {
	var cached store.NodeInfo
	err := e.Store.View(func(tx *store.ReadTx) error {
		var err error
		cached, err = tx.Node()
		return err
	})
	// Facts cached while eni_conf named the security groups lack the
	// primary ENI's, which a config naming none needs.
	needSGs := len(e.Config.SecurityGroupIDs()) == 0 && len(cached.SecurityGroupIDs) == 0
	if err == nil && !needSGs && now.Sub(cached.UpdatedAt) < maxAge && e.sameInstance(ctx, cached) {
		return cached, true, nil
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return store.NodeInfo{}, false, err
	}
	info, err := e.Discover(ctx)
	return info, false, err
}

// sameInstance says whether metadata describes the instance the facts were
// cached for; any metadata error means "ask afresh".
func (e *Env) sameInstance(ctx context.Context, info store.NodeInfo) bool {
	md := e.Metadata()
	for _, f := range []struct {
		get  func(context.Context) (string, error)
		want string
	}{
		{md.InstanceID, info.InstanceID},
		{md.InstanceType, info.InstanceType},
		{md.VSwitchID, info.VSwitchID},
	} {
		if v, err := f.get(ctx); err != nil || v != f.want {
			return false
		}
	}
	mac, err := md.PrimaryMAC(ctx)
	return err == nil && mac.String() == info.PrimaryMAC
}

// Discover asks instance metadata and the OpenAPI what this node is. It
// does not write the store; Facts does.
func (e *Env) Discover(ctx context.Context) (store.NodeInfo, error) {
	md := e.Metadata()
	var info store.NodeInfo
	for _, f := range []struct {
		name string
		get  func(context.Context) (string, error)
		dst  *string
	}{
		{"instance-id", md.InstanceID, &info.InstanceID},
		{"instance-type", md.InstanceType, &info.InstanceType},
		{"region-id", md.RegionID, &info.RegionID},
		{"zone-id", md.ZoneID, &info.ZoneID},
		{"vpc-id", md.VPCID, &info.VPCID},
		{"vswitch-id", md.VSwitchID, &info.VSwitchID},
	} {
		v, err := f.get(ctx)
		if err != nil {
			return info, fmt.Errorf("discover node: metadata %s: %w", f.name, err)
		}
		*f.dst = v
	}
	mac, err := md.PrimaryMAC(ctx)
	if err != nil {
		return info, fmt.Errorf("discover node: metadata mac: %w", err)
	}
	primary, err := md.ENI(ctx, mac)
	if err != nil {
		return info, fmt.Errorf("discover node: primary eni %s: %w", mac, err)
	}
	info.PrimaryENIID = primary.ID
	info.PrimaryMAC = mac.String()
	info.PrimaryIP = primary.PrimaryIP
	info.VSwitchCIDR = primary.VSwitchCIDR

	cloud := e.Cloud()
	limits, err := cloud.InstanceLimits(ctx, info.InstanceType)
	if err != nil {
		return info, fmt.Errorf("discover node: limits of %s: %w", info.InstanceType, err)
	}
	info.ENIs = limits.ENIs
	info.IPv4PerENI = limits.IPv4PerENI
	info.IPv6PerENI = limits.IPv6PerENI
	info.TrunkSupported = limits.TrunkSupported
	info.MemberENIs = limits.MemberENIs

	// New ENIs inherit the primary ENI's security groups unless eni_conf
	// names some, as Terway does; only then is the primary described.
	if len(e.Config.SecurityGroupIDs()) == 0 {
		enis, err := cloud.ENIs(ctx, eni.ENIFilter{IDs: []string{primary.ID}})
		if err != nil {
			return info, fmt.Errorf("discover node: describe primary eni %s: %w", primary.ID, err)
		}
		if len(enis) == 1 {
			info.SecurityGroupIDs = enis[0].SecurityGroupIDs
		}
	}
	info.UpdatedAt = time.Now()
	return info, nil
}

// IPAMNode turns cached facts into what ipam needs.
func IPAMNode(info store.NodeInfo) ipam.Node {
	return ipam.Node{
		InstanceID: info.InstanceID,
		Limits: eni.InstanceLimits{
			InstanceType:   info.InstanceType,
			ENIs:           info.ENIs,
			IPv4PerENI:     info.IPv4PerENI,
			IPv6PerENI:     info.IPv6PerENI,
			TrunkSupported: info.TrunkSupported,
			MemberENIs:     info.MemberENIs,
		},
		ZoneID:           info.ZoneID,
		PrimaryENIID:     info.PrimaryENIID,
		VSwitchID:        info.VSwitchID,
		VSwitchCIDR:      info.VSwitchCIDR,
		SecurityGroupIDs: info.SecurityGroupIDs,
	}
}
