package commands

import (
	"context"
	"errors"
	"fmt"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/veni-cni/veni/ipam"
	"github.com/veni-cni/veni/node"
	"github.com/veni-cni/veni/store"
)

// allocate is the ADD's reservation (tx1, and the cold path's cloud calls
// when needed), on the route decideNetwork chose: a trunk member ENI
// (routeMember), else an address of the node's shared pool. For a member,
// the reservation's ENI is the trunk (what the pod is plumbed on) and
// member is the pod's own ENI; it is nil otherwise.
func allocate(ctx context.Context, env *node.Env, spec ipam.Node, owner ipam.Owner, pn podNet) (res ipam.Reservation, member *store.ENI, err error) {
	if pn.route != routeMember {
		res, err = ipam.Allocate(ctx, env.Store, env.Cloud(), spec, env.Config, owner)
		return res, nil, err
	}
	m, err := ipam.AllocateMember(ctx, env.Store, env.Cloud(), spec, env.Config, owner, ipam.MemberRequest{
		SecurityGroupIDs: pn.want.SecurityGroupIDs,
		VSwitchIDs:       pn.want.VSwitchIDs,
		Fixed:            pn.fixed,
	})
	if err != nil {
		return res, nil, err
	}
	return m.Reservation, &m.Member, nil
}

// memberAllocationError is allocationError's answer for member ENIs, or
// nil when err is none of theirs.
func memberAllocationError(err error) error {
	switch {
	case errors.Is(err, ipam.ErrMemberLimit):
		// Another pod's member going frees one: kubelet's retry may work.
		return types.NewError(types.ErrTryAgainLater, "the node's trunk has no room for another member ENI", err.Error()+" (schedule fewer trunk pods on this node, or use a larger instance type)")
	case errors.Is(err, ipam.ErrNoTrunk):
		return types.NewError(types.ErrInvalidNetworkConfig, "the pod asks for a trunk member ENI and this node has no trunk", err.Error()+" (set enable_eni_trunking on nodes of an instance type with EniTrunkSupported, or change the PodNetworking)")
	}
	return nil
}

// fixedAllocationError is allocationError's answer for fixed ENIs, or nil
// when err is none of theirs.
func fixedAllocationError(err error) error {
	var fe *ipam.FixedError
	if !errors.As(err, &fe) {
		return nil
	}
	switch {
	case errors.Is(fe, ipam.ErrFixedZone):
		// Retrying here cannot help: the pod must go to the ENI's zone,
		// or give its address up.
		return types.NewError(types.ErrInvalidNetworkConfig,
			fmt.Sprintf("fixed ENI %s (%s) of pod %s is in zone %s and this node is in zone %s: an ENI cannot leave its zone", fe.ENI, fe.IP, fe.Pod, fe.Zone, fe.NodeZone),
			fmt.Sprintf("schedule the pod on a node of zone %s (node affinity topology.kubernetes.io/zone=%s), or give its fixed IP up with \"veni ipam fixed release %s\" and the pod gets a new one here; %v", fe.Zone, fe.Zone, fe.Pod, fe.Cause))
	case errors.Is(fe, ipam.ErrFixedElsewhere):
		return types.NewError(types.ErrTryAgainLater,
			fmt.Sprintf("fixed ENI %s (%s) of pod %s is still attached to instance %s; retry", fe.ENI, fe.IP, fe.Pod, fe.Instance),
			fmt.Sprintf("the cloud has it %s there; the pod's old node detaches it fixed_eni_hold (default 10s) after the pod went, and a retry attaches it here", fe.Status))
	}
	return types.NewError(types.ErrTryAgainLater, fmt.Sprintf("fixed ENI %s of pod %s cannot be attached now; retry", fe.ENI, fe.Pod), err.Error())
}
